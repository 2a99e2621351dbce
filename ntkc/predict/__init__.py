"""Predictions from the NTK: :func:`gradient_descent_mse`, the outputs of gradient-descent
training on the MSE loss at any time, from a kernel array or an :func:`ntkc.ntk_operator`.

Example:
  >>> import jax.numpy as jnp, numpy as np, ntkc
  >>> k_train = jnp.array([[2.0, 0.5], [0.5, 1.0]])             # a kernel on 2 training points
  >>> y_train = jnp.array([[1.0], [-1.0]])
  >>> predict = ntkc.predict.gradient_descent_mse(k_train, y_train)
  >>> k_test_train = jnp.array([[1.0, 0.2]])                   # one test point against them
  >>> fx_train, fx_test = predict(None, jnp.zeros((2, 1)), jnp.zeros((1, 1)), k_test_train)  # t = ∞
  >>> bool(np.allclose(fx_train, y_train, atol=1e-5)), round(float(fx_test[0, 0]), 4)
  (True, 0.5714)
"""

from ntkc.predict.gradient_descent import gradient_descent_mse

__all__ = ["gradient_descent_mse"]

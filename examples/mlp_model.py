"""A 10-layer ReLU MLP for ``ntkc report examples/mlp_model.py`` (and ``:symbolic``)."""

import jax
import jax.numpy as jnp


def mlp(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def model(width=256, outputs=10, batch=8):
    """Concrete sizes: ``(f, params, x)``."""
    keys = jax.random.split(jax.random.PRNGKey(0), 10)
    sizes = [3] + [width] * 9 + [outputs]
    params = [(jax.random.normal(k, (a, b)) / jnp.sqrt(a), jnp.zeros(b))
              for k, a, b in zip(keys, sizes[:-1], sizes[1:])]
    return mlp, params, jax.random.normal(keys[0], (batch, 3))


def symbolic():
    """Symbolic N, O, W: the report shows costs as polynomials in them."""
    N, O, W = jax.export.symbolic_shape("N, O, W")
    sizes = [3] + [W] * 9 + [O]
    params = [(jax.ShapeDtypeStruct((a, b), jnp.float32), jax.ShapeDtypeStruct((b,), jnp.float32))
              for a, b in zip(sizes[:-1], sizes[1:])]
    return mlp, params, jax.ShapeDtypeStruct((N, 3), jnp.float32)

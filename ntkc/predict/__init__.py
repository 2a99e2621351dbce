"""Predictions from the NTK: :func:`gradient_descent_mse`, the outputs of gradient-descent
training on the MSE loss at any time, from a kernel array or an :func:`ntkc.ntk_operator`."""

from ntkc.predict.gradient_descent import gradient_descent_mse

__all__ = ["gradient_descent_mse"]

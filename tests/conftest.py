"""Test configuration: float64 is enabled so the oracle and the f64 grid are exact."""

import jax

jax.config.update("jax_enable_x64", True)

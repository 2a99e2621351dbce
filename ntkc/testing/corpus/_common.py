"""Helpers shared by the corpus modules: dtypes, inputs, casting a model's arrays."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

N1, N2 = 3, 2


def float_dtype(dtype: Any = None) -> np.dtype:
    """``dtype``, or JAX's default floating dtype (float64 when x64 is enabled)."""
    return np.dtype(dtype) if dtype is not None else np.dtype(jnp.asarray(0.0).dtype)



def normal(seed: int, *shape: int, dtype: Any = None, scale: float = 1.0) -> jax.Array:
    """Standard normal values from NumPy (no XLA compilation), in ``dtype``."""
    values = scale * np.random.default_rng(seed).standard_normal(shape)
    return jax.device_put(values.astype(float_dtype(dtype)))


def pair(shape: tuple[int, ...], dtype: Any = None, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """``(x1, x2)``: ``N1`` and ``N2`` standard normal examples of per-example ``shape``."""
    return (normal(1000 + seed, N1, *shape, dtype=dtype), normal(2000 + seed, N2, *shape, dtype=dtype))


def id_pair(shape: tuple[int, ...], high: int, seed: int = 0, low: int = 0) -> tuple[jax.Array, jax.Array]:
    """``(x1, x2)`` of int32 ids in ``[low, high)``."""
    draw = lambda s, n: jax.device_put(np.random.default_rng(s).integers(low, high, (n, *shape)).astype(np.int32))
    return draw(1000 + seed, N1), draw(2000 + seed, N2)


def key(seed: int = 0) -> jax.Array:
    return jax.random.key(seed)


_OFFSETS = ("bias", "b", "beta", "offset", "mean", "average", "hidden")


def _name(path: Any) -> str:
    """The innermost name in a pytree path (a dict key or an attribute)."""
    for entry in reversed(path):
        name = getattr(entry, "key", getattr(entry, "name", None))
        if isinstance(name, str) and name not in ("value", "raw_value"):
            return name
    return ""


def fill(shapes: Any, dtype: Any, seed: int = 0, positive: bool = False) -> Any:
    """Concrete values, drawn with NumPy (no XLA compilation), for a pytree of
    ``jax.ShapeDtypeStruct`` s (from ``jax.eval_shape`` of a model's initialiser).

    Floating leaves get ``dtype``: arrays of rank ≥ 2 are weights, normal / √(fan-in) with the
    fan-in the product of all but the last axis; rank ≤ 1 leaves named like biases, offsets or
    means are 0.3·normal, those named like variances 0.5 + |normal|, the others (scales) 1 +
    0.3·normal; with ``positive`` every floating leaf is 0.5 + |normal| (statistics whose names
    are not known). Integer and boolean leaves are zeros, PRNG keys are keys. Values differ from the
    libraries' initialisers on purpose: no bias is 0 and no scale 1, so every parameter shows in
    the kernel.
    """
    rng = np.random.default_rng(seed)
    dtype = float_dtype(dtype)

    def leaf(path, s):
        if not isinstance(s, jax.ShapeDtypeStruct):
            return s
        if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(np.zeros((*s.shape, 2), np.uint32))
        if not jnp.issubdtype(s.dtype, jnp.floating):
            return jax.device_put(np.zeros(s.shape, s.dtype))
        z = rng.standard_normal(s.shape)
        name = _name(path).lower()
        if positive:
            values = 0.5 + np.abs(z)
        elif len(s.shape) >= 2:
            values = z / np.sqrt(np.prod(s.shape[:-1]))
        elif "var" in name:
            values = 0.5 + np.abs(z)
        elif name in _OFFSETS or name.endswith("bias"):
            values = 0.3 * z
        else:
            values = 1.0 + 0.3 * z
        return jax.device_put(values.astype(dtype))

    return jax.tree_util.tree_map_with_path(leaf, shapes)

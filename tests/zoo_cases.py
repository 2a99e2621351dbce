"""Zoo instances, float64 oracle kernels and the comparison every test uses, cached per process.

"Equals" is ``allclose`` with rtol 1e-5 and atol 1e-5·max|ref| for float32 kernels, and 1e-10
(both) for float64 kernels, against the brute-force oracle of ``reference.py``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ntkc.testing import ZOO
from reference import oracle_full_ntk, reduce_oracle


def assert_equal_to_oracle(got, ref, dtype, label: str = "", precision=None) -> None:
    """Every leaf of ``got`` (a kernel in ``dtype``) equals the float64 ``ref`` to the tolerance of
    ``precision`` (default: ``dtype``; a float64 kernel of float32 inputs has float32's);
    structures, shapes and dtypes match."""
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(ref), label
    for g, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)):
        assert g.shape == r.shape, f"{label}: shape {g.shape}, oracle {r.shape}"
        assert g.dtype == jnp.dtype(dtype), f"{label}: kernel dtype {g.dtype}, expected {jnp.dtype(dtype)}"
        scale = float(np.max(np.abs(r))) if r.size else 1.0
        tol = 1e-10 if jnp.dtype(precision or dtype) == jnp.float64 else 1e-5
        np.testing.assert_allclose(np.asarray(g, np.float64), r, rtol=tol, atol=tol * max(scale, 1e-30), err_msg=label)


@functools.lru_cache(maxsize=None)
def instance(name: str, dtype):
    return ZOO[name].make(jax.random.PRNGKey(0), dtype=dtype)


@functools.lru_cache(maxsize=None)
def out_ndim(name: str) -> int:
    """The smallest rank of the model's output leaves."""
    inst = instance(name, jnp.float32)
    out = jax.eval_shape(lambda p, x: inst.f(p, x, **inst.kwargs), inst.params, inst.x1)
    return min(leaf.ndim for leaf in jax.tree_util.tree_leaves(out))


@functools.lru_cache(maxsize=None)
def full_oracle(name: str, vmap: bool, same: bool):
    """The untraced float64 kernel of a zoo model (x2 = x1 when ``same``)."""
    inst = instance(name, jnp.float64)
    return oracle_full_ntk(inst.f, inst.x1, None if same else inst.x2, inst.params,
                           vmap_axis=(0, 0) if vmap else None, **inst.kwargs)


def oracle(name: str, *, trace_axes=(), diagonal_axes=(), vmap: bool, same: bool):
    return reduce_oracle(full_oracle(name, vmap, same), trace_axes=trace_axes, diagonal_axes=diagonal_axes)

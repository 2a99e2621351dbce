"""NTK-vector products (paper §3.2): column by column, Θ·e = J1 · (J2ᵀ · e).

Work is shared explicitly: x1's forward pass is linearized **once** (``jax.linearize``), x2's
forward pass and its residuals are computed **once** (``jax.vjp``; with ``x2=None`` the transpose
of x1's linearization is reused), and only the linear maps are applied per output column.
Columns are processed in vmapped chunks sized so the per-chunk parameter cotangents stay under
a memory budget. Cost: ``N1·N2·O·[FP]`` time, no Jacobian is materialised.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from ntkc.methods.contract import reduce_full_kernel
from ntkc.problem import NTKProblem

PyTree = Any

#: Upper bound on the bytes of parameter cotangents held at once (one per column in a chunk).
CHUNK_BYTES = 1 << 28


def _tree_bytes(tree: PyTree) -> int:
    return sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree))


def _columns(column_fn, n_columns: int, bytes_per_column: int, dtype, budget: int) -> jax.Array:
    basis = jnp.eye(n_columns, dtype=dtype)
    chunk = max(1, budget // max(1, bytes_per_column))
    if chunk >= n_columns:
        return jax.vmap(column_fn)(basis)
    return jax.lax.map(column_fn, basis, batch_size=chunk)


def ntvp_kernel(problem: NTKProblem, params: PyTree, *, memory_limit: int | None = None) -> PyTree:
    """The NTK by NTK-vector products; one kernel per output leaf. ``memory_limit`` (bytes,
    default :data:`CHUNK_BYTES`) bounds the parameter cotangents held at once."""
    from ntkc.methods.jacobian import fallback
    from ntkc.passes.pipeline import reverse_mode_blocker

    blocker = reverse_mode_blocker(problem, params)
    if blocker is not None:
        return fallback(problem, params, blocker, "ntvp")
    budget = CHUNK_BYTES if memory_limit is None else memory_limit
    out1, jvp1 = jax.linearize(problem.side1.apply, params)
    if problem.side2 is None:
        out2 = out1
        transpose = jax.linear_transpose(jvp1, params)
        vjp2 = lambda cot: transpose(cot)[0]
    else:
        out2, vjp_fn = jax.vjp(problem.side2.apply, params)
        vjp2 = lambda cot: vjp_fn(cot)[0]

    leaves2, treedef = jax.tree_util.tree_flatten(out2)
    leaves_axes = treedef.flatten_up_to(problem.axes)
    kernels = []
    for index, (leaf2, kernel_axes) in enumerate(zip(leaves2, leaves_axes)):

        def column(e, index=index, leaf2=leaf2):
            cot = [jnp.zeros(l.shape, l.dtype) for l in leaves2]
            cot[index] = e.reshape(leaf2.shape)
            tangent = vjp2(jax.tree_util.tree_unflatten(treedef, cot))
            return jax.tree_util.tree_leaves(jvp1(tangent))[index]

        bytes_per_column = _tree_bytes(params) + _tree_bytes(jax.tree_util.tree_leaves(out1)[index])
        cols = _columns(column, leaf2.size, bytes_per_column, leaf2.dtype, budget)
        shape1 = jax.tree_util.tree_leaves(out1)[index].shape
        full = cols.reshape(leaf2.shape + shape1)
        nd = len(shape1)
        full = jnp.moveaxis(full, tuple(range(nd)), tuple(range(nd, 2 * nd)))
        kernels.append(reduce_full_kernel(full, kernel_axes))
    return jax.tree_util.tree_unflatten(treedef, kernels)

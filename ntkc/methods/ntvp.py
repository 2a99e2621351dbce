"""NTK-vector products (paper §3.2): column by column, Θ·e = J1 · (J2ᵀ · e).

Work is shared explicitly: x1's forward pass is linearized **once** (``jax.linearize``), x2's
forward pass and its residuals are computed **once** (``jax.vjp``; with ``x2=None`` the transpose
of x1's linearization is reused), and only the linear maps are applied per output column.
Columns are processed in equal vmapped chunks sized so the per-chunk parameter cotangents stay
under a memory budget (:func:`plan_chunks`). Cost: ``N1·N2·O·[FP]`` time, no Jacobian is
materialised.
"""

from __future__ import annotations

import dataclasses
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


#: At most this many chunks are unrolled (a ``vmap`` each, concatenated); more run as a
#: ``lax.map``. XLA:CPU runs a loop body's convolutions several times slower than the same
#: convolutions unrolled (ResNet-18, 400 columns: 35.6 s as a ``lax.map`` of 380 + 20, 5.1 s
#: unrolled), so the loop is kept for chunk counts too many to unroll at compile time.
MAX_UNROLLED_CHUNKS = 8


@dataclasses.dataclass(frozen=True)
class Chunks:
    """``count`` chunks of ``size`` output columns each (the last one may be short)."""
    size: int
    count: int

    @property
    def unrolled(self) -> bool:
        return self.count <= MAX_UNROLLED_CHUNKS


def plan_chunks(n_columns: int, bytes_per_column: int, budget: int) -> Chunks:
    """The fewest equal chunks whose parameter cotangents (``bytes_per_column`` each) fit ``budget``.

    >>> plan_chunks(400, 700_000, 1 << 28)          # 383 would fit: two chunks of 200, not 383 + 17
    Chunks(size=200, count=2)
    >>> plan_chunks(10, 1, 1 << 28)
    Chunks(size=10, count=1)
    """
    most = max(1, budget // max(1, bytes_per_column))
    count = -(-n_columns // most)
    return Chunks(size=-(-n_columns // count), count=count)


def _columns(column_fn, n_columns: int, chunks: Chunks, dtype) -> jax.Array:
    """``column_fn`` of every basis vector ``e_i``, stacked: ``(n_columns, ...)``."""
    if chunks.count == 1:
        return jax.vmap(column_fn)(jnp.eye(n_columns, dtype=dtype))
    if chunks.unrolled:
        basis = jnp.eye(n_columns, dtype=dtype)
        return jnp.concatenate([jax.vmap(column_fn)(basis[i:i + chunks.size])
                                for i in range(0, n_columns, chunks.size)])
    padded = jnp.eye(chunks.count * chunks.size, n_columns, dtype=dtype)  # zero rows past the end
    return jax.lax.map(column_fn, padded, batch_size=chunks.size)[:n_columns]


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
        cols = _columns(column, leaf2.size, plan_chunks(leaf2.size, bytes_per_column, budget), leaf2.dtype)
        shape1 = jax.tree_util.tree_leaves(out1)[index].shape
        full = cols.reshape(leaf2.shape + shape1)
        nd = len(shape1)
        full = jnp.moveaxis(full, tuple(range(nd)), tuple(range(nd, 2 * nd)))
        kernels.append(reduce_full_kernel(full, kernel_axes))
    return jax.tree_util.tree_unflatten(treedef, kernels)

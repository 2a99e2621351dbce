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
import numpy as np

from ntkc.backends.program import Call, Einsum, Finish, Program
from ntkc.methods.calls import SideArgs, program_inputs

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


def _columns_fn(problem, one: SideArgs, two: SideArgs | None, budget: int):
    """``(params, x1, kw1[, x2, kw2]) leaves -> [full kernel of each output leaf]``, each of
    shape ``out1 + out2`` (x1's output axes first)."""
    n1 = len(one.names)

    def ntvp(*leaves):
        params, x1, kw1 = one.unflatten(leaves[:n1])
        side1 = problem.side1.bind(x1, kw1)
        out1, jvp1 = jax.linearize(side1.apply, params)
        if two is None:
            out2 = out1
            transpose = jax.linear_transpose(jvp1, params)
            vjp2 = lambda cot: transpose(cot)[0]
        else:
            _, x2, kw2 = two.unflatten(leaves[:one.n_params] + leaves[n1:])
            out2, vjp_fn = jax.vjp(problem.side2.bind(x2, kw2).apply, params)
            vjp2 = lambda cot: vjp_fn(cot)[0]
        leaves2, treedef = jax.tree_util.tree_flatten(out2)
        leaves1 = jax.tree_util.tree_leaves(out1)
        kernels = []
        for index, (leaf1, leaf2) in enumerate(zip(leaves1, leaves2)):

            def column(e, index=index, leaf2=leaf2):  # Θ·e = J1 · (J2ᵀ · e), one column of side 2
                cot = [jnp.zeros(l.shape, l.dtype) for l in leaves2]
                cot[index] = e.reshape(leaf2.shape)
                return jax.tree_util.tree_leaves(jvp1(vjp2(jax.tree_util.tree_unflatten(treedef, cot))))[index]

            chunks = plan_chunks(leaf2.size, _tree_bytes(params) + _tree_bytes(leaf1), budget)
            full = _columns(column, leaf2.size, chunks, leaf2.dtype).reshape(leaf2.shape + leaf1.shape)
            nd = leaf1.ndim
            kernels.append(jnp.moveaxis(full, tuple(range(nd)), tuple(range(nd, 2 * nd))))
        return kernels

    return ntvp


def ntvp_program(plan) -> Program:
    """One call computing every output leaf's full kernel column by column, then the traced and
    diagonal axes of each (one einsum) and their mean."""
    problem = plan.problem
    inputs, one, two = program_inputs(problem, plan.params)
    budget = CHUNK_BYTES if plan.memory_limit is None else plan.memory_limit
    out1, treedef = jax.tree_util.tree_flatten(problem.out1)
    axes = treedef.flatten_up_to(problem.axes)
    full = tuple(f"full{o}" for o in range(len(out1)))
    steps = [Call(outputs=full, fn=_columns_fn(problem, one, two, budget), args=inputs, name="ntk_columns",
                  doc="Θ·e for every basis vector e of side 2's outputs: x1 linearized once, x2's VJP reused.")]
    outputs = []
    for o, (ka, leaf) in enumerate(zip(axes, out1)):
        l1, l2, result = ka.labels()
        steps += [Einsum(output=f"k{o}_full", spec=f"{l1}{l2}->{result}", args=(full[o],)),
                  Finish(output=f"k{o}", arg=f"k{o}_full", divisor=ka.trace_size(leaf.shape), dtype=np.dtype(leaf.dtype))]
        outputs.append(f"k{o}")
    return Program(inputs=inputs, steps=tuple(steps), outputs=tuple(outputs))

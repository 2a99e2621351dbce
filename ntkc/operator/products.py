"""Matrix-free kernel-vector products: ``K v = (1/T) Σ_t J_t (J_tᵀ v)`` without forming J or K.

For vectors ``v`` of side 2's row shape, batched along a trailing axis of size k:

1. *pull*: ``g_{t,j} = J_{2,t}ᵀ v_j`` — one VJP of ``f`` on side 2's examples per traced component
   ``t`` and vector ``j`` (vmapped: the forward pass runs once per chunk of examples), summed
   over chunks of examples;
2. *push*: ``(K v_j)[a, u] = (1/T) Σ_t (J_{1,t} g_{t,j})[a, u, t]`` — one JVP of ``f`` on side 1's
   examples per ``(t, j)`` (vmapped over a linearization), chunk by chunk.

So a product costs ``T·k`` VJPs and JVPs over the examples: a traced kernel pays its traced
size ``T`` (e.g. the number of logits) per product, a full kernel (``T = 1``) one pair.
Chunks bound the working set: a chunk of c examples holds c examples' residuals and ``T·k``
of their cotangents and tangents. A last, short chunk is taken as the last c examples with the
rows already counted masked out of the pull (their push is recomputed, identically), so no input
is padded or copied.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

from ntkc.operator.rows import Rows, batch_first

PyTree = Any


def _split(x_first: PyTree, rows: Rows):
    """(batched leaves, shared leaves, join) of batch-first inputs."""
    leaves, treedef = jax.tree_util.tree_flatten(x_first)
    axes = jax.tree_util.tree_leaves(rows.x_axes, is_leaf=lambda a: a is None)
    batched = [leaf for leaf, a in zip(leaves, axes) if a is not None]
    shared = [leaf for leaf, a in zip(leaves, axes) if a is None]

    def join(batched_part, shared_part):
        b, s = iter(batched_part), iter(shared_part)
        return jax.tree_util.tree_unflatten(treedef, [next(s) if a is None else next(b) for a in axes])

    return batched, shared, join


def _chunk(batched: list, start, size: int) -> list:
    return [lax.dynamic_slice_in_dim(leaf, start, size, axis=0) for leaf in batched]


def _starts(n: int, size: int, i):
    """Chunk i's first example (the last chunk ends at n) and the first one it newly covers."""
    nominal = i * size
    return jnp.minimum(nominal, n - size), nominal


def pull_chunk(g: Callable, traced: int) -> Callable:
    """``(params, x_chunk, v_chunk (c, U, k)) -> {t, j: J_tᵀ v_j}`` with leaves ``(T, k, *p)``."""

    def pull(params, x_chunk, v_chunk):
        _, back = jax.vjp(lambda p: g(p, x_chunk), params)

        def one(t, column):
            cotangent = column[:, :, None] * jax.nn.one_hot(t, traced, dtype=column.dtype)
            return back(cotangent)[0]

        per_vector = jax.vmap(one, in_axes=(None, 2))
        return jax.vmap(per_vector, in_axes=(0, None))(jnp.arange(traced), v_chunk)

    return pull


def forward_map(g: Callable, params, x_chunk, forward: bool) -> Callable:
    """``t ↦ J t`` for ``p ↦ g(p, x_chunk)`` at ``params``: a linearization (forward mode), or —
    for a model JAX cannot run forward (a ``jax.custom_vjp`` in it) — the transpose of its VJP."""
    if forward:
        return jax.linearize(lambda p: g(p, x_chunk), params)[1]
    out, back = jax.vjp(lambda p: g(p, x_chunk), params)
    transposed = jax.linear_transpose(lambda c: back(c)[0], out)
    return lambda t: transposed(t)[0]


def has_forward_mode(g: Callable, params, x_chunk) -> bool:
    """Whether JAX can linearize ``g`` in forward mode (shapes only: nothing runs)."""
    try:
        def probe(p, xc):  # applied under vmap: a custom_vjp's rule refuses there (eval_shape alone runs it)
            lin = jax.linearize(lambda q: g(q, xc), p)[1]
            return jax.vmap(lin)(jax.tree_util.tree_map(lambda leaf: leaf[None], p))

        jax.eval_shape(probe, params, x_chunk)
    except TypeError as e:
        if "custom_vjp" in str(e):
            return False
        raise
    return True


def push_chunk(g: Callable, traced: int, forward: bool = True) -> Callable:
    """``(params, x_chunk, pulled) -> (c, U, k)``: ``(1/T) Σ_t (J_t g_{t,j})[:, :, t]``."""

    def push(params, x_chunk, pulled):
        lin = forward_map(g, params, x_chunk, forward)
        out = jax.vmap(jax.vmap(lin))(pulled)  # (T, k, c, U, T)
        own = jnp.diagonal(out, axis1=0, axis2=4)  # (k, c, U, T): component t of tangent t
        return jnp.moveaxis(own.sum(-1), 0, -1) / traced

    return push


@dataclasses.dataclass(frozen=True, eq=False)
class Products:
    """The matrix-free product of side 1 ← side 2, run in chunks of examples.

    ``apply(params, x1_first, x2_first, v (N2, *U, k), chunk)`` gives ``(N1, *U, k)``; ``chunk``
    (examples per chunk, static) bounds the working set. ``forward``: JAX can linearize ``f``
    (else its pushes transpose its VJP).
    """

    f: Callable
    rows1: Rows
    rows2: Rows
    forward: bool = True

    def _columns(self, params, v):
        """``v (N2·U…, k)`` as ``(N2, U-size, k)`` in the parameters' dtype."""
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
        return v.reshape(self.rows2.n, self.rows2.width, v.shape[-1]).astype(dtype)

    def pull_step(self, params, x2_first, v, i, size: int):
        """Chunk ``i``'s part of the pull (``size`` examples of side 2; rows an earlier chunk
        covered masked out): leaves ``(T, k, *p)``."""
        b2, s2, join2 = _split(x2_first, self.rows2)
        start, fresh = _starts(self.rows2.n, size, i)
        rows = start + jnp.arange(size)
        column = lax.dynamic_slice_in_dim(v, start, size, axis=0) * (rows >= fresh)[:, None, None]
        pull = pull_chunk(batch_first(self.f, self.rows2), self.rows2.traced)
        return pull(params, join2(_chunk(b2, start, size), s2), column)

    def push_step(self, params, x1_first, pulled, i, size: int):
        """Chunk ``i``'s rows of the product, its first row, from the summed pull."""
        b1, s1, join1 = _split(x1_first, self.rows1)
        start, _ = _starts(self.rows1.n, size, i)
        push = push_chunk(batch_first(self.f, self.rows1), self.rows2.traced, self.forward)
        return push(params, join1(_chunk(b1, start, size), s1), pulled), start

    def sizes(self, chunk: int) -> tuple[int, int, int, int]:
        """(side 1's chunk, its count, side 2's chunk, its count) for ``chunk`` examples a chunk."""
        c1, c2 = min(chunk, self.rows1.n), min(chunk, self.rows2.n)
        return c1, math.ceil(self.rows1.n / c1), c2, math.ceil(self.rows2.n / c2)

    def apply(self, params, x1_first, x2_first, v, chunk: int):
        """The product as one traceable program: chunks run in ``fori_loop`` loops (inlined when
        a side has one chunk)."""
        v = self._columns(params, v)
        k = v.shape[-1]
        c1, n1, c2, n2 = self.sizes(chunk)
        add = lambda i, total: jax.tree_util.tree_map(jnp.add, total, self.pull_step(params, x2_first, v, i, c2))
        if n2 == 1:
            pulled = self.pull_step(params, x2_first, v, 0, c2)
        else:
            zeros = jax.tree_util.tree_map(lambda p: jnp.zeros((self.rows2.traced, k) + jnp.shape(p), v.dtype), params)
            pulled = lax.fori_loop(0, n2, add, zeros)

        def put(i, out):
            part, start = self.push_step(params, x1_first, pulled, i, c1)
            return lax.dynamic_update_slice_in_dim(out, part.astype(out.dtype), start, axis=0)

        if n1 == 1:
            out = self.push_step(params, x1_first, pulled, 0, c1)[0]
        else:
            out = lax.fori_loop(0, n1, put, jnp.zeros((self.rows1.n, self.rows1.width, k), v.dtype))
        return out.reshape(self.rows1.shape + (k,))

    def run(self, params, x1_first, x2_first, v, chunk: int):
        """The product on concrete arrays, chunk by chunk from Python: one compiled program per
        chunk step, dispatched per chunk. No XLA loop holds the model: XLA's CPU backend leaves a
        convolution inside a loop body in a layout its fast kernels do not take (the pull of a
        small CNN ran 50× slower in a ``fori_loop`` than alone)."""
        v = self._columns(params, v)
        c1, n1, c2, n2 = self.sizes(chunk)
        pulled = _PULL_STEP(self, c2, params, x2_first, v, 0)
        for i in range(1, n2):
            pulled = jax.tree_util.tree_map(jnp.add, pulled, _PULL_STEP(self, c2, params, x2_first, v, i))
        parts = [_PUSH_STEP(self, c1, params, x1_first, pulled, i) for i in range(n1)]
        if n1 > 1:  # the last chunk ends at N1: its rows before the nominal start are already there
            overlap = n1 * c1 - self.rows1.n
            parts[-1] = parts[-1][overlap:]
        out = jnp.concatenate(parts, axis=0) if n1 > 1 else parts[0]
        return out.reshape(self.rows1.shape + (v.shape[-1],))

    def chunk_program(self, params, x1_first, x2_first, size: int, k: int = 1):
        """One chunk's pull and push (size examples a side, k vectors), compiled: its XLA cost
        and memory analyses price a product and size the chunks."""
        g1, g2 = batch_first(self.f, self.rows1), batch_first(self.f, self.rows2)
        pull, push = pull_chunk(g2, self.rows2.traced), push_chunk(g1, self.rows2.traced, self.forward)
        b1, s1, join1 = _split(x1_first, self.rows1)
        b2, s2, join2 = _split(x2_first, self.rows2)
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
        size1, size2 = min(size, self.rows1.n), min(size, self.rows2.n)

        def both(params, c1, c2, shared1, shared2, column):
            pulled = pull(params, join2(c2, shared2), column)
            return push(params, join1(c1, shared1), pulled)

        spec = lambda leaf, n: jax.ShapeDtypeStruct((n,) + leaf.shape[1:], leaf.dtype)
        column = jax.ShapeDtypeStruct((size2, self.rows2.width, k), dtype)
        return jax.jit(both).lower(params, [spec(l, size1) for l in b1], [spec(l, size2) for l in b2],
                                   s1, s2, column).compile()


_PULL_STEP = jax.jit(lambda products, size, params, x2_first, v, i:
                     products.pull_step(params, x2_first, v, i, size), static_argnums=(0, 1))
_PUSH_STEP = jax.jit(lambda products, size, params, x1_first, pulled, i:
                     products.push_step(params, x1_first, pulled, i, size)[0], static_argnums=(0, 1))

"""A symmetric kernel (x2 = None) in one call, with each pair of examples' terms computed once.

With x2 = None the kernel is symmetric: the block of examples ``(j, i)`` is block ``(i, j)`` with
every pair of axes swapped (:meth:`~ntkc.tiling.geometry.Layout.mirror`). A plan for x2 = None
runs each example's work (its cotangent sweeps, its Jacobians) once, but its contractions over
pairs of examples run for all ``N²`` pairs. Here the examples are cut into halves ``A`` and ``B``
(``B`` padded to ``A``'s size by repeating its last example, then cropped): the plan of
``half × half`` examples is cut (:mod:`ntkc.tiling.bands`) into its row program — each half's own
work, run once per half — and its column program with side 2's work read from the other half's
row results instead of recomputed; the column program runs for the blocks ``AA``, ``AB`` and
``BB`` — three quarters of the pairs' contraction FLOPs — and ``BA`` is ``AB`` mirrored.

It pays when the FLOPs saved outweigh the operations it adds (three column programs instead of
one, the concatenations) and are a real share of the whole: :func:`halves` prices both from the
plans' predicted FLOPs and uses it only then (a convolution's pair terms, contracted per example
first, hardly shrink; a wide MLP's with many outputs lose a quarter). It needs blocks that are the kernels of their examples alone (``vmap_axes``), a pair
of example axes in every output leaf (no example axis traced or diagonal), a real plan that cuts
into row and column programs whose side-2 work mirrors side 1's (Jacobian contraction,
structured derivatives — not NTK-vector products) and no array keyword arguments.

>>> import jax, jax.numpy as jnp, ntkc
>>> from ntkc.tiling.halves import halves
>>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
>>> params = {"w": jnp.ones((3, 256)) / 3, "v": jnp.ones((256, 64)) / 16}
>>> x = jnp.linspace(-1, 1, 96).reshape(32, 3)
>>> p = ntkc.plan(f, params, x, trace_axes=(), vmap_axes=0, method="structured")
>>> h = halves(p)
>>> h is not None, h.sizes, round(h.pair_flops_fraction, 2)
(True, (16, 16), 0.75)
>>> bool(jnp.allclose(h(params, x, None, {}, {}), ntkc.run_plan(p, x, None, params), rtol=1e-5, atol=1e-6))
True
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ntkc.backends.split import mirrored
from ntkc.methods.calls import program_inputs
from ntkc.planning import STRATEGIES, plan_for
from ntkc.tiling.bands import BandFunctions, band_functions, band_split
from ntkc.tiling.examples import Examples
from ntkc.tiling.geometry import PAIR, Layout, layouts

PyTree = Any

#: The FLOPs one launched operation is worth: about 5 µs of a CPU backend's per-operation
#: overhead at 50 GFLOP/s. Halves are used when the contraction FLOPs they save exceed this
#: many FLOPs per operation they add.
OPERATION_FLOPS = 250_000
#: ... and at least this share of the plan's predicted FLOPs: smaller savings are lost to the
#: halves' smaller batches (measured on MLPs, x2 = None: a 3 % saving ran 1.15× slower).
SHARE = 0.05


@dataclasses.dataclass(frozen=True, eq=False)
class Halves:
    """The symmetric kernel of ``n`` examples from blocks of ``sizes = (a, n - a)`` examples:
    ``halves(params, x1, None, kw1, kw2)`` is the plan's kernel (the executable's signature).

    Attributes:
      sizes: the examples in each half (the second is padded to the first's size).
      pair_flops_fraction: the pairs' contraction FLOPs run, over the whole plan's.
    """

    pair: Any
    functions: BandFunctions
    layouts: tuple[Layout, ...]
    x_axes: PyTree
    sizes: tuple[int, int]
    pair_flops_fraction: float

    def __call__(self, params: PyTree, x1: PyTree, x2: None, kw1: dict, kw2: dict) -> PyTree:
        a, b = self.sizes
        first = _take(x1, self.x_axes, 0, a, a)
        second = _take(x1, self.x_axes, a, a + b, a)
        fns = self.functions
        row_a, row_b = fns.row(params, first, {}), fns.row(params, second, {})
        blocks = [jax.tree_util.tree_leaves(fns.crossed(rows, other, params, x, {}))
                  for rows, other, x in ((row_a, row_a, first), (row_a, row_b, second), (row_b, row_b, second))]
        leaves = [_assemble(layout, aa, ab, bb, b) for layout, aa, ab, bb in zip(self.layouts, *blocks)]
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(self.pair.problem.out1), leaves)


def _take(x: PyTree, axes: PyTree, start: int, stop: int, size: int) -> PyTree:
    """Examples ``start:stop`` of every batched leaf, padded to ``size`` by repeating the last."""
    def cut(axis, leaf):
        if axis is None:
            return leaf
        part = jax.lax.slice_in_dim(leaf, start, stop, axis=axis)
        if stop - start < size:
            last = jax.lax.slice_in_dim(leaf, stop - 1, stop, axis=axis)
            part = jnp.concatenate([part] + [last] * (size - (stop - start)), axis=axis)
        return part
    return jax.tree_util.tree_map(cut, axes, x, is_leaf=lambda a: a is None)


def _assemble(layout: Layout, aa, ab, bb, b: int):
    """``[[AA, AB], [BA, BB]]`` with ``BA`` = ``AB`` mirrored, the padded examples cropped."""
    a = aa.shape[layout.rows]
    top = jnp.concatenate([aa, layout.crop(ab, (a, b))], axis=layout.cols)
    bottom = jnp.concatenate([layout.crop(layout.mirror(ab), (b, a)), layout.crop(bb, (b, b))], axis=layout.cols)
    return jnp.concatenate([top, bottom], axis=layout.rows)


def _flops(plan) -> tuple[float, float | None]:
    """(the plan's predicted FLOPs, those of its contractions or None when it has none)."""
    parts = {name: float(value) for name, value in plan.costs()[plan.method].flops.items()}
    return sum(parts.values()), parts.get("contractions")


def halves(plan, priced: bool = True) -> Halves | None:
    """The :class:`Halves` computing ``plan``'s kernel, or None when they do not apply to it or
    (``priced``) do not pay: the contraction FLOPs saved are fewer than
    :data:`OPERATION_FLOPS` per operation added or :data:`SHARE` of the plan's."""
    analysis = plan.analysis
    if plan.complex is not None or analysis is None or analysis.holds_tracers:
        return None
    problem = analysis.problem
    if problem.side2 is not None or not problem.vmapped or plan.specs.kwargs or analysis.structure_error is not None:
        return None
    n = problem.side1.n_examples()
    if not isinstance(n, int) or n < 2 or any(layout.mode != PAIR for layout in layouts(problem, n, n)):
        return None
    total, whole = _flops(plan)
    if whole is None or whole <= 0 or (priced and whole / 4 < SHARE * total):  # at most a quarter is saved
        return None
    a = (n + 1) // 2
    x_axes = problem.side1.vmap.x
    half = Examples(plan.specs.x1, x_axes, {}, {}).specs(a)[0]
    pair = plan_for(problem.side1.f, plan.specs.params, half, half, {}, plan.method, analysis.options)
    if pair.method != plan.method or pair.complex is not None:
        return None
    cut = band_split(pair)
    if cut is None:
        return None
    _, one, two = program_inputs(pair.problem, pair.params)
    mirror = mirrored(cut, one.data, two.data)
    if mirror is None:
        return None
    part = _flops(pair)[1]
    if part is None:
        return None
    added = 2 * len(mirror[0].steps) + len(cut.row.steps) + 4 * len(jax.tree_util.tree_leaves(problem.out1))
    if priced and whole - 3 * part < max(OPERATION_FLOPS * added, SHARE * total):
        return None
    return Halves(pair=pair, functions=band_functions(pair, cut, (mirror, None)),
                  layouts=tuple(layouts(pair.problem, a, a)), x_axes=x_axes, sizes=(a, n - a),
                  pair_flops_fraction=3 * part / whole)


STRATEGIES.append(halves)

"""Row bands: side 1's part of a tile's program computed once for a band of tiles.

A band is ``b1`` examples of x1 against all of x2 (with x2 = None: against the examples from the
band's first one on), in tiles of ``b2`` columns. The tile's program is cut
(:func:`ntkc.backends.split.split`) into a **row** program — x1's operands, Jacobians or
linearization: per example, the expensive part of a CNN's kernel — run once per band, and a
**column** program run per tile on the row program's results. Every tile has the one shape
``b1 × b2`` (edges are padded by repeating the last example, and cropped), so the row results of
a band fit every tile of it and two programs are compiled in all.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np

from ntkc.backends import program as programs
from ntkc.backends.split import Split, split, unfuse
from ntkc.methods.calls import program_inputs
from ntkc.planning import NTKPlan

PyTree = Any


@dataclasses.dataclass(frozen=True, eq=False)
class BandKernel:
    """A tile shape's plan cut into ``row(params, x1, kw1) -> carried`` and
    ``column(carried, params, x2, kw2) -> kernel`` (both compiled ahead of time); ``bytes`` is
    XLA's measured working set of the larger of the two (the carried arrays counted in the
    column program's arguments)."""

    plan: NTKPlan
    cut: Split
    row: Callable
    column: Callable
    bytes: int


def band_split(plan: NTKPlan) -> Split | None:
    """The plan's program cut into row and column parts, or None when side 1 has no work of its
    own (a complex plan; NTK-vector products, which need both sides in every call)."""
    if plan.complex is not None or plan.problem.side2 is None:
        return None
    _, one, two = program_inputs(plan.problem, plan.params)
    program = unfuse(plan.program, set(one.data), set(two.data))
    cut = split(program, one.names)
    return cut if cut.useful else None


def _functions(plan: NTKPlan, cut: Split):
    inputs, one, _ = program_inputs(plan.problem, plan.params)
    first, rest = inputs[:len(one.names)], inputs[len(one.names):]
    out_tree = jax.tree_util.tree_structure(plan.problem.out1)
    leaves = jax.tree_util.tree_leaves

    def row(params, x1, kw1):
        env = dict(zip(first, leaves(params) + leaves(x1) + leaves(kw1), strict=True))
        return tuple(programs.run(cut.row, {n: env[n] for n in cut.row.inputs}))

    def column(carried, params, x2, kw2):
        env = dict(zip(cut.row.outputs, carried, strict=True))
        env.update(zip(first[:one.n_params], leaves(params), strict=True))
        env.update(zip(rest, leaves(x2) + leaves(kw2), strict=True))
        kernels = programs.run(cut.column, {n: env[n] for n in cut.column.inputs})
        return jax.tree_util.tree_unflatten(out_tree, kernels)

    return row, column


def _bytes(compiled) -> int:
    stats = compiled.memory_analysis()
    if stats is None:
        return 0
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
               - stats.alias_size_in_bytes)


def compiled_band(plan: NTKPlan, cut: Split, x1, x2, params, kw1: dict, kw2: dict) -> BandKernel:
    """Both parts of ``cut`` compiled ahead of time for these specs, with XLA's memory analysis."""
    row, column = _functions(plan, cut)
    row_compiled = jax.jit(row).lower(params, x1, kw1).compile()
    carried = jax.eval_shape(row, params, x1, kw1)
    column_compiled = jax.jit(column).lower(carried, params, x2, kw2).compile()
    return BandKernel(plan=plan, cut=cut, row=lambda p, a, k: row_compiled(p, a, k),
                      column=lambda c, p, b, k: column_compiled(c, p, b, k),
                      bytes=max(_bytes(row_compiled), _bytes(column_compiled)))


def pad_examples(block: PyTree, axes: PyTree, size: int) -> PyTree:
    """``block`` (host arrays, batch axes ``axes``) padded to ``size`` examples by repeating its
    last example (a real input: no zeros a model might divide by).

    >>> pad_examples(np.arange(3.0), 0, 5)
    array([0., 1., 2., 2., 2.])
    """
    def pad(axis, leaf):
        if axis is None or np.shape(leaf)[axis] == size:
            return leaf
        last = np.take(leaf, [-1], axis=axis)
        reps = [1] * np.ndim(leaf)
        reps[axis] = size - np.shape(leaf)[axis]
        return np.concatenate([leaf, np.tile(last, reps)], axis=axis)
    return jax.tree_util.tree_map(pad, axes, block, is_leaf=lambda a: a is None)

"""Row bands: side 1's part of a tile's program computed once for a band of tiles.

A band is ``b1`` examples of x1 against all of x2 (with x2 = None: against the examples from the
band's first one on), in tiles of ``b2`` columns. The tile's program is cut
(:func:`ntkc.backends.split.split`) into a **row** program — x1's operands, Jacobians or
linearization: per example, the expensive part of a CNN's kernel — run once per band, and a
**column** program run per tile on the row program's results. Every tile has the one shape
``b1 × b2`` (edges are padded by repeating the last example, and cropped), so the row results of
a band fit every tile of it and two programs are compiled in all.

The row program runs on ``chunk`` examples at a time (``b1`` is a multiple of it), each chunk's
results placed into the band's arrays in place (buffer donation): a band's per-example
temporaries — a CNN's backward passes, one per example and output — are then those of one
chunk, and the band can be as tall as its results fit.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
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
    """A tile shape's plan cut into ``row(params, chunks) -> carried`` (``chunks``: the band's
    ``(x1, kw1)`` in blocks of ``chunk`` examples) and ``column(carried, params, x2, kw2) ->
    kernel``, compiled ahead of time; ``bytes`` is XLA's measured working set of the larger of
    the two (the row's: one chunk's program and the band's arrays; the column's counts the band's
    arrays among its arguments)."""

    plan: NTKPlan
    cut: Split
    row: Callable
    column: Callable
    bytes: int
    chunk: int


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


def _batch_axes(small, large) -> list:
    """Per array, the axis whose size grows with the examples (None: the same for all)."""
    return [next((a for a, (m, n) in enumerate(zip(u.shape, v.shape)) if m != n), None)
            for u, v in zip(small, large)]


def _assembler(row_compiled, carried, axes, chunk: int) -> Callable:
    """``row(params, chunks)``: each chunk's row results placed in the band's arrays in place."""
    def place(buffers, parts, start):
        return tuple(part if axis is None else jax.lax.dynamic_update_slice_in_dim(buffer, part, start, axis)
                     for buffer, part, axis in zip(buffers, parts, axes))
    place = jax.jit(place, donate_argnums=0)
    allocate = jax.jit(lambda: tuple(jax.numpy.zeros(c.shape, c.dtype) for c in carried))

    def row(params, chunks):
        if len(chunks) == 1:
            return row_compiled(params, *chunks[0])
        buffers = allocate()
        for k, (x, kw) in enumerate(chunks):
            buffers = place(buffers, row_compiled(params, x, kw), k * chunk)
        return buffers
    return row


#: Compiled band kernels, by plan (a plan is for one tile shape) and chunk.
_COMPILED: "weakref.WeakKeyDictionary[NTKPlan, dict]" = weakref.WeakKeyDictionary()


def compiled_band(plan: NTKPlan, cut: Split, side1_specs: Callable, x2, params, kw2: dict, chunk: int) -> BandKernel:
    """Both parts of ``cut`` compiled ahead of time (the row part for ``chunk`` examples;
    ``side1_specs(n)`` gives x1's and its keyword arguments' specs for ``n``), with XLA's
    memory analysis; once per plan and chunk."""
    cached = _COMPILED.setdefault(plan, {})
    if chunk not in cached:
        cached[chunk] = _compile_band(plan, cut, side1_specs, x2, params, kw2, chunk)
    return cached[chunk]


def _compile_band(plan: NTKPlan, cut: Split, side1_specs: Callable, x2, params, kw2: dict, chunk: int) -> BandKernel:
    row, column = _functions(plan, cut)
    b1 = plan.problem.side1.n_examples()
    x1, kw1 = side1_specs(b1)
    carried = jax.eval_shape(row, params, x1, kw1)
    column_compiled = jax.jit(column).lower(carried, params, x2, kw2).compile()
    part_x, part_kw = side1_specs(chunk)
    row_compiled = jax.jit(row).lower(params, part_x, part_kw).compile()
    axes = _batch_axes(jax.eval_shape(row, params, part_x, part_kw), carried)
    band_bytes = sum(math.prod(c.shape) * np.dtype(c.dtype).itemsize for c in carried) if chunk < b1 else 0
    return BandKernel(plan=plan, cut=cut, row=_assembler(row_compiled, carried, axes, chunk),
                      column=lambda c, p, b, k: column_compiled(c, p, b, k), chunk=chunk,
                      bytes=max(_bytes(row_compiled) + band_bytes, _bytes(column_compiled)))

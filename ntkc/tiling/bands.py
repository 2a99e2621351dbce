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
from ntkc.backends.split import Split, mirrored, split, unfuse
from ntkc.methods.calls import program_inputs
from ntkc.planning import NTKPlan

PyTree = Any


@dataclasses.dataclass(frozen=True, eq=False)
class BandKernel:
    """A tile shape's plan cut into ``row(params, chunks) -> carried`` (``chunks``: the band's
    ``(x1, kw1)`` in blocks of ``chunk`` examples) and ``column(carried, params, x2, kw2) ->
    kernel``, compiled ahead of time; ``bytes`` is XLA's measured working set of the larger of
    the two (the row's: one chunk's program and the band's arrays; the column's counts the band's
    arrays among its arguments). ``own(carried, params, x2, kw2, start)``, when not None, is the
    column program of the band's own examples ``start:start + b2`` (x2 = x1): side 2's results
    sliced from the band's, not recomputed."""

    plan: NTKPlan
    cut: Split
    row: Callable
    column: Callable
    own: Callable | None
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


@dataclasses.dataclass(frozen=True)
class BandFunctions:
    """A cut plan's programs as functions (see :func:`band_functions`)."""

    row: Callable
    column: Callable
    own: Callable
    crossed: Callable


def band_functions(plan: NTKPlan, cut: Split, diagonal=None) -> BandFunctions:
    """``row(params, x1, kw1)``, ``column(carried, params, x2, kw2)`` and, given ``diagonal`` =
    (:func:`~ntkc.backends.split.mirrored`'s program and aliases, the carried arrays' batch
    axes), ``own(carried, params, x2, kw2, start)``: the column program for x2 = the band's
    examples ``start:start + b2``, reading side 2's results from the band's; and
    ``crossed(carried, other, params, x2, kw2)``: the column program for x2 whose row results
    ``other`` are already computed (read instead of recomputed)."""
    inputs, one, _ = program_inputs(plan.problem, plan.params)
    first, rest = inputs[:len(one.names)], inputs[len(one.names):]
    out_tree = jax.tree_util.tree_structure(plan.problem.out1)
    leaves = jax.tree_util.tree_leaves
    b2 = plan.problem.side2.n_examples()

    def row(params, x1, kw1):
        env = dict(zip(first, leaves(params) + leaves(x1) + leaves(kw1), strict=True))
        return tuple(programs.run(cut.row, {n: env[n] for n in cut.row.inputs}))

    def environment(carried, params, x2, kw2) -> dict:
        env = dict(zip(cut.row.outputs, carried, strict=True))
        env.update(zip(first[:one.n_params], leaves(params), strict=True))
        env.update(zip(rest, leaves(x2) + leaves(kw2), strict=True))
        return env

    def finish(program, env):
        kernels = programs.run(program, {n: env[n] for n in program.inputs})
        return jax.tree_util.tree_unflatten(out_tree, kernels)

    def column(carried, params, x2, kw2):
        return finish(cut.column, environment(carried, params, x2, kw2))

    def own(carried, params, x2, kw2, start):
        (program, aliases), axes = diagonal
        env = environment(carried, params, x2, kw2)
        axis_of = dict(zip(cut.row.outputs, axes))
        for name, source in aliases.items():  # no axes: the band is one tile (start 0, all of it)
            axis = axis_of[source]
            env[name] = env[source] if axis is None else jax.lax.dynamic_slice_in_dim(env[source], start, b2, axis)
        return finish(program, env)

    def crossed(carried, other, params, x2, kw2):
        program, aliases = diagonal[0]
        env = environment(carried, params, x2, kw2)
        theirs = dict(zip(cut.row.outputs, other, strict=True))
        env.update({name: theirs[source] for name, source in aliases.items()})
        return finish(program, env)

    return BandFunctions(row=row, column=column, own=own, crossed=crossed)


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


def assembler(row_call, carried, axes, chunk: int, stacked: int = 0, shardings=None) -> Callable:
    """``row(params, chunks)``: each chunk's row results (``row_call(params, x, kw)``) placed in
    the band's arrays in place (buffer donation). ``carried``: the band's array specs; ``axes``:
    each one's example axis (None: not per example). ``stacked`` leading axes come before them
    (a mesh's devices, :mod:`ntkc.tiling.devices`), with the band's arrays allocated with
    ``shardings``."""
    def place(buffers, parts, start):
        return tuple(part if axis is None else jax.lax.dynamic_update_slice_in_dim(buffer, part, start, axis + stacked)
                     for buffer, part, axis in zip(buffers, parts, axes))
    place = jax.jit(place, donate_argnums=0)
    allocate = jax.jit(lambda: tuple(jax.numpy.zeros(c.shape, c.dtype) for c in carried), out_shardings=shardings)

    def row(params, chunks):
        if len(chunks) == 1:
            return row_call(params, *chunks[0])
        buffers = allocate()
        for k, (x, kw) in enumerate(chunks):
            buffers = place(buffers, row_call(params, x, kw), k * chunk)
        return buffers
    return row


#: Compiled band kernels, by plan (a plan is for one tile shape), chunk and symmetry.
_COMPILED: "weakref.WeakKeyDictionary[NTKPlan, dict]" = weakref.WeakKeyDictionary()


def compiled_band(plan: NTKPlan, cut: Split, side1_specs: Callable, x2, params, kw2: dict, chunk: int,
                  symmetric: bool) -> BandKernel:
    """Both parts of ``cut`` compiled ahead of time (the row part for ``chunk`` examples;
    ``side1_specs(n)`` gives x1's and its keyword arguments' specs for ``n``), with XLA's
    memory analysis, and (``symmetric``) the column program of the band's own examples when
    side 2's work mirrors side 1's; once per plan, chunk and symmetry."""
    cached = _COMPILED.setdefault(plan, {})
    if (chunk, symmetric) not in cached:
        cached[(chunk, symmetric)] = _compile_band(plan, cut, side1_specs, x2, params, kw2, chunk, symmetric)
    return cached[(chunk, symmetric)]


def per_example(program: programs.Program) -> bool:
    """Every step is a call mapped over examples, on the program's inputs: the program can run
    on any number of examples, a chunk at a time."""
    return all(isinstance(s, programs.Call) and s.in_axes is not None and set(s.args) <= set(program.inputs)
               for s in program.steps)


def _compile_band(plan: NTKPlan, cut: Split, side1_specs: Callable, x2, params, kw2: dict, chunk: int,
                  symmetric: bool) -> BandKernel:
    b1, b2 = plan.problem.side1.n_examples(), plan.problem.side2.n_examples()
    if not per_example(cut.row):  # e.g. outside-in Jacobians: einsums over the band's examples
        chunk = b1
    x1, kw1 = side1_specs(b1)
    functions = band_functions(plan, cut)
    row, column = functions.row, functions.column
    carried = jax.eval_shape(row, params, x1, kw1)
    column_compiled = jax.jit(column).lower(carried, params, x2, kw2).compile()
    part_x, part_kw = side1_specs(chunk)
    row_compiled = jax.jit(row).lower(params, part_x, part_kw).compile()
    axes = None
    if per_example(cut.row):  # any number of examples: the axes that grow with them
        axes = _batch_axes(jax.eval_shape(row, params, *side1_specs(1)), jax.eval_shape(row, params, *side1_specs(2)))
    own = None
    if symmetric and (axes is not None or b2 == b1):
        _, one, two = program_inputs(plan.problem, plan.params)
        mirror = mirrored(cut, one.data, two.data)
        if mirror is not None:
            own_fn = band_functions(plan, cut, (mirror, axes or [None] * len(carried))).own
            own_compiled = jax.jit(own_fn).lower(carried, params, x2, kw2, 0).compile()
            own = lambda c, p, b, k, start: own_compiled(c, p, b, k, start)
    band_bytes = sum(math.prod(c.shape) * np.dtype(c.dtype).itemsize for c in carried) if chunk < b1 else 0
    return BandKernel(plan=plan, cut=cut, row=assembler(row_compiled, carried, axes, chunk),
                      column=lambda c, p, b, k: column_compiled(c, p, b, k), own=own, chunk=chunk,
                      bytes=max(_bytes(row_compiled) + band_bytes, _bytes(column_compiled)))

"""The structured-derivatives compiler: a flat list of named passes over a :class:`Compilation`.

    lower → structure → propagate → cotangents → terms → weight_sharing → order → share

Each pass is a function ``Compilation -> Compilation`` whose docstring states what it needs and
guarantees. ``NTKC_DUMP=1`` prints the IR after every pass; the tests run
:func:`ntkc.ir.verify.verify` after every pass (``compile_plan(..., check=True)``).
Everything here works on shapes: the problem's sides hold ``jax.ShapeDtypeStruct`` s.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable

import jax

from ntkc.batching import Side, same_examples, shape_structs
from ntkc.errors import (  # noqa: F401  (MethodFallbackWarning, StructureUnavailable: re-exported)
    ComplexIntermediates, ForwardModeUnavailable, MethodFallbackWarning, ReverseModeUnavailable, StructureUnavailable,
)
from ntkc.backends.operands import operand_shapes
from ntkc.ir.compilation import Compilation, CotangentTarget, SideIR  # noqa: F401  (re-exported)
from ntkc.ir.from_jaxpr import lower
from ntkc.ir.printer import render
from ntkc.ir.verify import verify
from ntkc.passes.consumers import find_uses
from ntkc.passes.cotangents import cotangents_pass
from ntkc.passes.build_terms import terms_pass
from ntkc.passes.order import order_pass
from ntkc.passes.propagate import propagate_pass
from ntkc.passes.share import share_pass
from ntkc.passes.sharing import weight_sharing_pass


def _lower_side(side: Side, params_struct, loops: bool) -> SideIR:
    if side.vmap is None:
        fn = lambda p, xx, **kw: side.call(p, xx, kw)
    else:
        fn = lambda p, xx, **kw: side.example(p, xx, kw)
    x, kw = side.example_specs()
    graph, out_tree = lower(fn, params_struct, x, kw, loops=loops)
    return SideIR(side=side, graph=graph, out_tree=out_tree)


def lower_sides(problem, params, *, memory_limit: int | None = None, loops: bool = True) -> Compilation:
    """The ``lower`` pass's graphs without its checks: one linear :class:`Graph` per side (per
    example under ``vmap_axes``; shared by both sides when :func:`same_examples`), tangent inputs
    in parameter-leaf order; linear scans kept whole as loops when ``loops``, else unrolled."""
    params_struct = shape_structs(params)
    theta_shapes = tuple(tuple(s.shape) for s in jax.tree_util.tree_leaves(params_struct))
    first = _lower_side(problem.side1, params_struct, loops)
    if problem.side2 is None:
        sides = (first,)
    elif same_examples(problem.side1, problem.side2):
        sides = (first, dataclasses.replace(first, side=problem.side2))
    else:
        sides = (first, _lower_side(problem.side2, params_struct, loops))
    return Compilation(problem=problem, theta_shapes=theta_shapes, memory_limit=memory_limit, sides=sides)


def reverse_blocker(comp: Compilation) -> ReverseModeUnavailable | None:
    """Why the lowered ``f`` cannot be differentiated in reverse mode, or None when it can."""
    for s in comp.sides:
        blockers = s.graph.reverse_blockers()
        if blockers:
            return ReverseModeUnavailable(blockers[0])
    return None


def forward_blocker(comp: Compilation) -> ForwardModeUnavailable | None:
    """Why the lowered ``f`` has no forward mode (a ``jax.custom_vjp`` in it), or None."""
    for s in comp.sides:
        blockers = s.graph.forward_blockers()
        if blockers:
            return ForwardModeUnavailable(blockers[0])
    return None


def lower_pass(comp: Compilation) -> Compilation:
    """Needs: lowered graphs (:func:`lower_sides`). Guarantees: the structured method applies —
    raises :class:`ReverseModeUnavailable` or :class:`ComplexIntermediates` (both
    :class:`StructureUnavailable`) when it does not."""
    blocker = reverse_blocker(comp)
    if blocker is not None:
        raise blocker
    for s in comp.sides:
        complex_eqns = s.graph.complex_eqns()
        if complex_eqns:  # name the user's first complex operation, not ntkc's recombination
            users = [e for e in complex_eqns if "ntkc/complex_models.py" not in e.source]
            raise ComplexIntermediates((users or complex_eqns)[0])
    return comp


def structure_pass(comp: Compilation) -> Compilation:
    """Needs: graphs. Guarantees: every equation reading a parameter tangent is a :class:`Use`
    with its rule's form (or the exact dense fallback, with a warning)."""
    return comp.replace(sides=tuple(dataclasses.replace(s, uses=tuple(find_uses(s.graph))) for s in comp.sides))


#: The pipeline after lowering, in order.
PASSES: list[tuple[str, Callable[[Compilation], Compilation]]] = [
    ("lower", lower_pass),
    ("structure", structure_pass),
    ("propagate", propagate_pass),
    ("cotangents", cotangents_pass),
    ("terms", terms_pass),
    ("weight_sharing", weight_sharing_pass),
    ("order", order_pass),
    ("share", share_pass),
]


def compile_plan(problem, params, *, memory_limit: int | None = None, check: bool = False,
                 loops: bool = True, lowered: Compilation | None = None) -> Compilation:
    """Run the pipeline — the compiler's one entry point. ``lowered`` continues from graphs
    :func:`lower_sides` already built (for the same problem and options). ``check`` runs the
    verifier after every pass; ``NTKC_DUMP=1`` prints the IR after every pass to stderr.
    ``loops=False`` unrolls every linear scan."""
    dump = os.environ.get("NTKC_DUMP", "") not in ("", "0")
    comp = lowered if lowered is not None else lower_sides(problem, params, memory_limit=memory_limit, loops=loops)
    for name, run in PASSES:
        comp = run(comp)
        if check:
            verify(comp, after=name, operand_shapes=operand_shapes)
        if dump:
            print(f"=== ntkc IR after pass '{name}' ===\n{render(comp)}", file=sys.stderr)
    return comp

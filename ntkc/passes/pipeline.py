"""The structured-derivatives compiler: a flat list of named passes over a :class:`Compilation`.

    lower → structure → propagate → cotangents → terms → weight_sharing → order

Each pass is a function ``Compilation -> Compilation`` whose docstring states what it needs and
guarantees. ``NTKC_DUMP=1`` prints the IR after every pass; the tests run
:func:`ntkc.ir.verify.verify` after every pass (``compile_plan(..., check=True)``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Callable

import jax

from ntkc.batching import Side, shape_structs
from ntkc.ir.from_jaxpr import lower
from ntkc.ir.graph import Graph, Var
from ntkc.ir.terms import KernelPlan
from ntkc.passes.consumers import Use, find_uses
from ntkc.problem import NTKProblem


class StructureUnavailable(NotImplementedError):
    """The structured method does not apply to this ``f``; the message (the subclass's ``why``,
    naming the equation and the user's line) says why and which exact method computes the
    kernel instead (:func:`ntkc.methods.jacobian.fallback`)."""

    why = "ntkc: '{name}' (from {source}) has no structured form."

    def __init__(self, eqn):
        self.primitive, self.source = eqn.name, eqn.source
        super().__init__(self.why.format(name=eqn.name, source=eqn.source))


class ComplexIntermediates(StructureUnavailable):
    """``f``'s linear program computes with complex numbers (complex parameters or outputs,
    already split into real parts by :mod:`ntkc.complex_models`, still have complex
    intermediates). Structured terms are real einsums, so the kernel is computed by Jacobian
    contraction of the real-parameter problem."""

    why = ("ntkc: f's linearization computes with complex values ('{name}' from {source}); the "
           "structured method is real-valued, so the NTK is computed by Jacobian contraction "
           "(method='jacobian') instead.")


class ReverseModeUnavailable(StructureUnavailable):
    """``f``'s linear program contains an equation JAX cannot run in reverse (a ``while`` loop
    with a data-dependent trip count): no cotangent sweep, VJP or NTK-vector product exists,
    only forward-mode Jacobians. The methods fall back to forward-mode Jacobian contraction."""

    why = ("ntkc: f's linearization contains '{name}' (from {source}), a loop with a "
           "data-dependent trip count, which JAX cannot differentiate in reverse mode; the NTK "
           "is computed by forward-mode Jacobian contraction (method='jacobian') instead.")


class MethodFallbackWarning(UserWarning):
    """The requested method does not apply to ``f`` (it needs reverse mode, which a
    data-dependent ``while`` rules out, or real-valued structure); Jacobian contraction computed
    the (exact) kernel instead. The message names the cause and the user's line."""


@dataclasses.dataclass(frozen=True)
class CotangentTarget:
    """A consumer output whose cotangent ∂f/∂z the backward sweep produces; ``summed`` are z's
    axes summed out before storing (output-tiled for every use reading it). ``loop`` is the kept
    loop equation whose body defines z (its cotangent then has a leading iteration axis)."""

    var: Var
    summed: tuple[int, ...] = ()
    loop: Any = None


@dataclasses.dataclass(frozen=True, eq=False)
class SideIR:
    """One side's linear program, its parameter uses and the cotangents its plan needs."""

    side: Side
    graph: Graph
    out_tree: Any
    uses: tuple[Use, ...] = ()
    targets: tuple[CotangentTarget, ...] = ()

    @property
    def vmapped(self) -> bool:
        return self.side.vmap is not None

    def target_of(self, use: Use) -> CotangentTarget:
        return next(t for t in self.targets if t.var is use.output)


@dataclasses.dataclass(frozen=True, eq=False)
class Compilation:
    """Everything the passes know. ``sides`` has one entry when x2 is x1 (side 2 = side 1)."""

    problem: NTKProblem
    theta_shapes: tuple[tuple[int, ...], ...]
    memory_limit: int | None = None
    sides: tuple[SideIR, ...] = ()
    kernels: tuple[KernelPlan, ...] = ()

    def side(self, k: int) -> SideIR:
        return self.sides[0] if k == 1 or len(self.sides) == 1 else self.sides[1]

    def replace(self, **changes) -> "Compilation":
        return dataclasses.replace(self, **changes)


def _example_struct(tree, axes):
    """ShapeDtypeStructs of one example: the batch axis removed from every batched leaf."""
    def one(axis, leaf):
        shape = tuple(jax.numpy.shape(leaf))
        if axis is not None:
            shape = shape[:axis] + shape[axis + 1:]
        return jax.ShapeDtypeStruct(shape, jax.numpy.result_type(leaf))
    return jax.tree_util.tree_map(one, axes, tree, is_leaf=lambda a: a is None)


def traced_inputs(side: Side) -> tuple:
    """What ``f`` is traced on for one side: ``(x, kwargs)`` as ShapeDtypeStructs — one example
    (batch axes removed, batched kwargs only; shared kwargs are constants) under ``vmap_axes``,
    the whole batch otherwise."""
    if side.vmap is None:
        return shape_structs(side.x), shape_structs(side.kwargs)
    batched, _ = side.batched_kwargs()
    return (_example_struct(side.x, side.vmap.x),
            {k: _example_struct(v, side.vmap.kwargs[k]) for k, v in batched.items()})


def _lower_side(side: Side, params_struct, loops: bool) -> SideIR:
    if side.vmap is None:
        fn = lambda p, xx, **kw: side.f(p, xx, **kw)
    else:
        fn = lambda p, xx, **kw: side.example(p, xx, kw)
    x, kw = traced_inputs(side)
    graph, out_tree = lower(fn, params_struct, x, kw, loops=loops)
    return SideIR(side=side, graph=graph, out_tree=out_tree)


def same_examples(side1: Side, side2: Side | None) -> bool:
    """Whether both sides run the same per-example program: ``vmap_axes`` set, the same ``f``,
    axes and shared keyword arguments, and examples of equal shapes and dtypes. Such sides share
    one lowered graph (so one plan), and the backend runs their examples in one batch."""
    if side2 is None or side1.vmap is None or side1.f is not side2.f or side1.vmap != side2.vmap:
        return False
    unbatched = lambda side: [leaf for leaf, a in zip(
        jax.tree_util.tree_leaves(side.x),
        jax.tree_util.tree_leaves(side.vmap.x, is_leaf=lambda v: v is None)) if a is None]
    if any(a is not b for a, b in zip(unbatched(side1), unbatched(side2))):
        return False
    b1, shared1 = side1.batched_kwargs()
    b2, shared2 = side2.batched_kwargs()
    if shared1.keys() != shared2.keys() or any(shared1[k] is not shared2[k] for k in shared1):
        return False
    one, two = traced_inputs(side1), traced_inputs(side2)
    return jax.tree_util.tree_structure(one) == jax.tree_util.tree_structure(two) and all(
        a.shape == b.shape and a.dtype == b.dtype
        for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(two)))


def _lower_sides(problem: NTKProblem, params_struct, loops: bool) -> tuple[SideIR, ...]:
    first = _lower_side(problem.side1, params_struct, loops)
    if problem.side2 is None:
        return (first,)
    if same_examples(problem.side1, problem.side2):
        return (first, dataclasses.replace(first, side=problem.side2))
    return (first, _lower_side(problem.side2, params_struct, loops))


def lower_pass(comp: Compilation, params_struct, loops: bool = True) -> Compilation:
    """Needs: a checked problem. Guarantees: one linear :class:`Graph` per side (per example
    under ``vmap_axes``; shared by both sides when :func:`same_examples`), tangent inputs in
    parameter-leaf order; linear scans kept whole as loops when ``loops``, else unrolled.
    Raises :class:`ReverseModeUnavailable` or :class:`ComplexIntermediates` (both
    :class:`StructureUnavailable`) when the structured method does not apply."""
    sides = _lower_sides(comp.problem, params_struct, loops)
    for s in sides:
        blockers = s.graph.reverse_blockers()
        if blockers:
            raise ReverseModeUnavailable(blockers[0])
    for s in sides:
        complex_eqns = s.graph.complex_eqns()
        if complex_eqns:  # name the user's first complex operation, not ntkc's recombination
            users = [e for e in complex_eqns if "ntkc/complex_models.py" not in e.source]
            raise ComplexIntermediates((users or complex_eqns)[0])
    return comp.replace(sides=sides)


def reverse_mode_blocker(problem: NTKProblem, params) -> ReverseModeUnavailable | None:
    """Why ``problem``'s ``f`` cannot be differentiated in reverse mode, or None when it can."""
    for s in _lower_sides(problem, shape_structs(params), True):
        blockers = s.graph.reverse_blockers()
        if blockers:
            return ReverseModeUnavailable(blockers[0])
    return None


def structure_pass(comp: Compilation) -> Compilation:
    """Needs: graphs. Guarantees: every equation reading a parameter tangent is a :class:`Use`
    with its rule's form (or the exact dense fallback, with a warning)."""
    return comp.replace(sides=tuple(dataclasses.replace(s, uses=tuple(find_uses(s.graph))) for s in comp.sides))


def _passes() -> list[tuple[str, Callable]]:
    from ntkc.passes.cotangents import cotangents_pass
    from ntkc.passes.order import order_pass
    from ntkc.passes.propagate import propagate_pass
    from ntkc.passes.sharing import weight_sharing_pass
    from ntkc.passes.build_terms import terms_pass

    return [
        ("structure", structure_pass),
        ("propagate", propagate_pass),
        ("cotangents", cotangents_pass),
        ("terms", terms_pass),
        ("weight_sharing", weight_sharing_pass),
        ("order", order_pass),
    ]


def compile_plan(problem: NTKProblem, params, *, memory_limit: int | None = None,
                 check: bool = False, loops: bool = True) -> Compilation:
    """Run the pipeline. ``check`` runs the verifier after every pass; ``NTKC_DUMP=1`` prints
    the IR after every pass to stderr. ``loops=False`` unrolls every linear scan (the exported
    source is written from such plans)."""
    from ntkc.ir.printer import render
    from ntkc.ir.verify import verify

    dump = os.environ.get("NTKC_DUMP", "") not in ("", "0")
    theta_shapes = tuple(tuple(jax.numpy.shape(p)) for p in jax.tree_util.tree_leaves(params))
    comp = Compilation(problem=problem, theta_shapes=theta_shapes, memory_limit=memory_limit)
    steps = [("lower", lambda c: lower_pass(c, shape_structs(params), loops))] + _passes()
    for name, run in steps:
        comp = run(comp)
        if check:
            verify(comp, after=name)
        if dump:
            print(f"=== ntkc IR after pass '{name}' ===\n{render(comp)}", file=sys.stderr)
    return comp

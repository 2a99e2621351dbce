"""Structured derivatives (paper §3.3): the NTK as the compiled sum of einsum terms.

The program (:func:`structured_program`) computes each physical side's operands — factors and
cotangents, per example, by :func:`ntkc.backends.operands.example_operands` under ``jax.vmap``
(both sides' examples in one batch when they share a graph and all their inputs are batched) —
then every term's einsum along its planned path, the outside-in Jacobians of weight-shared
leaves first, and the mean over traced axes.
"""

from __future__ import annotations

import jax
import numpy as np

from ntkc.backends.operands import example_out_shapes, operand_name, operand_names, example_operands
from ntkc.backends.program import Call, Concat, Constant, Einsum, Finish, Program, Sum, Take, Zeros
from ntkc.ir.terms import FACTOR, JACOBIAN, SHARED, Contraction
from ntkc.methods.calls import SideArgs, program_inputs
from ntkc.passes.order import einsum_spec


def _operands_fn(side_ir, out_shapes, names):
    """One example's operands from its ``params + x + kwargs`` leaves (the graph's primal inputs,
    in the same order), as a list in the order of ``names``."""
    def operands(*leaves):
        arrays = example_operands(side_ir, out_shapes, list(leaves))
        return [arrays[n] for n in names]
    return operands


def _fusable(comp, one: SideArgs, two: SideArgs | None) -> bool:
    """Both sides' examples can run as one batch: one graph, and every data input batched (an
    input shared by all examples may differ between the sides)."""
    return two is not None and comp.shared_graph and all(a is not None for a in one.data_axes())


def contraction_step(c: Contraction, output: str, names: list[str], sizes: dict, note: str = "") -> Einsum:
    """The :class:`Einsum` step of one planned contraction (labels missing from every operand,
    θ axes a use does not touch in a per-leaf Jacobian, are broadcast)."""
    spec, _ = einsum_spec(c)
    present = {l for op in c.operands for l in op.labels}
    broadcast = None
    if any(l not in present for l in c.output):
        broadcast = (tuple(sizes[l] if l in present else 1 for l in c.output), tuple(sizes[l] for l in c.output))
    return Einsum(output=output, spec=spec, args=tuple(names), path=c.path, scale=c.scale, broadcast=broadcast,
                  note=note)


def _leaf_paths(params_spec) -> list[str]:
    return [f"params{jax.tree_util.keystr(path)}" for path, _ in jax.tree_util.tree_flatten_with_path(params_spec)[0]]


def term_note(comp, term, leaf_path: str) -> str:
    """``θl params[...] via consumer [structure]; FLOPs``: the comment of a term's einsum."""
    if term.uses is None:
        via = "both sides' whole ∂f/∂θ (outside-in)"
    else:
        notes = [f"{u.primitives} [{u.form.kind}]" for u in
                 (comp.side(1).uses[term.uses[0]], comp.side(2).uses[term.uses[1]])]
        via = notes[0] if notes[0] == notes[1] else " × ".join(notes)
    cost = "" if term.contraction.flops is None else f"; {term.contraction.flops:,} FLOPs"
    return f"θ{term.leaf} {leaf_path} via {via}{cost}"


def _physical(comp):
    """Side ``k`` of an operand -> the side that computes it (side 1 for both when x2 is x1)."""
    return (lambda side: 1) if len(comp.sides) == 1 else (lambda side: side)


def _name(k: int, operand: str) -> str:
    return f"s{k}_{operand}"


def side_steps(comp, one: SideArgs, two: SideArgs | None) -> list:
    """Each physical side's operands (one example at a time, vmapped), and its constant factors."""
    per_leaf = example_out_shapes(comp)
    physical = range(1, len(comp.sides) + 1)
    names = {k: operand_names(comp.sides[k - 1], len(per_leaf)) for k in physical}
    steps = []
    if _fusable(comp, one, two):
        n1 = comp.problem.side1.n_examples()
        joined = []
        for a, b, axis in zip(one.data, two.data, one.data_axes()):
            steps.append(Concat(output=f"both_{a}", args=(a, b), axis=axis))
            joined.append(f"both_{a}")
        both = [_name(0, n) for n in names[1]]
        fn = _operands_fn(comp.sides[0], [pair[0] for pair in per_leaf], names[1])
        steps.append(Call(outputs=tuple(both), fn=fn, args=one.names[:one.n_params] + tuple(joined),
                          in_axes=one.in_axes(), name="operands",
                          doc="Factors and cotangents of one example (both sides' examples in one batch)."))
        for n, b in zip(names[1], both):
            steps += [Take(output=_name(1, n), arg=b, axis=0, start=0, stop=n1),
                      Take(output=_name(2, n), arg=b, axis=0, start=n1, stop=None)]
    else:
        for k in physical:
            side_ir, args = comp.sides[k - 1], (one if k == 1 else two)
            fn = _operands_fn(side_ir, [pair[k - 1] for pair in per_leaf], names[k])
            steps.append(Call(outputs=tuple(_name(k, n) for n in names[k]), fn=fn, args=args.names,
                              in_axes=args.in_axes() if side_ir.vmapped else None,
                              name=f"operands{k if len(physical) == 2 else ''}",
                              doc=f"Factors and cotangents of one example{'' if side_ir.vmapped else ' batch'} "
                                  f"of side {k}."))
    for k in physical:
        for i, use in enumerate(comp.sides[k - 1].uses):
            steps += [Constant(output=_name(k, f"const_{i}_{f}"), value=np.asarray(spec.value))
                      for f, spec in enumerate(use.form.factors) if spec.constant]
    return steps


def kernel_steps(comp, kernel, leaf_paths: list[str]) -> list:
    """One output leaf's kernel: shared intermediates, outside-in Jacobians, one einsum per term, their
    sum, the mean."""
    u, on = kernel.output, _physical(comp)
    sizes = kernel.label_sizes()
    for jac in kernel.jacobians:
        sizes.update(zip(jac.labels, jac.shape))

    def array(op) -> str:
        if op.kind == SHARED:
            return f"k{u}_shared{op.index}"
        k = on(op.side)
        if op.kind == JACOBIAN:
            return f"jac{k}_{u}_{op.index}"
        if op.kind == FACTOR and comp.sides[k - 1].uses[op.index].form.factors[op.factor].constant:
            return _name(k, f"const_{op.index}_{op.factor}")
        return _name(k, operand_name(op, u))

    steps = [contraction_step(c, f"k{u}_shared{i}", [array(op) for op in c.operands], sizes,
                              note="read by several contractions, computed once")
             for i, c in enumerate(kernel.shared)]
    for jac in kernel.jacobians:
        parts = [f"jac{on(jac.side)}_{u}_{jac.leaf}_part{p}" for p in range(len(jac.parts))]
        steps += [contraction_step(c, part, [array(op) for op in c.operands], sizes) for part, c in zip(parts, jac.parts)]
        steps.append(Sum(output=f"jac{on(jac.side)}_{u}_{jac.leaf}", args=tuple(parts)))
    terms = [f"k{u}_term{t}" for t in range(len(kernel.terms))]
    steps += [contraction_step(term.contraction, name, [array(op) for op in term.contraction.operands], sizes,
                               note=term_note(comp, term, leaf_paths[term.leaf]))
              for name, term in zip(terms, kernel.terms)]
    if not terms:  # f does not depend on params at all
        return steps + [Zeros(output=f"k{u}", shape=kernel.result_shape, dtype=np.dtype(kernel.dtype))]
    return steps + [Sum(output=f"k{u}_sum", args=tuple(terms)),
                    Finish(output=f"k{u}", arg=f"k{u}_sum", divisor=kernel.trace_size, dtype=np.dtype(kernel.dtype))]


def structured_program(plan) -> Program:
    """The executor of a structured compilation (see the module docstring)."""
    comp = plan.compilation
    inputs, one, two = program_inputs(comp.problem, plan.params)
    steps = side_steps(comp, one, two)
    leaf_paths = _leaf_paths(plan.params)
    for kernel in comp.kernels:
        steps += kernel_steps(comp, kernel, leaf_paths)
    return Program(inputs=inputs, steps=tuple(steps), outputs=tuple(f"k{k.output}" for k in comp.kernels))

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
from ntkc.ir.terms import FACTOR, JACOBIAN, Contraction
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


def structured_program(plan) -> Program:
    """The executor of a structured compilation (see the module docstring)."""
    comp = plan.compilation
    problem = comp.problem
    inputs, one, two = program_inputs(problem, plan.params)
    args = {1: one, 2: two if two is not None else one}
    per_leaf = example_out_shapes(comp)
    n_out = len(per_leaf)
    steps = []
    physical = (1,) if len(comp.sides) == 1 else (1, 2)
    names = {k: operand_names(comp.sides[k - 1], n_out) for k in physical}
    value = lambda k, name: f"s{k}_{name}"
    if _fusable(comp, one, two):
        n1 = problem.side1.n_examples()
        joined = []
        for a, b, axis in zip(one.data, two.data, one.data_axes()):
            steps.append(Concat(output=f"both_{a}", args=(a, b), axis=axis))
            joined.append(f"both_{a}")
        both = [value(0, n) for n in names[1]]
        fn = _operands_fn(comp.sides[0], [pair[0] for pair in per_leaf], names[1])
        steps.append(Call(outputs=tuple(both), fn=fn, args=one.names[:one.n_params] + tuple(joined),
                          in_axes=one.in_axes(), name="operands",
                          doc="Factors and cotangents of one example (both sides' examples in one batch)."))
        for n, b in zip(names[1], both):
            steps += [Take(output=value(1, n), arg=b, axis=0, start=0, stop=n1),
                      Take(output=value(2, n), arg=b, axis=0, start=n1, stop=None)]
    else:
        for k in physical:
            side_ir, a = comp.sides[k - 1], args[k]
            fn = _operands_fn(side_ir, [pair[k - 1] for pair in per_leaf], names[k])
            steps.append(Call(outputs=tuple(value(k, n) for n in names[k]), fn=fn, args=a.names,
                              in_axes=a.in_axes() if side_ir.vmapped else None,
                              name=f"operands{k if len(physical) == 2 else ''}",
                              doc=f"Factors and cotangents of one example{'' if side_ir.vmapped else ' batch'} "
                                  f"of side {k}."))
    on = (lambda side: 1) if len(physical) == 1 else (lambda side: side)
    for k in physical:
        for i, use in enumerate(comp.sides[k - 1].uses):
            for f, spec in enumerate(use.form.factors):
                if spec.constant:
                    steps.append(Constant(output=f"s{k}_const_{i}_{f}", value=np.asarray(spec.value)))
    leaf_paths = _leaf_paths(plan.params)
    outputs = []
    for kernel in comp.kernels:
        u = kernel.output
        sizes = kernel.label_sizes()
        for jac in kernel.jacobians:
            sizes.update(zip(jac.labels, jac.shape))

        def array(op):
            k = on(op.side)
            if op.kind == JACOBIAN:
                return f"jac{k}_{u}_{op.index}"
            use = comp.sides[k - 1].uses[op.index]
            if op.kind == FACTOR and use.form.factors[op.factor].constant:
                return f"s{k}_const_{op.index}_{op.factor}"
            return value(k, operand_name(op, u))

        for jac in kernel.jacobians:
            parts = []
            for p, c in enumerate(jac.parts):
                parts.append(f"jac{on(jac.side)}_{u}_{jac.leaf}_part{p}")
                steps.append(contraction_step(c, parts[-1], [array(op) for op in c.operands], sizes))
            steps.append(Sum(output=f"jac{on(jac.side)}_{u}_{jac.leaf}", args=tuple(parts)))
        terms = []
        for t, term in enumerate(kernel.terms):
            terms.append(f"k{u}_term{t}")
            steps.append(contraction_step(term.contraction, terms[-1], [array(op) for op in term.contraction.operands],
                                          sizes, note=term_note(comp, term, leaf_paths[term.leaf])))
        if terms:
            steps.append(Sum(output=f"k{u}_sum", args=tuple(terms)))
            steps.append(Finish(output=f"k{u}", arg=f"k{u}_sum", divisor=kernel.trace_size, dtype=np.dtype(kernel.dtype)))
        else:  # f does not depend on params at all
            steps.append(Zeros(output=f"k{u}", shape=kernel.result_shape, dtype=np.dtype(kernel.dtype)))
        outputs.append(f"k{u}")
    return Program(inputs=inputs, steps=tuple(steps), outputs=tuple(outputs))

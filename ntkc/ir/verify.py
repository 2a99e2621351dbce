"""The IR verifier: re-derive shapes and labels, check every invariant the passes rely on.

Modelled on autodidax's ``typecheck_jaxpr``: it recomputes rather than trusts. Tests run it
after every pass (``compile_plan(..., check=True)``); a failure names the pass that broke it.
"""

from __future__ import annotations

import numpy as np

from ntkc.ir.from_jaxpr import infer_outputs
from ntkc.ir.graph import Graph, Lit, Var
from ntkc.ir.terms import COTANGENT, FACTOR, JACOBIAN


class IRError(AssertionError):
    """The IR violates an invariant."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise IRError(msg)


def _check_eqns(eqns, defined: set, linear: set) -> None:
    for eqn in eqns:
        for v in eqn.inputs:
            _check(isinstance(v, Lit) or v in defined, f"{eqn.name}: input {v!r} used before definition")
        is_linear = any(isinstance(v, Var) and v in linear for v in eqn.inputs)
        _check(is_linear == eqn.linear, f"{eqn.name}: linear flag {eqn.linear}, inputs say {is_linear}")
        if eqn.loop is not None:
            _check_loop(eqn, defined, linear)
        for out, (shape, dtype) in zip(eqn.outputs, infer_outputs(eqn)):
            _check(out not in defined, f"{eqn.name}: output {out!r} defined twice")
            _check(tuple(out.shape) == shape and np.dtype(out.dtype) == np.dtype(dtype),
                   f"{eqn.name}: output {out!r} but the primitive gives {dtype}{list(shape)}")
            defined.add(out)
            if is_linear:
                linear.add(out)


def _check_loop(eqn, defined: set, linear: set) -> None:
    """A kept loop: body inputs match the scan's inputs (``xs`` sliced), the body is a valid
    equation list over them, and its outputs match the scan's (``ys`` stacked)."""
    loop = eqn.loop
    _check(len(loop.inputs) == len(eqn.inputs) and len(loop.outputs) == len(eqn.outputs),
           "loop: body inputs/outputs do not match the scan's")
    n_fixed = len(loop.consts) + len(loop.carry)
    for k, (outer, inner) in enumerate(zip(eqn.inputs, loop.inputs)):
        shape = tuple(outer.shape)[1:] if k >= n_fixed else tuple(outer.shape)
        _check(k < n_fixed or tuple(outer.shape)[:1] == (loop.length,), f"loop: xs {outer!r} not of length {loop.length}")
        _check(tuple(inner.shape) == shape, f"loop: body input {inner!r} for {outer!r}")
    body_linear = {v for v, a in zip(loop.inputs, eqn.inputs) if isinstance(a, Var) and a in linear} | set(loop.carry)
    body_defined = set(defined) | set(loop.inputs)
    _check_eqns(loop.eqns, body_defined, body_linear)
    for o in loop.outputs:
        _check(isinstance(o, Lit) or o in body_defined, f"loop: body output {o!r} undefined")
    for inner, outer in zip(loop.carry_out, eqn.outputs):
        _check(tuple(inner.shape) == tuple(outer.shape), f"loop: carry {inner!r} for {outer!r}")
    for inner, outer in zip(loop.ys, eqn.outputs[len(loop.carry):]):
        _check((loop.length,) + tuple(inner.shape) == tuple(outer.shape), f"loop: y {inner!r} for {outer!r}")
    for var, (leaf, stacked) in loop.theta.items():
        _check(var in loop.inputs and stacked == (var in loop.xs), f"loop: θ{leaf} input {var!r}")


def verify_graph(graph: Graph) -> None:
    """Every var defined once before use; output shapes/dtypes re-derived; linear flags right."""
    defined = set(graph.primal_inputs) | set(graph.tangent_inputs) | set(graph.consts)
    _check(len(defined) == len(graph.primal_inputs) + len(graph.tangent_inputs) + len(graph.consts),
           "graph inputs/consts are not distinct vars")
    _check_eqns(graph.eqns, defined, set(graph.tangent_inputs))
    for o in graph.outputs:
        _check(isinstance(o, Lit) or o in defined, f"graph output {o!r} undefined")


def _sizes(where: str, pairs) -> dict:
    sizes: dict = {}
    for labels, shape in pairs:
        _check(len(labels) == len(shape), f"{where}: labels {labels} for shape {shape}")
        for l, n in zip(labels, shape):
            _check(sizes.setdefault(l, n) == n, f"{where}: label {l!r} has sizes {sizes[l]} and {n}")
    return sizes


def verify_use(use, graph: Graph) -> None:
    form = use.form
    where = f"use of θ{use.leaf} by {use.primitives}"
    theta = use.eqn.inputs[use.position]
    if use.loop is None:
        _check(theta in set(graph.tangent_inputs), f"{where}: does not read a parameter tangent")
    else:
        _check(use.loop.eqn.loop.theta.get(theta, (None,))[0] == use.leaf, f"{where}: reads no θ input of its loop")
    for a, b in zip(use.eqns, use.eqns[1:]):
        _check(a.outputs[0] in b.inputs, f"{where}: chain broken between {a.name} and {b.name}")
    _check(len(set(form.out_labels)) == len(form.out_labels), f"{where}: repeated output label")
    _check(len(set(form.theta_labels)) == len(form.theta_labels), f"{where}: repeated θ label")
    _check(len(form.factors) == len(use.factor_eqns), f"{where}: factors and factor equations differ")
    pairs = [(form.out_labels, use.output.shape), (form.theta_labels, theta.shape)]
    pairs += [(f.labels, f.shape) for f in form.factors]
    _sizes(where, pairs)
    from ntkc.backends.factors import FACTOR_OPS
    for f in form.factors:
        _check(f.recipe in FACTOR_OPS, f"{where}: unknown factor recipe {f.recipe!r}")


def _expected_shape(comp, kernel, op) -> tuple:
    from ntkc.passes.build_terms import side_labels_for
    side = side_labels_for(comp, kernel.output)[op.side - 1]
    if op.kind == COTANGENT:
        return side.cotangent(op.index).shape
    if op.kind == FACTOR:
        return side.factors(op.index)[op.factor].shape
    jac = next(j for j in kernel.jacobians if j.leaf == op.index and (j.side == op.side or len(comp.sides) == 1))
    return side.batch_shape + side.out_shape + comp.theta_shapes[jac.leaf]


def verify_contraction(c, where: str, result_sizes: dict, allow_missing=frozenset()) -> None:
    sizes = _sizes(where, [(op.labels, op.shape) for op in c.operands])
    for l in c.output:
        _check(l in sizes or l in allow_missing, f"{where}: output label {l!r} on no operand")
        _check(l not in sizes or l not in result_sizes or sizes[l] == result_sizes[l],
               f"{where}: output label {l!r} size {sizes.get(l)} != {result_sizes.get(l)}")
    _check(len(set(c.output)) == len(c.output), f"{where}: repeated output label")
    if c.path is not None:
        n = len(c.operands)
        for step in c.path:
            _check(all(0 <= i < n for i in step) and len(set(step)) == len(step), f"{where}: bad path {c.path}")
            n = n - len(step) + 1
        _check(n == 1, f"{where}: path {c.path} leaves {n} arrays")


def verify_kernel(comp, kernel) -> None:
    result_sizes = dict(zip(kernel.result, kernel.result_shape))
    _check(len(kernel.result) == len(kernel.result_shape), "result labels and shape differ")
    for jac in kernel.jacobians:
        theta = set(jac.labels[-len(comp.theta_shapes[jac.leaf]):]) if comp.theta_shapes[jac.leaf] else set()
        for p in jac.parts:
            _check(tuple(p.output) == tuple(jac.labels), f"J[θ{jac.leaf}]: part output differs")
            verify_contraction(p, f"J{jac.side}[θ{jac.leaf}]", dict(zip(jac.labels, jac.shape)), theta)
    for t, term in enumerate(kernel.terms):
        where = f"kernel {kernel.output} term {t} (θ{term.leaf})"
        c = term.contraction
        _check(tuple(c.output) == tuple(kernel.result), f"{where}: output is not the result labels")
        verify_contraction(c, where, result_sizes)
        for op in c.operands:
            _check(op.kind in (COTANGENT, FACTOR, JACOBIAN), f"{where}: unknown operand kind {op.kind}")
            _check(tuple(op.shape) == tuple(_expected_shape(comp, kernel, op)),
                   f"{where}: operand {op.key} of side {op.side} has shape {op.shape}, "
                   f"the side produces {_expected_shape(comp, kernel, op)}")


def verify(comp, after: str = "") -> None:
    """Check a compilation; raise :class:`IRError` naming the pass ``after`` which it failed."""
    try:
        for side in comp.sides:
            verify_graph(side.graph)
            for use in side.uses:
                verify_use(use, side.graph)
            if side.targets:
                _check({id(t.var) for t in side.targets} == {id(u.output) for u in side.uses},
                       "cotangent targets differ from use outputs")
        for kernel in comp.kernels:
            verify_kernel(comp, kernel)
    except IRError as err:
        raise IRError(f"after pass '{after}': {err}") from None

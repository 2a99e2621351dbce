"""The IR verifier: re-derive what the passes produced, independently, and check every invariant.

Modelled on autodidax's ``typecheck_jaxpr``, it recomputes rather than trusts: equation output
types through each primitive's own abstract evaluation (``jax.eval_shape``), kernel result
shapes through :class:`~ntkc.axes.KernelAxes`, and the shape of every array a term reads through
abstract evaluation of the backend function that will produce it (``operand_shapes``, passed in
by the pipeline: :func:`ntkc.backends.operands.operand_shapes`). Tests run it after every pass
(``compile_plan(..., check=True)``); a failure is an :class:`IRError` naming the invariant
(:data:`INVARIANTS`) and the pass after which it broke.
"""

from __future__ import annotations

import numpy as np

from ntkc.errors import IRError
from ntkc.ir.from_jaxpr import infer_outputs
from ntkc.ir.graph import Graph, Lit, Var
from ntkc.ir.operands import example_shape, output_leaves
from ntkc.ir.terms import COTANGENT, FACTOR, JACOBIAN, SHARED
from ntkc.rules import RECIPES

#: Every invariant the verifier checks, by name.
INVARIANTS = {
    "defined-before-use": "every equation input is a literal or a var defined before it",
    "single-definition": "graph inputs are distinct and no var is defined twice",
    "linear-flag": "an equation is linear exactly when an input depends on a parameter tangent",
    "abstract-eval": "every output has the shape and dtype the primitive's abstract evaluation gives",
    "loop-signature": "a kept loop's body inputs and outputs match its scan's inputs and outputs",
    "graph-outputs": "every graph output is defined",
    "use-reads-theta": "a use's first equation reads a tangent of its parameter leaf",
    "use-chain": "each equation of a use's chain reads the previous one's output",
    "form-labels": "a form repeats no z or θ label and has one equation per factor",
    "label-sizes": "a label has one size across z, θ and the factors (and in every contraction)",
    "known-recipe": "every factor names a registered recipe",
    "targets": "the cotangent targets are exactly the uses' outputs",
    "result-shape": "a kernel's result shape is the one its output axes give",
    "contraction-output": "a contraction's output labels are distinct and each on some operand",
    "contraction-path": "a contraction's path is valid for its operand count and ends in one array",
    "term-output": "terms produce the kernel's result labels, Jacobian parts their Jacobian's labels",
    "operand-shape": "every array a term reads has the shape the backend produces for it",
    "shared": "a shared intermediate reads side arrays only and is read by a later contraction",
}


def _check(cond: bool, invariant: str, msg: str) -> None:
    if not cond:
        raise IRError(f"[{invariant}] {msg}", invariant)


def _check_eqns(eqns, defined: set, linear: set) -> None:
    for eqn in eqns:
        for v in eqn.inputs:
            _check(isinstance(v, Lit) or v in defined, "defined-before-use", f"{eqn.name}: input {v!r} used before definition")
        is_linear = any(isinstance(v, Var) and v in linear for v in eqn.inputs)
        _check(is_linear == eqn.linear, "linear-flag", f"{eqn.name}: linear flag {eqn.linear}, inputs say {is_linear}")
        if eqn.loop is not None:
            _check_loop(eqn, defined, linear)
        for out, (shape, dtype) in zip(eqn.outputs, infer_outputs(eqn)):
            _check(out not in defined, "single-definition", f"{eqn.name}: output {out!r} defined twice")
            _check(tuple(out.shape) == shape and np.dtype(out.dtype) == np.dtype(dtype), "abstract-eval",
                   f"{eqn.name}: output {out!r} but the primitive gives {dtype}{list(shape)}")
            defined.add(out)
            if is_linear:
                linear.add(out)


def _check_loop(eqn, defined: set, linear: set) -> None:
    """A kept loop: body inputs match the scan's inputs (``xs`` sliced), the body is a valid
    equation list over them, and its outputs match the scan's (``ys`` stacked)."""
    loop = eqn.loop
    sig = "loop-signature"
    _check(len(loop.inputs) == len(eqn.inputs) and len(loop.outputs) == len(eqn.outputs), sig,
           "loop: body inputs/outputs do not match the scan's")
    n_fixed = len(loop.consts) + len(loop.carry)
    for k, (outer, inner) in enumerate(zip(eqn.inputs, loop.inputs)):
        shape = tuple(outer.shape)[1:] if k >= n_fixed else tuple(outer.shape)
        _check(k < n_fixed or tuple(outer.shape)[:1] == (loop.length,), sig, f"loop: xs {outer!r} not of length {loop.length}")
        _check(tuple(inner.shape) == shape, sig, f"loop: body input {inner!r} for {outer!r}")
    body_linear = {v for v, a in zip(loop.inputs, eqn.inputs) if isinstance(a, Var) and a in linear} | set(loop.carry)
    body_defined = set(defined) | set(loop.inputs)
    _check_eqns(loop.eqns, body_defined, body_linear)
    for o in loop.outputs:
        _check(isinstance(o, Lit) or o in body_defined, sig, f"loop: body output {o!r} undefined")
    for inner, outer in zip(loop.carry_out, eqn.outputs):
        _check(tuple(inner.shape) == tuple(outer.shape), sig, f"loop: carry {inner!r} for {outer!r}")
    for inner, outer in zip(loop.ys, eqn.outputs[len(loop.carry):]):
        _check((loop.length,) + tuple(inner.shape) == tuple(outer.shape), sig, f"loop: y {inner!r} for {outer!r}")
    for var, (leaf, stacked) in loop.theta.items():
        _check(var in loop.inputs and stacked == (var in loop.xs), sig, f"loop: θ{leaf} input {var!r}")


def verify_graph(graph: Graph) -> None:
    """Every var defined once before use; output shapes/dtypes re-derived; linear flags right."""
    defined = set(graph.primal_inputs) | set(graph.tangent_inputs) | set(graph.consts)
    _check(len(defined) == len(graph.primal_inputs) + len(graph.tangent_inputs) + len(graph.consts),
           "single-definition", "graph inputs/consts are not distinct vars")
    _check_eqns(graph.eqns, defined, set(graph.tangent_inputs))
    for o in graph.outputs:
        _check(isinstance(o, Lit) or o in defined, "graph-outputs", f"graph output {o!r} undefined")


def _sizes(where: str, pairs) -> dict:
    sizes: dict = {}
    for labels, shape in pairs:
        _check(len(labels) == len(shape), "label-sizes", f"{where}: labels {labels} for shape {shape}")
        for l, n in zip(labels, shape):
            _check(sizes.setdefault(l, n) == n, "label-sizes", f"{where}: label {l!r} has sizes {sizes[l]} and {n}")
    return sizes


def verify_use(use, graph: Graph, recipes) -> None:
    form = use.form
    where = f"use of θ{use.leaf} by {use.primitives}"
    theta = use.eqn.inputs[use.position]
    if use.loop is None:
        _check(theta in set(graph.tangent_inputs) and graph.tangent_inputs.index(theta) == use.leaf,
               "use-reads-theta", f"{where}: does not read θ̇{use.leaf}")
    else:
        _check(use.loop.eqn.loop.theta.get(theta, (None,))[0] == use.leaf, "use-reads-theta",
               f"{where}: reads no θ input of its loop")
    for a, b in zip(use.eqns, use.eqns[1:]):
        _check(a.outputs[0] in b.inputs, "use-chain", f"{where}: chain broken between {a.name} and {b.name}")
    _check(len(set(form.out_labels)) == len(form.out_labels), "form-labels", f"{where}: repeated output label")
    _check(len(set(form.theta_labels)) == len(form.theta_labels), "form-labels", f"{where}: repeated θ label")
    _check(len(form.factors) == len(use.factor_eqns), "form-labels", f"{where}: factors and factor equations differ")
    pairs = [(form.out_labels, use.output.shape), (form.theta_labels, theta.shape)]
    pairs += [(f.labels, f.shape) for f in form.factors]
    _sizes(where, pairs)
    for f in form.factors:
        _check(f.recipe in recipes, "known-recipe", f"{where}: unknown factor recipe {f.recipe!r}")


def verify_contraction(c, where: str, result_sizes: dict, allow_missing=frozenset()) -> None:
    sizes = _sizes(where, [(op.labels, op.shape) for op in c.operands])
    for l in c.output:
        _check(l in sizes or l in allow_missing, "contraction-output", f"{where}: output label {l!r} on no operand")
        _check(l not in sizes or l not in result_sizes or sizes[l] == result_sizes[l], "label-sizes",
               f"{where}: output label {l!r} size {sizes.get(l)} != {result_sizes.get(l)}")
    _check(len(set(c.output)) == len(c.output), "contraction-output", f"{where}: repeated output label")
    if c.path is not None:
        n = len(c.operands)
        for step in c.path:
            _check(all(0 <= i < n for i in step) and len(set(step)) == len(step), "contraction-path",
                   f"{where}: bad path {c.path}")
            n = n - len(step) + 1
        _check(n == 1, "contraction-path", f"{where}: path {c.path} leaves {n} arrays")


def _expected_operand_shape(comp, kernel, op, produced: dict, physical: int):
    """The shape the backend gives an operand: a side's per-example array (abstract evaluation
    of the backend) with the batch axis in front, a constant factor's value, or an outside-in
    Jacobian (batch, the output leaf's example axes, θ's axes)."""
    if op.kind == SHARED:
        sizes = kernel.label_sizes()
        return tuple(sizes[l] for l in kernel.shared[op.index].output)
    out1, out2, _, fx = output_leaves(comp)[kernel.output]
    side = comp.side(op.side)
    batch = (side.side.n_examples(),) if side.vmapped else ()
    if op.kind == JACOBIAN:
        out = out1 if op.side == 1 else out2
        return batch + example_shape(out.shape, fx) + comp.theta_shapes[op.index]
    use = side.uses[op.index]
    if op.kind == FACTOR and use.form.factors[op.factor].constant:
        return tuple(np.shape(use.form.factors[op.factor].value))
    name = f"cot{kernel.output}_{op.index}" if op.kind == COTANGENT else f"fac_{op.index}_{op.factor}"
    return batch + produced[(physical, name)]


def verify_kernel(comp, kernel, produced: dict | None) -> None:
    out1, out2, ka, _ = output_leaves(comp)[kernel.output]
    _check(tuple(kernel.result_shape) == tuple(ka.result_shape(out1.shape, out2.shape)), "result-shape",
           f"kernel {kernel.output}: result shape {kernel.result_shape}, the output axes give "
           f"{ka.result_shape(out1.shape, out2.shape)}")
    _check(len(kernel.result) == len(kernel.result_shape), "result-shape", "result labels and shape differ")
    result_sizes = dict(zip(kernel.result, kernel.result_shape))
    physical = (lambda side: 1) if len(comp.sides) == 1 else (lambda side: side)
    for jac in kernel.jacobians:
        theta = set(jac.labels[-len(comp.theta_shapes[jac.leaf]):]) if comp.theta_shapes[jac.leaf] else set()
        for p in jac.parts:
            _check(tuple(p.output) == tuple(jac.labels), "term-output", f"J[θ{jac.leaf}]: part output differs")
            verify_contraction(p, f"J{jac.side}[θ{jac.leaf}]", dict(zip(jac.labels, jac.shape)), theta)
    for i, c in enumerate(kernel.shared):
        verify_contraction(c, f"kernel {kernel.output} shared[{i}]", {})
        _check(all(op.kind != SHARED for op in c.operands), "shared",
               f"kernel {kernel.output} shared[{i}] reads a shared array")
    read = {op.index for c in kernel.contractions() for op in c.operands if op.kind == SHARED}
    _check(read <= set(range(len(kernel.shared))), "shared", f"kernel {kernel.output}: reads shared {sorted(read)} "
           f"of {len(kernel.shared)}")
    _check(read == set(range(len(kernel.shared))), "shared", f"kernel {kernel.output}: a shared intermediate is never read")
    for t, term in enumerate(kernel.terms):
        where = f"kernel {kernel.output} term {t} (θ{term.leaf})"
        c = term.contraction
        _check(tuple(c.output) == tuple(kernel.result), "term-output", f"{where}: output is not the result labels")
        verify_contraction(c, where, result_sizes)
    if produced is None:
        return
    for c in kernel.contractions():
        for op in c.operands:
            _check(op.kind in (COTANGENT, FACTOR, JACOBIAN, SHARED), "operand-shape", f"unknown operand kind {op.kind}")
            want = tuple(_expected_operand_shape(comp, kernel, op, produced, physical(op.side)))
            _check(tuple(op.shape) == want, "operand-shape",
                   f"kernel {kernel.output}: operand {op.key} of side {op.side} has shape {op.shape}, "
                   f"the backend produces {want}")


def verify(comp, after: str = "", operand_shapes=None) -> None:
    """Check a compilation; raise :class:`IRError` naming the invariant and the pass ``after``
    which it failed. ``operand_shapes(comp) -> {(side, name): shape}`` gives what the backend
    produces for one example (checked once kernels exist)."""
    try:
        for side in comp.sides:
            verify_graph(side.graph)
            for use in side.uses:
                verify_use(use, side.graph, RECIPES)
            if side.targets:
                _check({id(t.var) for t in side.targets} == {id(u.output) for u in side.uses}, "targets",
                       "cotangent targets differ from use outputs")
        produced = operand_shapes(comp) if operand_shapes is not None and comp.kernels else None
        for kernel in comp.kernels:
            verify_kernel(comp, kernel, produced)
    except IRError as err:
        raise IRError(f"after pass '{after}': {err.args[0]}", err.invariant) from None

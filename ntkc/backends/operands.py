"""The operands of a structured plan: what one side computes for one example, as arrays.

:func:`example_operands` runs the primal equations of the lowered graph, computes every use's
factor from the residuals (:data:`ntkc.rules.RECIPES`), and obtains ∂f/∂z for every consumer
output z and every output leaf in one shared reverse sweep: the linear equations are
re-evaluated with zero parameter tangents and an extra input δ_z added to each consumer output,
so ``vjp`` w.r.t. the δ's at zero gives exactly the cotangents (every other path through the
graph is preserved). Kept loops run as one ``lax.scan`` (:func:`run_loop`); their uses' factors
are computed for all iterations at once (:func:`loop_factors`).

Operands are named ``fac_<use>_<factor>`` (per-example factors) and ``cot<leaf>_<use>`` (the
cotangent of output leaf ``leaf``); constant factors are not per-example and are not here
(:func:`constant_operands`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from ntkc.ir.from_jaxpr import bind
from ntkc.ir.graph import Graph, Lit, Var
from ntkc.ir.operands import example_shape, output_leaves
from ntkc.ir.terms import COTANGENT, FACTOR
from ntkc.rules import RECIPES


def factor_name(use: int, factor: int) -> str:
    return f"fac_{use}_{factor}"


def cotangent_name(leaf: int, use: int) -> str:
    return f"cot{leaf}_{use}"


def operand_name(op, output: int) -> str:
    """The name of a plan operand's array in :func:`example_operands` (for kernel ``output``)."""
    if op.kind == COTANGENT:
        return cotangent_name(output, op.index)
    if op.kind == FACTOR:
        return factor_name(op.index, op.factor)
    raise ValueError(f"operand kind {op.kind!r} is not a side operand")


def operand_names(side_ir, n_outputs: int) -> list[str]:
    """Names of :func:`example_operands`'s arrays, in a fixed order."""
    factors = [factor_name(i, f) for i, use in enumerate(side_ir.uses)
               for f, spec in enumerate(use.form.factors) if not spec.constant]
    cots = [cotangent_name(u, i) for u in range(n_outputs) for i in range(len(side_ir.uses))] if side_ir.targets else []
    return factors + cots


def _read(env: dict, atom):
    return jnp.asarray(atom.array()) if isinstance(atom, Lit) else env[atom]


class PrimalEnv:
    """The primal equations of a graph (or of one iteration of a kept loop's body) evaluated for
    one example.

    ``read(atom)`` is an input's primal value; ``linear_zero(atom)`` the same, except that
    values depending on the parameter tangents read as zeros.
    """

    def __init__(self, eqns, env: dict, linear_vars: set):
        env, linear_vars = dict(env), set(linear_vars)
        for eqn in eqns:
            if eqn.linear:
                linear_vars.update(eqn.outputs)
                continue
            env.update(zip(eqn.outputs, bind(eqn, [_read(env, v) for v in eqn.inputs])))
        self.env = env
        self.linear_vars = linear_vars

    @classmethod
    def of_graph(cls, graph: Graph, primal_values: list) -> "PrimalEnv":
        env: dict[Var, Any] = dict(graph.consts)
        env.update(zip(graph.primal_inputs, primal_values))
        return cls(graph.eqns, env, set(graph.tangent_inputs))

    def body(self, eqn, consts: list, x_t: list) -> "PrimalEnv":
        """Iteration t of kept loop ``eqn``: its body's primal equations on the (outer) const
        values and slice t of its ``xs``; linear inputs and carries read as zeros."""
        loop = eqn.loop
        outer_linear = [isinstance(a, Var) and a in self.linear_vars for a in eqn.inputs]
        env = dict(self.env)
        env.update(zip(loop.consts, consts))
        env.update(zip(loop.xs, x_t))
        linear = {v for v, lin in zip(loop.inputs, outer_linear) if lin} | set(loop.carry)
        return PrimalEnv(loop.eqns, env, linear)

    def read(self, atom):
        return _read(self.env, atom)

    def linear_zero(self, atom):
        if isinstance(atom, Var) and atom in self.linear_vars:
            return jnp.zeros(atom.shape, atom.dtype)
        return _read(self.env, atom)

    def factors(self, use) -> tuple:
        """The arrays of one use's factors (a use outside loops)."""
        return tuple(RECIPES[spec.recipe](spec, eqn, self.read, self.linear_zero)
                     for spec, eqn in zip(use.form.factors, use.factor_eqns))


def _factor_arrays(env: PrimalEnv, indexed_uses) -> dict:
    return {factor_name(i, f): RECIPES[spec.recipe](spec, eqn, env.read, env.linear_zero)
            for i, use in indexed_uses
            for f, (spec, eqn) in enumerate(zip(use.form.factors, use.factor_eqns))
            if not spec.constant}


def loop_factors(primal: PrimalEnv, eqn, indexed_uses) -> dict:
    """The per-example factors of the uses inside kept loop ``eqn``, one per iteration, stacked
    along a leading axis: the body's primal equations and the factor recipes run under
    ``vmap`` over the iterations (``xs`` sliced, consts shared)."""
    loop = eqn.loop
    n_consts, n_carry = len(loop.consts), len(loop.carry)
    outer = [primal.linear_zero(a) for a in eqn.inputs]
    consts, xs = outer[:n_consts], outer[n_consts + n_carry:]
    one = lambda x_t: _factor_arrays(primal.body(eqn, consts, x_t), indexed_uses)
    return jax.vmap(one, axis_size=loop.length)(xs)


def run_loop(eqn, ins: list, env: dict, deltas: dict) -> list:
    """Kept loop ``eqn`` on the linear program's values ``ins`` as one ``lax.scan``, with
    ``deltas[z]`` (stacked: one per iteration) added to body var z where it is defined."""
    loop = eqn.loop
    n_consts, n_carry = len(loop.consts), len(loop.carry)
    where = list(deltas)

    def scan(ins, d_list):
        consts, xs = ins[:n_consts], ins[n_consts + n_carry:]
        carry = [jnp.asarray(c, v.dtype) for c, v in zip(ins[n_consts:n_consts + n_carry], loop.carry)]

        def step(carry_t, sliced):
            x_t, d_list = sliced
            d_t = dict(zip(where, d_list))
            vals = dict(zip(loop.consts, consts))
            vals.update(zip(loop.carry, carry_t))
            vals.update(zip(loop.xs, x_t))
            read = lambda a: vals[a] if isinstance(a, Var) and a in vals else _read(env, a)
            for inner in loop.eqns:
                for var, val in zip(inner.outputs, bind(inner, [read(v) for v in inner.inputs])):
                    vals[var] = val + d_t[var] if var in d_t else val
            return [read(c) for c in loop.carry_out], [read(y) for y in loop.ys]

        carry, ys = jax.lax.scan(step, carry, (xs, d_list), length=loop.length, reverse=loop.reverse)
        return list(carry) + list(ys)

    d_list = [deltas[z] for z in where]
    if _scan_transposes_as_written():
        return scan(ins, d_list)
    # This JAX transposes only a scan that differentiation produced (one that carries its
    # linearity flags): the same linear map, linearized at zero, then applied.
    linear = [i for i, a in enumerate(eqn.inputs) if isinstance(a, Var) and a not in env]

    def on(values, d_list):
        full = list(ins)
        for i, v in zip(linear, values):
            full[i] = v
        return scan(full, d_list)

    values = [ins[i] for i in linear]
    _, apply = jax.linearize(on, [jnp.zeros_like(v) for v in values], [jnp.zeros_like(d) for d in d_list])
    return apply(values, d_list)


@functools.cache
def _scan_transposes_as_written() -> bool:
    """Whether ``jax.linear_transpose`` transposes a ``lax.scan`` written directly on linear
    inputs (JAX up to 0.5 asserts on one: it reads linearity from flags only differentiation sets)."""
    fn = lambda d: jax.lax.scan(lambda c, x: (c + x, c), jnp.zeros(()), d)
    try:
        jax.linear_transpose(fn, jnp.zeros(2))((jnp.zeros(()), jnp.zeros(2)))
    except AssertionError:
        return False
    return True


def _sweep(side_ir, env: dict, out_shapes) -> dict:
    """∂f/∂z of every target z for every output leaf: one linearization, one VJP per output entry."""
    graph, targets = side_ir.graph, side_ir.targets

    def cut(deltas):
        vals = {t: jnp.zeros(t.shape, t.dtype) for t in graph.tangent_inputs}
        zero = set(graph.tangent_inputs)  # vars known to be zero: no delta reaches them
        extra = {t.var: d for t, d in zip(targets, deltas) if t.loop is None}
        inner: dict = {}
        for t, d in zip(targets, deltas):
            if t.loop is not None:
                inner.setdefault(t.loop, {})[t.var] = d
        for eqn in graph.eqns:
            if not eqn.linear:
                continue
            linear = [v for v in eqn.inputs if isinstance(v, Var) and v in vals]
            if linear and all(v in zero for v in linear) and eqn not in inner:
                # linear in zero inputs: zero, without running it (a custom_vjp's backward rule
                # cannot run forward at all)
                for var in eqn.outputs:
                    vals[var] = extra[var] if var in extra else jnp.zeros(var.shape, var.dtype)
                    if var not in extra:
                        zero.add(var)
                continue
            ins = [vals[v] if isinstance(v, Var) and v in vals else _read(env, v) for v in eqn.inputs]
            outs = run_loop(eqn, ins, env, inner.get(eqn, {})) if eqn.loop is not None else bind(eqn, ins)
            for var, val in zip(eqn.outputs, outs):
                vals[var] = val + extra[var] if var in extra else val
        return tuple(vals[o] if isinstance(o, Var) and o in vals else jnp.zeros(shape, o.dtype if isinstance(o, Var) else o.array().dtype)
                     for o, shape in zip(graph.outputs, out_shapes))

    stacked = lambda t: ((t.loop.loop.length,) if t.loop is not None else ()) + tuple(t.var.shape)
    zeros = [jnp.zeros(stacked(t), t.var.dtype) for t in targets]
    # ``cut`` is linear in the deltas: transposing it (rather than differentiating it) runs each
    # primitive's transpose rule — the backward rule of a custom_vjp (``custom_lin``) included.
    outs = jax.eval_shape(cut, zeros)
    transpose = jax.linear_transpose(cut, zeros)
    cotangents = {}
    for u, shape in enumerate(out_shapes):
        n_out = math.prod(shape)
        basis = jnp.eye(n_out, dtype=outs[u].dtype).reshape((n_out,) + tuple(shape))
        seed = lambda e, u=u: tuple(e if j == u else jnp.zeros(o.shape, o.dtype) for j, o in enumerate(outs))
        cots = jax.vmap(lambda e, seed=seed: transpose(seed(e))[0])(basis)  # one (n_out, [T,] *z) per target
        for target, cot in zip(targets, cots):
            cot = cot.reshape(tuple(shape) + stacked(target))
            first = len(shape) + (target.loop is not None)
            if target.summed:
                cot = cot.sum(axis=tuple(first + a for a in target.summed))
            cotangents[(u, target.var)] = cot
    return cotangents


def example_operands(side_ir, out_shapes, primal_values: list) -> dict:
    """One example's (or one whole batch's, without ``vmap_axes``) operands of one side, named as
    in :func:`operand_names`: every use's per-example factors and, for every output leaf (of
    example shape ``out_shapes[leaf]``), every use's cotangent ∂f/∂z. ``primal_values`` are the
    leaves of ``(params, x, kwargs)`` for that example.

    Cotangents have shape ``out_shape + z.shape`` minus the target's summed axes; a use inside a
    kept loop has an iteration axis after ``out_shape`` (factors: first).
    """
    graph, uses = side_ir.graph, side_ir.uses
    primal = PrimalEnv.of_graph(graph, primal_values)
    arrays = _factor_arrays(primal, [(i, u) for i, u in enumerate(uses) if u.loop is None])
    loops: dict = {}
    for i, use in enumerate(uses):
        if use.loop is not None:
            loops.setdefault(use.loop.eqn, []).append((i, use))
    for eqn, indexed in loops.items():
        arrays.update(loop_factors(primal, eqn, indexed))
    if side_ir.targets:
        cotangents = _sweep(side_ir, primal.env, out_shapes)
        for u in range(len(out_shapes)):
            for i, use in enumerate(uses):
                arrays[cotangent_name(u, i)] = cotangents[(u, use.output)]
    return arrays


def constant_operands(side_ir) -> dict:
    """The constant factors of one side's uses: ``(use, factor) -> array`` (no batch axis)."""
    return {(i, f): spec.value
            for i, use in enumerate(side_ir.uses)
            for f, spec in enumerate(use.form.factors) if spec.constant}


def example_out_shapes(comp) -> list[tuple[int, ...]]:
    """Per output leaf, one example's output shape for each side: ``[(side 1, side 2), ...]``."""
    return [(example_shape(o1.shape, fx), example_shape(o2.shape, fx))
            for o1, o2, _, fx in output_leaves(comp)]


def operand_shapes(comp) -> dict:
    """``{(side, name): shape}`` of one example's operands, by abstract evaluation of
    :func:`example_operands` (``jax.eval_shape``): what the backend will produce, derived
    independently of the labels the passes gave the plan's operands."""
    shapes = {}
    per_leaf = example_out_shapes(comp)
    for k, side_ir in enumerate(comp.sides, 1):
        out_shapes = [pair[k - 1] for pair in per_leaf]
        specs = [jax.ShapeDtypeStruct(v.shape, v.dtype) for v in side_ir.graph.primal_inputs]
        result = jax.eval_shape(lambda *vals, s=side_ir, o=out_shapes: example_operands(s, o, list(vals)), *specs)
        shapes.update({(k, name): tuple(v.shape) for name, v in result.items()})
    return shapes

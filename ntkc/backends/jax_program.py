"""The JAX backend: a compiled plan becomes arrays and einsums (jittable, no Python state).

``example_arrays`` runs the primal equations of the lowered graph, computes every use's factor
from the residuals (:data:`FACTOR_OPS`), and obtains ∂y/∂z for every consumer output z in one
shared reverse sweep: the linear equations are re-evaluated with zero parameter tangents and an
extra input δ_z added to each consumer output, so ``vjp`` w.r.t. the δ's at zero gives exactly
the cotangents (every other path through the graph is preserved).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from ntkc.backends.factors import FACTOR_OPS
from ntkc.ir.terms import COTANGENT, FACTOR, JACOBIAN, Contraction
from ntkc.passes.build_terms import CONSTANT_RECIPES, output_leaves
from ntkc.passes.order import einsum_spec
from ntkc.ir.from_jaxpr import bind
from ntkc.ir.graph import Graph, Lit, Var


def _read(env: dict, atom):
    return jnp.asarray(atom.value) if isinstance(atom, Lit) else env[atom]


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
        n_consts, n_carry = len(loop.consts), len(loop.carry)
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
        return tuple(FACTOR_OPS[spec.recipe](spec, eqn, self.read, self.linear_zero)
                     for spec, eqn in zip(use.form.factors, use.factor_eqns))


def _factor_arrays(env: PrimalEnv, indexed_uses) -> dict:
    return {(FACTOR, i, f): FACTOR_OPS[spec.recipe](spec, eqn, env.read, env.linear_zero)
            for i, use in indexed_uses
            for f, (spec, eqn) in enumerate(zip(use.form.factors, use.factor_eqns))
            if spec.recipe not in CONSTANT_RECIPES}


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
    consts, xs = ins[:n_consts], ins[n_consts + n_carry:]
    carry = [jnp.asarray(c, v.dtype) for c, v in zip(ins[n_consts:n_consts + n_carry], loop.carry)]

    where = list(deltas)

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

    carry, ys = jax.lax.scan(step, carry, (xs, [deltas[z] for z in where]), length=loop.length, reverse=loop.reverse)
    return list(carry) + list(ys)


def example_arrays(side_ir, out_index: int, out_shape, primal_values: list) -> dict:
    """One example's (or one whole batch's, without ``vmap_axes``) operands of one side:
    ``{(COTANGENT, use, None): ∂f/∂z, (FACTOR, use, f): factor}`` for output leaf ``out_index``.

    Constant factors are left out (they do not depend on the example). Cotangents have shape
    ``out_shape + z.shape`` minus the target's summed axes; a use inside a kept loop has an
    iteration axis after ``out_shape`` (factors: first).
    """
    graph, uses = side_ir.graph, side_ir.uses
    primal = PrimalEnv.of_graph(graph, primal_values)
    env = primal.env
    arrays = _factor_arrays(primal, [(i, u) for i, u in enumerate(uses) if u.loop is None])
    loops = {}
    for i, use in enumerate(uses):
        if use.loop is not None:
            loops.setdefault(use.loop.eqn, []).append((i, use))
    for eqn, indexed in loops.items():
        arrays.update(loop_factors(primal, eqn, indexed))
    targets = side_ir.targets

    def cut(deltas):
        vals = {t: jnp.zeros(t.shape, t.dtype) for t in graph.tangent_inputs}
        extra = {t.var: d for t, d in zip(targets, deltas) if t.loop is None}
        inner = {}
        for t, d in zip(targets, deltas):
            if t.loop is not None:
                inner.setdefault(t.loop, {})[t.var] = d
        for eqn in graph.eqns:
            if not eqn.linear:
                continue
            ins = [vals[v] if isinstance(v, Var) and v in vals else _read(env, v) for v in eqn.inputs]
            outs = run_loop(eqn, ins, env, inner.get(eqn, {})) if eqn.loop is not None else bind(eqn, ins)
            for var, val in zip(eqn.outputs, outs):
                vals[var] = val + extra[var] if var in extra else val
        outputs = [vals[o] if isinstance(o, Var) and o in vals else jnp.zeros(()) for o in graph.outputs]
        return outputs[out_index]

    if targets:
        stacked = lambda t: ((t.loop.loop.length,) if t.loop is not None else ()) + tuple(t.var.shape)
        zeros = [jnp.zeros(stacked(t), t.var.dtype) for t in targets]
        out, vjp = jax.vjp(cut, zeros)
        n_out = math.prod(out_shape)
        basis = jnp.eye(n_out, dtype=out.dtype).reshape((n_out,) + tuple(out_shape))
        cots = jax.vmap(lambda e: vjp(e)[0])(basis)  # one (n_out, [T,] *z) per target
        by_target = {}
        for target, cot in zip(targets, cots):
            cot = cot.reshape(tuple(out_shape) + stacked(target))
            first = len(out_shape) + (target.loop is not None)
            by_target[target.var] = cot.sum(axis=tuple(first + a for a in target.summed))
        for i, use in enumerate(uses):
            arrays[(COTANGENT, i, None)] = by_target[use.output]
    return arrays


def constant_arrays(side_ir) -> dict:
    """The constant factors of one side's uses, keyed as in :func:`example_arrays`."""
    return {
        (FACTOR, i, f): jnp.asarray(spec.value)
        for i, use in enumerate(side_ir.uses)
        for f, spec in enumerate(use.form.factors) if spec.recipe in CONSTANT_RECIPES
    }


def side_values(side_ir, out_index: int, example_out_shape, params) -> dict:
    """All operands of one side for output leaf ``out_index``, batched over examples."""
    side = side_ir.side
    if side.vmap is None:
        values = jax.tree_util.tree_leaves((params, side.x, side.kwargs))
        arrays = example_arrays(side_ir, out_index, example_out_shape, values)
    else:
        def one(x_i, kw_i):
            values = jax.tree_util.tree_leaves((params, x_i, kw_i))
            return example_arrays(side_ir, out_index, example_out_shape, values)
        arrays = side.map_examples(one)
    arrays.update(constant_arrays(side_ir))
    return arrays


def contract(c: Contraction, arrays: list, sizes: dict):
    """Evaluate one contraction along its planned path; output labels that no operand carries
    (θ axes a use does not touch, in a per-leaf Jacobian) are broadcast."""
    spec, _ = einsum_spec(c)
    value = jnp.einsum(spec, *arrays, optimize=list(c.path) if c.path else "optimal",
                       precision=jax.lax.Precision.HIGHEST)
    present = {l for op in c.operands for l in op.labels}
    if any(l not in present for l in c.output):
        expanded = tuple(sizes[l] if l in present else 1 for l in c.output)
        value = jnp.broadcast_to(value.reshape(expanded), tuple(sizes[l] for l in c.output))
    return value * jnp.asarray(c.scale, value.dtype) if c.scale != 1.0 else value


def fused_sides(comp) -> bool:
    """Two sides sharing one per-example graph (see ``pipeline.same_examples``)."""
    return len(comp.sides) == 2 and comp.sides[0].graph is comp.sides[1].graph


def _concat(a, b, axis):
    return a if axis is None else jnp.concatenate([a, b], axis=axis)


def fused_side_values(comp, out_index: int, example_out_shape, params) -> tuple[dict, dict]:
    """Both sides' operands from ONE batch of ``N1 + N2`` examples, split afterwards.

    Identity: every operand of an example depends on that example alone (``vmap_axes``), so
    running the examples of x1 and x2 together gives the same per-example arrays; the weights of
    every layer are then read once for both sides (twice the rows per matmul).
    """
    one, two = comp.sides[0].side, comp.sides[1].side
    axes = one.vmap
    n1 = one.n_examples()
    x = jax.tree_util.tree_map(_concat, one.x, two.x, axes.x, is_leaf=lambda a: a is None)
    batched1, shared = one.batched_kwargs()
    batched2, _ = two.batched_kwargs()
    kwargs = {**shared, **{k: _concat(v, batched2[k], axes.kwargs[k]) for k, v in batched1.items()}}
    both = dataclasses.replace(comp.sides[0], side=dataclasses.replace(one, x=x, kwargs=kwargs))
    arrays = side_values(both, out_index, example_out_shape, params)
    constants = constant_arrays(comp.sides[0])
    split = lambda lo, hi: {k: v if k in constants else v[lo:hi] for k, v in arrays.items()}
    return split(0, n1), split(n1, None)


def run_plan(comp, params):
    """Evaluate every kernel plan of a compilation: one array per output leaf."""
    leaves = output_leaves(comp)
    kernels = []
    for kernel in comp.kernels:
        out1, out2, ka, fx = leaves[kernel.output]
        example = lambda shape: tuple(n for i, n in enumerate(shape) if i != fx)
        shapes = {1: example(out1.shape), 2: example(out2.shape)}
        if fused_sides(comp):
            arrays = dict(enumerate(fused_side_values(comp, kernel.output, shapes[1], params), 1))
        else:
            arrays = {k: side_values(s, kernel.output, shapes[k], params) for k, s in enumerate(comp.sides, 1)}
        physical = lambda side: 1 if len(comp.sides) == 1 else side
        sizes = kernel.label_sizes()
        for jac in kernel.jacobians:
            sizes.update(zip(jac.labels, jac.shape))
        for jac in kernel.jacobians:
            parts = [contract(p, [arrays[physical(op.side)][op.key] for op in p.operands], sizes) for p in jac.parts]
            arrays[physical(jac.side)][(JACOBIAN, jac.leaf, None)] = sum(parts[1:], parts[0])
        total = None
        for term in kernel.terms:
            c = term.contraction
            value = contract(c, [arrays[physical(op.side)][op.key] for op in c.operands], sizes)
            total = value if total is None else total + value
        if total is None:  # f does not depend on params at all
            total = jnp.zeros(kernel.result_shape, kernel.dtype)
        kernels.append((total / kernel.trace_size).astype(kernel.dtype))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(comp.problem.out1), kernels)

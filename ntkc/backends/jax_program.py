"""Evaluate one side of a structured plan for one example: residuals, factors, cotangents.

``side_arrays`` runs the primal equations of the lowered graph, computes every use's factor
from the residuals (:data:`FACTOR_OPS`), and obtains ∂y/∂z for every consumer output z in one
shared reverse sweep: the linear equations are re-evaluated with zero parameter tangents and an
extra input δ_z added to each consumer output, so ``vjp`` w.r.t. the δ's at zero gives exactly
the cotangents (every other path through the graph is preserved).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ntkc.ir.from_jaxpr import bind
from ntkc.ir.graph import Graph, Lit, Var


def _read(env: dict, atom):
    return jnp.asarray(atom.value) if isinstance(atom, Lit) else env[atom]


def _operand(eqn, position, env):
    return _read(env, eqn.inputs[position])


def _dense(use, env, linear_zero):
    """∂z/∂θ of one use as an array of shape ``z.shape + θ.shape`` (other linear inputs 0)."""
    eqn, pos = use.eqn, use.position
    theta_shape = eqn.inputs[pos].shape
    size = math.prod(theta_shape)
    dtype = eqn.inputs[pos].dtype

    def apply(e):
        vals = [linear_zero(v) for v in eqn.inputs]
        vals[pos] = e.reshape(theta_shape)
        return bind(eqn, vals)[0]

    cols = jax.vmap(apply)(jnp.eye(size, dtype=dtype))  # (P, *z)
    z_nd = cols.ndim - 1
    cols = cols.reshape(theta_shape + cols.shape[1:])
    return jnp.moveaxis(cols, tuple(range(len(theta_shape))), tuple(range(z_nd, z_nd + len(theta_shape))))


#: Factor recipes by name: (use, env, linear_zero) -> array.
FACTOR_OPS: dict[str, Callable] = {
    "operand": lambda use, env, zero: _operand(use.eqn, use.form.factor.operand, env),
    "reciprocal": lambda use, env, zero: 1.0 / _operand(use.eqn, use.form.factor.operand, env),
    "dense": _dense,
}


def side_arrays(graph: Graph, uses, out_index: int, out_shape, primal_values: list) -> tuple[list, list]:
    """(factors per use, cotangents per use) for one example and output leaf ``out_index``.

    Cotangents have shape ``out_shape + z.shape``; factors as the use's factor labels.
    """
    env: dict[Var, Any] = dict(graph.consts)
    env.update(zip(graph.primal_inputs, primal_values))
    linear_vars = set(graph.tangent_inputs)
    for eqn in graph.eqns:
        if eqn.linear:
            linear_vars.update(eqn.outputs)
            continue
        env.update(zip(eqn.outputs, bind(eqn, [_read(env, v) for v in eqn.inputs])))

    def linear_zero(atom):
        if isinstance(atom, Var) and atom in linear_vars:
            return jnp.zeros(atom.shape, atom.dtype)
        return _read(env, atom)

    factors = [
        None if u.form.factor is None else FACTOR_OPS[u.form.factor.op](u, env, linear_zero)
        for u in uses
    ]
    targets = list(dict.fromkeys(u.output for u in uses))

    def cut(deltas):
        vals = {t: jnp.zeros(t.shape, t.dtype) for t in graph.tangent_inputs}
        extra = dict(zip(targets, deltas))
        for eqn in graph.eqns:
            if not eqn.linear:
                continue
            ins = [vals[v] if isinstance(v, Var) and v in vals else _read(env, v) for v in eqn.inputs]
            outs = bind(eqn, ins)
            for var, val in zip(eqn.outputs, outs):
                vals[var] = val + extra[var] if var in extra else val
        outputs = [vals[o] if isinstance(o, Var) and o in vals else jnp.zeros(()) for o in graph.outputs]
        return outputs[out_index]

    zeros = [jnp.zeros(t.shape, t.dtype) for t in targets]
    out, vjp = jax.vjp(cut, zeros)
    n_out = math.prod(out_shape)
    basis = jnp.eye(n_out, dtype=out.dtype).reshape((n_out,) + tuple(out_shape))
    cots = jax.vmap(lambda e: vjp(e)[0])(basis)  # list per target, each (n_out, *z)
    by_target = {t: c.reshape(tuple(out_shape) + t.shape) for t, c in zip(targets, cots)}
    return factors, [by_target[u.output] for u in uses]

"""Evaluate one side of a structured plan for one example: residuals, factors, cotangents.

``side_arrays`` runs the primal equations of the lowered graph, computes every use's factor
from the residuals (:data:`FACTOR_OPS`), and obtains ∂y/∂z for every consumer output z in one
shared reverse sweep: the linear equations are re-evaluated with zero parameter tangents and an
extra input δ_z added to each consumer output, so ``vjp`` w.r.t. the δ's at zero gives exactly
the cotangents (every other path through the graph is preserved).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from ntkc.backends.factors import FACTOR_OPS
from ntkc.ir.from_jaxpr import bind
from ntkc.ir.graph import Graph, Lit, Var


def _read(env: dict, atom):
    return jnp.asarray(atom.value) if isinstance(atom, Lit) else env[atom]


class PrimalEnv:
    """The primal equations of a graph evaluated for one example.

    ``read(atom)`` is an input's primal value; ``linear_zero(atom)`` the same, except that
    values depending on the parameter tangents read as zeros.
    """

    def __init__(self, graph: Graph, primal_values: list):
        env: dict[Var, Any] = dict(graph.consts)
        env.update(zip(graph.primal_inputs, primal_values))
        linear_vars = set(graph.tangent_inputs)
        for eqn in graph.eqns:
            if eqn.linear:
                linear_vars.update(eqn.outputs)
                continue
            env.update(zip(eqn.outputs, bind(eqn, [_read(env, v) for v in eqn.inputs])))
        self.env = env
        self.linear_vars = linear_vars

    def read(self, atom):
        return _read(self.env, atom)

    def linear_zero(self, atom):
        if isinstance(atom, Var) and atom in self.linear_vars:
            return jnp.zeros(atom.shape, atom.dtype)
        return _read(self.env, atom)

    def factors(self, use) -> tuple:
        """The arrays of one use's factors."""
        return tuple(FACTOR_OPS[spec.recipe](spec, use.eqn, self.read, self.linear_zero)
                     for spec in use.form.factors)


def side_arrays(graph: Graph, uses, out_index: int, out_shape, primal_values: list) -> tuple[list, list]:
    """(factors per use, cotangents per use) for one example and output leaf ``out_index``.

    Cotangents have shape ``out_shape + z.shape``; factors (a tuple per use) as their specs.
    """
    primal = PrimalEnv(graph, primal_values)
    env = primal.env
    factors = [primal.factors(u) for u in uses]
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

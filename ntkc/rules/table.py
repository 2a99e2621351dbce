"""The structure-rule tables: primitive -> rule, recipe name -> recipe, and the helpers that
fill them.

A **rule** is a small pure function ``rule(shapes, pos, out_shape, name, **params)`` returning
the :class:`~ntkc.ir.forms.JacobianForm` of ∂z/∂θ for the primitive's input ``pos`` (see
:mod:`ntkc.ir.forms`); it may raise :class:`NoStructure` for a configuration it does not
structure. A **recipe** ``recipe(spec, eqn, read, linear_zero)`` computes one factor array for
one example at run time: ``read(atom)`` is an equation input's primal value, ``linear_zero(atom)``
the same except that values depending on the parameter tangents read as zeros (used to apply the
primitive's own linear map).

Rule families (:mod:`ntkc.rules.linear`, :mod:`ntkc.rules.conv`, :mod:`ntkc.rules.index`) each
define their rules and the recipes their factors name, registered with :func:`defrule` and
:func:`defrecipe`; registering a name twice is an error. A primitive without a rule gets
:func:`dense_rule`: exact, its whole Jacobian block as one factor, with a warning.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import opt_einsum

from ntkc.ir.forms import FactorSpec, JacobianForm
from ntkc.ir.from_jaxpr import bind
from ntkc.ir.graph import NOT_FORWARD

Rule = Callable[..., JacobianForm]
Recipe = Callable

#: primitive name -> rule.
RULES: dict[str, Rule] = {}
#: recipe name -> recipe (the ``FactorSpec.recipe`` of every factor a rule builds).
RECIPES: dict[str, Recipe] = {}


class NoStructure(Exception):
    """Raised by a rule for a configuration it does not structure (e.g. an unusual ``gather``);
    the consumer then gets the exact dense fallback and a warning, like a primitive without a rule."""


def _add(table: dict, kind: str, names, fn):
    for name in names:
        if name in table:
            raise ValueError(f"{kind} for {name!r} registered twice")
        table[name] = fn
    return fn


def defrule(*names: str):
    """Decorator: ``rule`` is the structure rule of every primitive in ``names``."""
    return lambda rule: _add(RULES, "structure rule", names, rule)


def defrecipe(*names: str):
    """Decorator: ``recipe`` computes the factors whose ``FactorSpec.recipe`` is in ``names``."""
    return lambda recipe: _add(RECIPES, "factor recipe", names, recipe)


def labels(prefix: str, n: int) -> tuple[str, ...]:
    """``prefix0, prefix1, ...``.

    >>> labels("d", 3)
    ('d0', 'd1', 'd2')
    """
    return tuple(f"{prefix}{i}" for i in range(n))


def dense_rule(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """Fallback for any linear primitive: the whole block ∂z/∂θ as one dense factor (exact)."""
    out = labels("o", len(out_shape))
    theta = labels("t", len(shapes[pos]))
    dense = FactorSpec(recipe="dense", labels=out + theta, shape=tuple(out_shape) + tuple(shapes[pos]), operand=pos)
    return JacobianForm(out_labels=out, theta_labels=theta, factors=(dense,))


@defrecipe("dense")
def dense(spec, eqn, read, linear_zero):
    """∂z/∂θ as one array of shape ``z.shape + θ.shape``: the primitive applied to a basis of θ
    with every other linear input zero (P evaluations); for a primitive that runs only
    transposed (:data:`~ntkc.ir.graph.NOT_FORWARD`: a custom_vjp's backward rule), its
    transpose applied to a basis of z (one row of the block each). Exact for any linear primitive."""
    pos = spec.operand
    theta_shape = tuple(eqn.inputs[pos].shape)
    size = math.prod(theta_shape)
    dtype = eqn.inputs[pos].dtype

    def apply(e):
        vals = [linear_zero(v) for v in eqn.inputs]
        vals[pos] = e.reshape(theta_shape)
        return bind(eqn, vals)[0]

    if eqn.name in NOT_FORWARD:  # runs only transposed: the block's rows, one per entry of z
        out = eqn.outputs[0]
        transposed = jax.linear_transpose(apply, jnp.zeros(theta_shape, dtype))
        rows = jax.vmap(lambda c: transposed(c.reshape(out.shape))[0])(jnp.eye(math.prod(out.shape), dtype=out.dtype))
        return rows.reshape(tuple(out.shape) + theta_shape)
    cols = jax.vmap(apply)(jnp.eye(size, dtype=dtype))  # (P, *z)
    z_nd = cols.ndim - 1
    cols = cols.reshape(theta_shape + cols.shape[1:])
    return jnp.moveaxis(cols, tuple(range(len(theta_shape))), tuple(range(z_nd, z_nd + len(theta_shape))))


def rule_for(name: str) -> tuple[Rule, bool]:
    """The rule for a primitive and whether it is a real rule (False: dense fallback)."""
    if name in RULES:
        return RULES[name], True
    return dense_rule, False


def apply_form(form, factor_arrays, theta, out_shape):
    """``z = scale · einsum(*factors, θ -> z)``: the linear map a Jacobian form describes.

    Output-tiled labels (on z only) are broadcast. Used to check rules against the primitive.
    """
    names: dict[str, str] = {}
    sym = lambda l: names.setdefault(l, opt_einsum.get_symbol(len(names)))
    specs = ["".join(sym(l) for l in spec.labels) for spec in form.factors]
    specs.append("".join(sym(l) for l in form.theta_labels))
    inputs = set("".join(specs))
    present = [l for l in form.out_labels if sym(l) in inputs]
    value = jnp.einsum(",".join(specs) + "->" + "".join(sym(l) for l in present),
                       *factor_arrays, theta, precision=jax.lax.Precision.HIGHEST)
    expanded = tuple(n if l in present else 1 for l, n in zip(form.out_labels, out_shape))
    return form.scale * jnp.broadcast_to(value.reshape(expanded), tuple(out_shape))

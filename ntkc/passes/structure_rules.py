"""Structure rules: for a linear primitive ``z = p(..., θ, ...)``, the einsum form of ∂z/∂θ.

A rule returns a :class:`JacobianForm`: labels for z's axes, labels for θ's axes, and zero or
more factors (:class:`FactorSpec`: a recipe computing an array from the equation's other inputs
or its static params) with their labels, such that

    z = scale · einsum(*factors, θ[theta_labels] -> z[out_labels]).

A label on z and θ but on no factor is a Kronecker delta (constant block-diagonal); on all three,
block-diagonal; on θ only, input-tiled (summed); on z only, output-tiled (broadcast); a factor
carrying a z label and a θ label that differ mixes those axes (e.g. a selection matrix for
``pad`` or the patches of a convolution).

Rules are small pure functions of the input shapes, the θ position and the primitive's params.
``RULES`` is the one table, keyed by primitive name; a primitive without a rule gets
:func:`dense_rule` (exact, with the full Jacobian block as the factor) and a warning.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

Labels = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class FactorSpec:
    """One factor of a Jacobian form: an array computed at run time by a named recipe.

    Attributes:
      recipe: key of :data:`ntkc.backends.factors.FACTOR_OPS`.
      labels: one label per axis of the factor.
      shape: the factor's shape (checked by the verifier against the labels' sizes).
      operand: the equation input the recipe reads, if any.
      args: static, hashable extra arguments of the recipe.
      value: a constant array (recipe ``"constant"``), built at plan time from static params.
    """

    recipe: str
    labels: Labels
    shape: tuple[int, ...]
    operand: int | None = None
    args: tuple = ()
    value: Any = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class JacobianForm:
    """``z[out_labels] = scale · einsum(*factors, θ[theta_labels])``: the structure of ∂z/∂θ."""

    out_labels: Labels
    theta_labels: Labels
    factors: tuple[FactorSpec, ...] = ()
    scale: float = 1.0

    @property
    def factor_labels(self) -> frozenset[str]:
        return frozenset(l for f in self.factors for l in f.labels)

    @property
    def kind(self) -> str:
        """The paper's Table 5 name of this structure."""
        out, theta, fac = set(self.out_labels), set(self.theta_labels), set(self.factor_labels)
        if any(f.recipe == "dense" for f in self.factors):
            return "dense"
        kinds = []
        if (out & theta) - fac:
            kinds.append("constant block-diagonal")
        if out & theta & fac:
            kinds.append("block-diagonal")
        if theta - out - fac:
            kinds.append("input-tiled")
        if out - theta - fac:
            kinds.append("output-tiled")
        if (out - theta) & fac and (theta - out) & fac:
            kinds.append("factored")
        return " + ".join(kinds) or "dense"


def operand_factor(labels: Labels, shape, operand: int, recipe: str = "operand", args: tuple = ()) -> FactorSpec:
    """A factor read from equation input ``operand`` (transformed by ``recipe``)."""
    return FactorSpec(recipe=recipe, labels=tuple(labels), shape=tuple(shape), operand=operand, args=args)


def constant_factor(labels: Labels, value) -> FactorSpec:
    """A constant factor (e.g. a 0/1 selection matrix) computed from static params."""
    value = np.asarray(value)
    return FactorSpec(recipe="constant", labels=tuple(labels), shape=value.shape, value=value)


def _labels(prefix: str, n: int) -> Labels:
    return tuple(f"{prefix}{i}" for i in range(n))


class NoStructure(Exception):
    """Raised by a rule for a configuration it does not structure (e.g. an unusual ``gather``);
    the consumer then gets the exact dense fallback and a warning, like a primitive without a rule."""


Rule = Callable[..., JacobianForm]
RULES: dict[str, Rule] = {}


def register(*names: str):
    def deco(rule: Rule) -> Rule:
        for name in names:
            if name in RULES:
                raise ValueError(f"structure rule for {name!r} registered twice")
            RULES[name] = rule
        return rule
    return deco


def _broadcast_labels(shape, out_labels: Labels, out_shape, tag: str) -> Labels:
    """Labels of an elementwise operand that may be rank 0 or have size-1 axes broadcast
    against the output: equal-size axes share the output's label, size-1 axes get their own."""
    if len(shape) == 0:
        return ()
    return tuple(
        o if n == m else f"{tag}{i}" for i, (o, n, m) in enumerate(zip(out_labels, shape, out_shape))
    )


@register("convert_element_type", "copy", "device_put", "reduce_precision", "add", "add_any", "sub", "neg")
def elementwise_identity(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """z = ±θ (other operands added): ∂z/∂θ = ±I, a Kronecker delta on every axis (axes where θ
    is broadcast are output-tiled)."""
    out = _labels("d", len(out_shape))
    theta = _broadcast_labels(shapes[pos], out, out_shape, "u")
    negative = name == "neg" or (name == "sub" and pos == 1)
    return JacobianForm(out_labels=out, theta_labels=theta, scale=-1.0 if negative else 1.0)


@register("mul")
def mul_rule(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """z = θ ⊙ c: ∂z/∂θ = diag(c), block-diagonal with factor c (a scalar c: constant)."""
    other = 1 - pos
    out = _labels("d", len(out_shape))
    theta = _broadcast_labels(shapes[pos], out, out_shape, "u")
    fac = _broadcast_labels(shapes[other], out, out_shape, "v")
    return JacobianForm(out_labels=out, theta_labels=theta, factors=(operand_factor(fac, shapes[other], other),))


@register("div")
def div_rule(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """z = θ / c: block-diagonal with factor 1/c. (θ in the denominator is not linear.)"""
    if pos != 0:
        return dense_rule(shapes, pos, out_shape, name, **params)
    labels = _labels("d", len(out_shape))
    theta = _broadcast_labels(shapes[0], labels, out_shape, "u")
    fac = _broadcast_labels(shapes[1], labels, out_shape, "v")
    return JacobianForm(out_labels=labels, theta_labels=theta, factors=(operand_factor(fac, shapes[1], 1, "reciprocal"),))


@register("dot_general")
def dot_general_rule(shapes, pos, out_shape, name, *, dimension_numbers, **params) -> JacobianForm:
    """z[b, f, g] = Σ_c lhs[b, f, c] · rhs[b, c, g]: the other operand is the factor; θ's free
    axes are constant block-diagonal with z, its contracting axes meet the factor's."""
    (lc, rc), (lb, rb) = dimension_numbers
    lhs_rank, rhs_rank = len(shapes[0]), len(shapes[1])
    lhs = [None] * lhs_rank
    rhs = [None] * rhs_rank
    for i, (a, b) in enumerate(zip(lb, rb)):
        lhs[a] = rhs[b] = f"b{i}"
    for i, (a, b) in enumerate(zip(lc, rc)):
        lhs[a] = rhs[b] = f"c{i}"
    lhs_free = [f"f{i}" for i in range(lhs_rank - len(lc) - len(lb))]
    rhs_free = [f"g{i}" for i in range(rhs_rank - len(rc) - len(rb))]
    it = iter(lhs_free)
    lhs = [l if l is not None else next(it) for l in lhs]
    it = iter(rhs_free)
    rhs = [l if l is not None else next(it) for l in rhs]
    out = tuple(f"b{i}" for i in range(len(lb))) + tuple(lhs_free) + tuple(rhs_free)
    theta, fac = (lhs, rhs) if pos == 0 else (rhs, lhs)
    return JacobianForm(out_labels=out, theta_labels=tuple(theta), factors=(operand_factor(fac, shapes[1 - pos], 1 - pos),))


@register("broadcast_in_dim")
def broadcast_rule(shapes, pos, out_shape, name, *, shape, broadcast_dimensions, **params) -> JacobianForm:
    """z = broadcast(θ): θ's axes map to z's (size-1 axes are tiled); new axes are output-tiled."""
    out = list(_labels("o", len(out_shape)))
    theta = []
    for k, d in enumerate(broadcast_dimensions):
        if shapes[pos][k] == out_shape[d]:
            theta.append(out[d])
        else:
            theta.append(f"u{k}")
    return JacobianForm(out_labels=tuple(out), theta_labels=tuple(theta))


@register("reduce_sum")
def reduce_sum_rule(shapes, pos, out_shape, name, *, axes, **params) -> JacobianForm:
    """z = Σ_axes θ: reduced axes of θ are input-tiled, the rest map to z."""
    theta = _labels("d", len(shapes[pos]))
    out = tuple(l for i, l in enumerate(theta) if i not in axes)
    return JacobianForm(out_labels=out, theta_labels=theta)


@register("transpose")
def transpose_rule(shapes, pos, out_shape, name, *, permutation, **params) -> JacobianForm:
    """z = θᵀ: a relabelling, z's axis i is θ's axis permutation[i]."""
    theta = _labels("d", len(shapes[pos]))
    return JacobianForm(out_labels=tuple(theta[p] for p in permutation), theta_labels=theta)


def dense_rule(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """Fallback for any linear primitive: the whole block ∂z/∂θ as one dense factor (exact)."""
    out = _labels("o", len(out_shape))
    theta = _labels("t", len(shapes[pos]))
    dense = FactorSpec(recipe="dense", labels=out + theta, shape=tuple(out_shape) + tuple(shapes[pos]), operand=pos)
    return JacobianForm(out_labels=out, theta_labels=theta, factors=(dense,))


def rule_for(name: str) -> tuple[Rule, bool]:
    """The rule for a primitive and whether it is a real rule (False: dense fallback)."""
    if name in RULES:
        return RULES[name], True
    return dense_rule, False


# Rule families in their own modules register into RULES on import.
from ntkc.passes import conv_rules, index_rules  # noqa: E402,F401

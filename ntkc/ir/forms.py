"""Jacobian forms: the einsum structure of ∂z/∂θ for one linear primitive ``z = p(..., θ, ...)``.

A :class:`JacobianForm` gives labels for z's axes, labels for θ's axes, and zero or more factors
(:class:`FactorSpec`: a named recipe computing an array from the equation's other inputs or its
static params) with their labels, such that

    z = scale · einsum(*factors, θ[theta_labels] -> z[out_labels]).

A label on z and θ but on no factor is a Kronecker delta (constant block-diagonal); on all three,
block-diagonal; on θ only, input-tiled (summed); on z only, output-tiled (broadcast); a factor
carrying a z label and a θ label that differ mixes those axes (e.g. a selection matrix for
``pad`` or the patches of a convolution).

>>> bias = JacobianForm(out_labels=("n", "d"), theta_labels=("d",))
>>> bias.kind
'constant block-diagonal + output-tiled'
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

Labels = tuple[str, ...]

#: Recipes whose array is fixed at plan time (``FactorSpec.value``), the same for every example.
CONSTANT_RECIPES = frozenset({"constant"})


@dataclasses.dataclass(frozen=True)
class FactorSpec:
    """One factor of a Jacobian form: an array computed at run time by a named recipe.

    Attributes:
      recipe: key of :data:`ntkc.rules.RECIPES`.
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

    @property
    def constant(self) -> bool:
        """Whether the factor is fixed at plan time (no batch axis, the same for every example)."""
        return self.recipe in CONSTANT_RECIPES


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

"""Parameter uses: where each parameter leaf enters the linear program, with the structure of
its Jacobian there.

A :class:`Use` is one consumer of a parameter tangent θ̇_l: the equation reading it (possibly
extended down a chain of cheap ops by propagation), its :class:`~ntkc.ir.forms.JacobianForm`,
and, for a use inside a kept loop's body, :class:`InLoop`.
"""

from __future__ import annotations

import dataclasses

from ntkc.ir.forms import JacobianForm
from ntkc.ir.graph import Eqn, Var


@dataclasses.dataclass(frozen=True, eq=False)
class InLoop:
    """Where a use inside a kept loop's body sits: the loop equation, and whether the parameter
    is ``stacked`` (iteration t reads θ[t]: θ's axis 0 is the iteration) or shared (every
    iteration reads all of θ). Such a use stands for ``length`` consumers at once: its
    cotangent and per-example factors carry a leading iteration axis."""

    eqn: Eqn
    stacked: bool

    @property
    def length(self) -> int:
        return self.eqn.loop.length


@dataclasses.dataclass(frozen=True, eq=False)
class Use:
    """Parameter leaf ``leaf`` reaches ``output`` through the chain ``eqns`` with structure ``form``.

    ``eqns[0]`` reads θ̇_leaf at input ``position``; propagation may extend the chain through
    cheap ops, composing their forms. ``factor_eqns[i]`` is the equation whose inputs
    ``form.factors[i]`` is computed from. ``has_rule`` is False for the exact dense fallback.
    """

    leaf: int
    eqns: tuple[Eqn, ...]
    position: int
    form: JacobianForm
    factor_eqns: tuple[Eqn, ...]
    has_rule: bool
    loop: InLoop | None = None

    @property
    def eqn(self) -> Eqn:
        """The equation reading the parameter tangent."""
        return self.eqns[0]

    @property
    def output(self) -> Var:
        return self.eqns[-1].outputs[0]

    @property
    def primitives(self) -> str:
        return "→".join(e.name for e in self.eqns)


def theta_axes(use) -> dict[str, int]:
    """The θ axis each of a use's θ labels stands for (a stacked loop use's form describes θ[t],
    so its labels are θ's axes from 1 on).

    >>> from types import SimpleNamespace as NS
    >>> theta_axes(NS(form=NS(theta_labels=("i", "o")), loop=NS(stacked=True)))
    {'i': 1, 'o': 2}
    """
    shift = 1 if use.loop is not None and use.loop.stacked else 0
    return {l: a + shift for a, l in enumerate(use.form.theta_labels)}

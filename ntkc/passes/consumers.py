"""Find every parameter leaf's consumers and their Jacobian structure.

Needs: a lowered :class:`~ntkc.ir.graph.Graph`. Guarantees: one :class:`Use` per (equation,
input position) that reads a parameter tangent θ̇_l, with the structure rule's
:class:`~ntkc.passes.structure_rules.JacobianForm`. Uses whose primitive has no rule get the
exact dense fallback and a warning naming the primitive and the user's source line.
"""

from __future__ import annotations

import dataclasses
import warnings

from ntkc.ir.graph import Eqn, Graph, Var
from ntkc.passes.structure_rules import JacobianForm, NoStructure, dense_rule, rule_for


class DenseFallbackWarning(UserWarning):
    """A consumer primitive has no structure rule; its Jacobian block is formed densely."""


@dataclasses.dataclass(frozen=True, eq=False)
class Use:
    """Parameter leaf ``leaf`` is read by ``eqn`` at input ``position`` with structure ``form``."""

    leaf: int
    eqn: Eqn
    position: int
    form: JacobianForm
    has_rule: bool

    @property
    def output(self) -> Var:
        return self.eqn.outputs[0]


def find_uses(graph: Graph) -> list[Use]:
    users = graph.users()
    uses = []
    for leaf, tangent in enumerate(graph.tangent_inputs):
        for eqn, pos in users.get(tangent, []):
            shapes = [tuple(getattr(v, "shape", ())) for v in eqn.inputs]
            out_shape = eqn.outputs[0].shape
            rule, has_rule = rule_for(eqn.name)
            if len(eqn.outputs) != 1:
                raise NotImplementedError(
                    f"ntkc structured: parameter consumed by multi-output primitive "
                    f"'{eqn.name}' (from {eqn.source}); use method='jacobian' or 'ntvp'."
                )
            reason = "no structure rule for primitive"
            form = None
            if has_rule:
                try:
                    form = rule(shapes, pos, out_shape, eqn.name, **eqn.params)
                except NoStructure as err:
                    has_rule, reason = False, f"no structure for this configuration ({err}) of primitive"
            if form is None:
                warnings.warn(
                    f"ntkc: {reason} '{eqn.name}' (from {eqn.source}); "
                    "using its exact dense Jacobian block for this consumer.",
                    DenseFallbackWarning, stacklevel=2,
                )
                form = dense_rule(shapes, pos, out_shape, eqn.name, **eqn.params)
            uses.append(Use(leaf=leaf, eqn=eqn, position=pos, form=form, has_rule=has_rule))
    return uses

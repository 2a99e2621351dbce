"""Find every parameter leaf's consumers and their Jacobian structure.

Needs: a lowered :class:`~ntkc.ir.graph.Graph`. Guarantees: one :class:`~ntkc.ir.uses.Use` per
(equation, input position) that reads a parameter tangent θ̇_l, with the structure rule's
:class:`~ntkc.ir.forms.JacobianForm`. Uses whose primitive has no rule get the exact dense
fallback and a warning naming the primitive and the user's source line; a parameter read by a
multi-output primitive raises :class:`~ntkc.errors.MultiOutputConsumer` (the methods then fall
back to Jacobian contraction).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ntkc.errors import DenseFallbackWarning, MultiOutputConsumer
from ntkc.ir.forms import JacobianForm
from ntkc.ir.graph import Eqn, Graph, Lit
from ntkc.ir.uses import InLoop, Use
from ntkc.rules import NoStructure, dense_rule, rule_for

__all__ = ["DenseFallbackWarning", "InLoop", "Use", "find_uses", "form_of", "fold_literals", "readers"]


def fold_literals(form: JacobianForm, eqn: Eqn) -> JacobianForm:
    """Scalar literal factors (``θ * 0.5``, ``θ / 4``) become part of the constant scale."""
    keep, scale = [], form.scale
    for spec in form.factors:
        atom = eqn.inputs[spec.operand] if spec.operand is not None else None
        if spec.recipe in ("operand", "reciprocal") and isinstance(atom, Lit) and not spec.labels:
            value = float(np.asarray(atom.value))
            scale *= value if spec.recipe == "operand" else 1.0 / value
        else:
            keep.append(spec)
    return dataclasses.replace(form, factors=tuple(keep), scale=scale)


def form_of(eqn: Eqn, pos: int):
    """The structure rule's form for input ``pos`` of ``eqn``, or None without a rule."""
    rule, has_rule = rule_for(eqn.name)
    if not has_rule or len(eqn.outputs) != 1:
        return None
    shapes = [tuple(getattr(v, "shape", ())) for v in eqn.inputs]
    try:
        return fold_literals(rule(shapes, pos, eqn.outputs[0].shape, eqn.name, **eqn.params), eqn)
    except NoStructure:
        return None


def readers(graph: Graph) -> list[tuple[int, Eqn, int, InLoop | None]]:
    """Every (leaf, equation, input position, loop) reading a parameter tangent, in leaf order;
    a kept loop's body is entered: its equations reading a body input that receives θ̇_l."""
    users = graph.users()
    found = []
    for leaf, tangent in enumerate(graph.tangent_inputs):
        for eqn, pos in users.get(tangent, []):
            if eqn.loop is None:
                found.append((leaf, eqn, pos, None))
                continue
            inner = eqn.loop.inputs[pos]
            where = InLoop(eqn=eqn, stacked=eqn.loop.theta[inner][1])
            found.extend((leaf, e, p, where) for e, p in eqn.loop.users().get(inner, []))
    return found


def find_uses(graph: Graph) -> list[Use]:
    """Every parameter tangent's consumers as :class:`Use` s (see the module docstring)."""
    uses = []
    for leaf, eqn, pos, loop in readers(graph):
        shapes = [tuple(getattr(v, "shape", ())) for v in eqn.inputs]
        out_shape = eqn.outputs[0].shape
        rule, has_rule = rule_for(eqn.name)
        if len(eqn.outputs) != 1:
            raise MultiOutputConsumer(eqn)
        reason = "no structure rule for primitive"
        form = None
        if has_rule:
            try:
                form = fold_literals(rule(shapes, pos, out_shape, eqn.name, **eqn.params), eqn)
            except NoStructure as err:
                has_rule, reason = False, f"no structure for this configuration ({err}) of primitive"
        if form is None:
            warnings.warn(
                f"ntkc: {reason} '{eqn.name}' (from {eqn.source}); "
                "using its exact dense Jacobian block for this consumer.",
                DenseFallbackWarning, stacklevel=2,
            )
            form = dense_rule(shapes, pos, out_shape, eqn.name, **eqn.params)
        uses.append(Use(leaf=leaf, eqns=(eqn,), position=pos, form=form,
                        factor_eqns=(eqn,) * len(form.factors), has_rule=has_rule, loop=loop))
    return uses

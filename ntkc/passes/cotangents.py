"""The cotangent plan: which consumer outputs need ∂f/∂z, and which of their axes to sum out.

All cotangents of a side come from one shared backward sweep (see
:func:`ntkc.backends.operands.example_operands`): the linear program is re-evaluated with an extra
input δ_z added at every target z, and ``jax.vjp`` w.r.t. the δ's gives every ∂f/∂z at once —
ordinary reverse mode, built from public transposition only.

Needs: uses (after propagation). Guarantees: one :class:`CotangentTarget` per distinct use
output; an axis of z is summed out when it is output-tiled (a broadcast: on z only) in every use
reading that target, since ``Σ_z cot[z] · J[z, θ]`` with J constant along it only needs the sum.
"""

from __future__ import annotations

import dataclasses

from ntkc.ir.compilation import CotangentTarget


def summed_axes(forms) -> tuple[int, ...]:
    """Axes of z that every form leaves output-tiled.

    >>> from ntkc.ir.forms import JacobianForm
    >>> bias = JacobianForm(out_labels=("n", "d"), theta_labels=("d",))
    >>> summed_axes([bias])
    (0,)
    """
    axes = None
    for form in forms:
        inner = set(form.theta_labels) | set(form.factor_labels)
        mine = {i for i, l in enumerate(form.out_labels) if l not in inner}
        axes = mine if axes is None else axes & mine
    return tuple(sorted(axes or ()))


def side_targets(uses) -> tuple[CotangentTarget, ...]:
    by_var: dict = {}
    loops: dict = {}
    for use in uses:
        by_var.setdefault(use.output, []).append(use.form)
        loops[use.output] = use.loop.eqn if use.loop is not None else None
    return tuple(CotangentTarget(var=v, summed=summed_axes(forms), loop=loops[v]) for v, forms in by_var.items())


def cotangents_pass(comp):
    """Needs: uses. Guarantees: ``SideIR.targets`` covers every use's output exactly once."""
    return comp.replace(sides=tuple(
        dataclasses.replace(s, targets=side_targets(s.uses)) for s in comp.sides
    ))

"""Structure propagation: move a use's cut down a chain of linear ops.

A parameter is often transformed before its real consumer: scaled (NTK parameterization
``x @ (W * c)``), cast (mixed precision), transposed, broadcast (biases). Taken literally, the
cut sits at the cheap op, whose output has θ's full size, and the cotangent ∂f/∂z there is as
large as a Jacobian. Composing forms moves the cut to the consumer:

    z1 = A1 θ,  z2 = A2 z1  ⟹  z2 = (A2 A1) θ

where the composite form joins the two einsums on z1's labels (a z1 label that ends up in no
operand was a broadcast then summed: it contributes its size to the scale). A cut moves

* through an **identity** (``z2 = ±z1 + …``: ``add``, ``add_any``, ``sub``, ``neg``, ``copy``,
  same shape and dtype), whatever the use's form: ∂f/∂z1 = ±∂f/∂z2, so nothing changes but the
  target — and uses meeting at one sum (a layer's weight and its bias) read one cotangent;
* from a **cheap** form (no factor, or scalar factors) into a reader without factors when z2 is
  no larger than z1, and into a reader with factors when z2 is smaller than z1 (the cotangent
  shrinks: ``x @ (W * c)`` is cut at the ``dot_general``); a cut that would keep its size and
  gain a factor (a bias moved into a ReLU's ``select_n``) stays, since its terms would only
  multiply by that factor what the backward sweep already applies.

Needs: uses from the structure pass. Guarantees: every use's form still describes ∂output/∂θ
exactly; a cut moves only when z1 has a single reader, is not an output, the reader has a real
rule, and the cotangent never grows.
"""

from __future__ import annotations

import dataclasses
import math

from ntkc.ir.forms import JacobianForm
from ntkc.ir.graph import Var
from ntkc.ir.uses import Use
from ntkc.passes.consumers import form_of


def is_cheap(form: JacobianForm) -> bool:
    """True when carrying the form costs nothing: no factor, or only scalar factors."""
    return all(len(f.labels) == 0 for f in form.factors)


def _rename(labels, mapping) -> tuple[str, ...]:
    return tuple(mapping.get(l, l) for l in labels)


def compose(first: JacobianForm, second: JacobianForm, z1_shape, tag: str) -> JacobianForm:
    """The form of ``second ∘ first``: ``second`` reads ``first``'s output at its θ labels.

    >>> from ntkc.ir.forms import JacobianForm
    >>> scale = JacobianForm(out_labels=("d0", "d1"), theta_labels=("d0", "d1"), scale=2.0)
    >>> total = JacobianForm(out_labels=(), theta_labels=("d0", "d1"))
    >>> c = compose(scale, total, (3, 4), "k")
    >>> c.out_labels, c.theta_labels, c.scale
    ((), ('d0', 'd1'), 2.0)
    """
    local = {l: f"{tag}:{l}" for l in (*second.out_labels, *second.theta_labels, *second.factor_labels)}
    local.update(zip(second.theta_labels, first.out_labels))
    factors = first.factors + tuple(
        dataclasses.replace(f, labels=_rename(f.labels, local)) for f in second.factors
    )
    out = _rename(second.out_labels, local)
    present = set(out) | set(first.theta_labels) | {l for f in factors for l in f.labels}
    vanished = math.prod(n for l, n in zip(first.out_labels, z1_shape) if l not in present)
    return JacobianForm(out_labels=out, theta_labels=first.theta_labels, factors=factors,
                        scale=first.scale * second.scale * vanished)


def is_identity(form: JacobianForm, z1, z2) -> bool:
    """``z2 = ±z1`` axis by axis (plus terms not depending on z1): no factor, every label shared.

    >>> from types import SimpleNamespace as NS
    >>> z = NS(shape=(2, 3), dtype="float32")
    >>> is_identity(JacobianForm(out_labels=("d0", "d1"), theta_labels=("d0", "d1"), scale=-1.0), z, z)
    True
    """
    return (not form.factors and abs(form.scale) == 1.0 and form.out_labels == form.theta_labels
            and tuple(z1.shape) == tuple(z2.shape) and z1.dtype == z2.dtype)


def _moves(use: Use, form2: JacobianForm, z1, z2) -> bool:
    if is_identity(form2, z1, z2):
        return True
    if not is_cheap(use.form):
        return False
    grows = math.prod(z2.shape) - math.prod(z1.shape)
    return grows < 0 or (grows == 0 and is_cheap(form2))


def _extend(use: Use, users, outputs) -> Use | None:
    z1 = use.output
    readers = users.get(z1, [])
    if z1 in outputs or len(readers) != 1:
        return None
    eqn, pos = readers[0]
    if sum(1 for v in eqn.inputs if v is z1) != 1 or len(eqn.outputs) != 1:
        return None
    form2 = form_of(eqn, pos)
    if form2 is None or not _moves(use, form2, z1, eqn.outputs[0]):
        return None
    form = compose(use.form, form2, z1.shape, tag=f"p{len(use.eqns)}")
    return dataclasses.replace(
        use, eqns=use.eqns + (eqn,), form=form,
        factor_eqns=use.factor_eqns + (eqn,) * len(form2.factors),
    )


def propagate_uses(graph, uses) -> tuple[Use, ...]:
    """A use inside a kept loop moves only within the loop's body (its outputs end the chain)."""
    scopes = {None: (graph.users(), {o for o in graph.outputs if isinstance(o, Var)})}
    done = []
    for use in uses:
        scope = use.loop.eqn if use.loop is not None else None
        if scope not in scopes:
            scopes[scope] = (scope.loop.users(), {o for o in scope.loop.outputs if isinstance(o, Var)})
        users, outputs = scopes[scope]
        while (longer := _extend(use, users, outputs)) is not None:
            use = longer
        done.append(use)
    return tuple(done)


def propagate_pass(comp):
    """Needs: uses. Guarantees: each use's cut moved down its chain (see module)."""
    return comp.replace(sides=tuple(
        dataclasses.replace(s, uses=propagate_uses(s.graph, s.uses)) for s in comp.sides
    ))

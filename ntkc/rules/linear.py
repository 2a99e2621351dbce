"""Structure rules of the elementwise, contraction and reduction primitives, with their recipes.

Identity-like primitives (casts, copies, sums, negation) are Kronecker deltas on every axis;
``mul``/``div`` are block-diagonal with the other operand (or its reciprocal) as the factor;
``dot_general`` has the other operand as the factor, constant block-diagonal on θ's free axes;
``broadcast_in_dim``, ``reduce_sum`` and ``transpose`` are relabellings.
"""

from __future__ import annotations

import jax.numpy as jnp

from ntkc.ir.forms import JacobianForm, operand_factor
from ntkc.rules.table import defrecipe, defrule, dense_rule, labels

Labels = tuple[str, ...]


def broadcast_labels(shape, out_labels: Labels, out_shape, tag: str) -> Labels:
    """Labels of an elementwise operand that may be rank 0 or have size-1 axes broadcast
    against the output: equal-size axes share the output's label, size-1 axes get their own.

    >>> broadcast_labels((1, 3), ("d0", "d1"), (4, 3), "u")
    ('u0', 'd1')
    """
    if len(shape) == 0:
        return ()
    return tuple(
        o if n == m else f"{tag}{i}" for i, (o, n, m) in enumerate(zip(out_labels, shape, out_shape))
    )


@defrule("convert_element_type", "copy", "device_put", "reduce_precision", "add", "add_any", "sub", "neg")
def elementwise_identity(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """z = ±θ (other operands added): ∂z/∂θ = ±I, a Kronecker delta on every axis (axes where θ
    is broadcast are output-tiled)."""
    out = labels("d", len(out_shape))
    theta = broadcast_labels(shapes[pos], out, out_shape, "u")
    negative = name == "neg" or (name == "sub" and pos == 1)
    return JacobianForm(out_labels=out, theta_labels=theta, scale=-1.0 if negative else 1.0)


@defrule("mul")
def mul_rule(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """z = θ ⊙ c: ∂z/∂θ = diag(c), block-diagonal with factor c (a scalar c: constant)."""
    other = 1 - pos
    out = labels("d", len(out_shape))
    theta = broadcast_labels(shapes[pos], out, out_shape, "u")
    fac = broadcast_labels(shapes[other], out, out_shape, "v")
    return JacobianForm(out_labels=out, theta_labels=theta, factors=(operand_factor(fac, shapes[other], other),))


@defrule("div")
def div_rule(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """z = θ / c: block-diagonal with factor 1/c. (θ in the denominator is not linear.)"""
    if pos != 0:
        return dense_rule(shapes, pos, out_shape, name, **params)
    out = labels("d", len(out_shape))
    theta = broadcast_labels(shapes[0], out, out_shape, "u")
    fac = broadcast_labels(shapes[1], out, out_shape, "v")
    return JacobianForm(out_labels=out, theta_labels=theta, factors=(operand_factor(fac, shapes[1], 1, "reciprocal"),))


@defrule("dot_general")
def dot_general_rule(shapes, pos, out_shape, name, *, dimension_numbers, **params) -> JacobianForm:
    """z[b, f, g] = Σ_c lhs[b, f, c] · rhs[b, c, g]: the other operand is the factor; θ's free
    axes are constant block-diagonal with z, its contracting axes meet the factor's."""
    (lc, rc), (lb, rb) = dimension_numbers
    lhs = [None] * len(shapes[0])
    rhs = [None] * len(shapes[1])
    for i, (a, b) in enumerate(zip(lb, rb)):
        lhs[a] = rhs[b] = f"b{i}"
    for i, (a, b) in enumerate(zip(lc, rc)):
        lhs[a] = rhs[b] = f"c{i}"
    lhs_free = [f"f{i}" for i in range(len(lhs) - len(lc) - len(lb))]
    rhs_free = [f"g{i}" for i in range(len(rhs) - len(rc) - len(rb))]
    it = iter(lhs_free)
    lhs = [l if l is not None else next(it) for l in lhs]
    it = iter(rhs_free)
    rhs = [l if l is not None else next(it) for l in rhs]
    out = tuple(f"b{i}" for i in range(len(lb))) + tuple(lhs_free) + tuple(rhs_free)
    theta, fac = (lhs, rhs) if pos == 0 else (rhs, lhs)
    return JacobianForm(out_labels=out, theta_labels=tuple(theta), factors=(operand_factor(fac, shapes[1 - pos], 1 - pos),))


@defrule("broadcast_in_dim")
def broadcast_rule(shapes, pos, out_shape, name, *, shape, broadcast_dimensions, **params) -> JacobianForm:
    """z = broadcast(θ): θ's axes map to z's (size-1 axes are tiled); new axes are output-tiled."""
    out = labels("o", len(out_shape))
    theta = tuple(out[d] if shapes[pos][k] == out_shape[d] else f"u{k}" for k, d in enumerate(broadcast_dimensions))
    return JacobianForm(out_labels=out, theta_labels=theta)


@defrule("reduce_sum")
def reduce_sum_rule(shapes, pos, out_shape, name, *, axes, **params) -> JacobianForm:
    """z = Σ_axes θ: reduced axes of θ are input-tiled, the rest map to z."""
    theta = labels("d", len(shapes[pos]))
    return JacobianForm(out_labels=tuple(l for i, l in enumerate(theta) if i not in axes), theta_labels=theta)


@defrule("transpose")
def transpose_rule(shapes, pos, out_shape, name, *, permutation, **params) -> JacobianForm:
    """z = θᵀ: a relabelling, z's axis i is θ's axis permutation[i]."""
    theta = labels("d", len(shapes[pos]))
    return JacobianForm(out_labels=tuple(theta[p] for p in permutation), theta_labels=theta)


@defrecipe("operand")
def operand(spec, eqn, read, linear_zero):
    """The equation input itself (e.g. ``x`` for ``x @ θ``)."""
    return read(eqn.inputs[spec.operand])


@defrecipe("reciprocal")
def reciprocal(spec, eqn, read, linear_zero):
    """``1 / c`` for ``θ / c``."""
    return 1.0 / read(eqn.inputs[spec.operand])


@defrecipe("constant")
def constant(spec, eqn, read, linear_zero):
    """A constant built at plan time from static params (selection matrices and the like)."""
    return jnp.asarray(spec.value)

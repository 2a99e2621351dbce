"""Factor recipes: how each :class:`~ntkc.passes.structure_rules.FactorSpec` becomes an array.

``FACTOR_OPS[spec.recipe](spec, eqn, read, linear_zero)`` returns the factor for one example,
with shape ``spec.shape``. ``read(atom)`` gives the primal value of an equation input (a
residual or constant); ``linear_zero(atom)`` gives it too, except that inputs depending on the
parameter tangents read as zeros (used to evaluate the primitive's own linear map).

Every recipe named by a structure rule must be in this table (a test checks it).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from ntkc.ir.from_jaxpr import bind

Recipe = Callable

FACTOR_OPS: dict[str, Recipe] = {}


def register_factor(name: str):
    def deco(fn: Recipe) -> Recipe:
        if name in FACTOR_OPS:
            raise ValueError(f"factor recipe {name!r} registered twice")
        FACTOR_OPS[name] = fn
        return fn
    return deco


@register_factor("operand")
def operand(spec, eqn, read, linear_zero):
    """The equation input itself (e.g. ``x`` for ``x @ θ``)."""
    return read(eqn.inputs[spec.operand])


@register_factor("reciprocal")
def reciprocal(spec, eqn, read, linear_zero):
    """``1 / c`` for ``θ / c``."""
    return 1.0 / read(eqn.inputs[spec.operand])


@register_factor("constant")
def constant(spec, eqn, read, linear_zero):
    """A constant built at plan time from static params (selection matrices and the like)."""
    return jnp.asarray(spec.value)


@register_factor("dense")
def dense(spec, eqn, read, linear_zero):
    """∂z/∂θ as one array of shape ``z.shape + θ.shape``: the primitive applied to a basis of θ
    with every other linear input zero. Exact for any linear primitive; costs P evaluations."""
    pos = spec.operand
    theta_shape = tuple(eqn.inputs[pos].shape)
    size = math.prod(theta_shape)
    dtype = eqn.inputs[pos].dtype

    def apply(e):
        vals = [linear_zero(v) for v in eqn.inputs]
        vals[pos] = e.reshape(theta_shape)
        return bind(eqn, vals)[0]

    cols = jax.vmap(apply)(jnp.eye(size, dtype=dtype))  # (P, *z)
    z_nd = cols.ndim - 1
    cols = cols.reshape(theta_shape + cols.shape[1:])
    return jnp.moveaxis(cols, tuple(range(len(theta_shape))), tuple(range(z_nd, z_nd + len(theta_shape))))


def apply_form(form, factor_arrays, theta, out_shape):
    """``z = scale · einsum(*factors, θ -> z)``: the linear map a Jacobian form describes.

    Output-tiled labels (on z only) are broadcast. Used to check rules against the primitive.
    """
    import opt_einsum

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


# Recipe families in their own modules register into FACTOR_OPS on import.
from ntkc.backends import conv_factors, index_factors  # noqa: E402,F401

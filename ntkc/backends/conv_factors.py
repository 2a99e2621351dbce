"""Factor recipes for the conv rules (registered into :data:`ntkc.backends.factors.FACTOR_OPS`)."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ntkc.backends.factors import register_factor
from ntkc.ir.from_jaxpr import bind


def patches(x, kernel, out, padding, strides, lhs_dilation, rhs_dilation):
    """P[n, out..., kernel..., c] = x̂[n, out·strides + kernel·rhs_dilation, c] for ``x`` laid
    out (N, spatial..., C), x̂ = x dilated by ``lhs_dilation`` and padded (negative padding crops).

    Zero FLOPs: one ``lax.pad`` and one strided ``lax.slice`` per kernel offset.
    """
    config = [(0, 0, 0), *((lo, hi, d - 1) for (lo, hi), d in zip(padding, lhs_dilation)), (0, 0, 0)]
    xpad = lax.pad(x, jnp.zeros((), x.dtype), config)
    n, c = xpad.shape[0], xpad.shape[-1]
    slices = []
    for offset in itertools.product(*map(range, kernel)):
        start = tuple(k * d for k, d in zip(offset, rhs_dilation))
        limit = tuple(b + max((m - 1) * s + 1, 0) for b, m, s in zip(start, out, strides))
        slices.append(lax.slice(xpad, (0, *start, 0), (n, *limit, c), (1, *strides, 1)))
    stacked = jnp.stack(slices, axis=-2)  # (N, out..., prod(kernel), C)
    return stacked.reshape(stacked.shape[:-2] + tuple(kernel) + (c,))


def group_patches(p, n_out_features: int, feature_groups: int, batch_groups: int):
    """F[n, ..., c, o] = P[b(o)·N' + n, ..., g(o)·I + c]: each out feature o reads its own
    feature group g(o) = o // (O/G) and batch group b(o) = o // (O/B) (a gather, no FLOPs)."""
    n, c = p.shape[0], p.shape[-1]
    mid = p.shape[1:-1]
    p = p.reshape((batch_groups, n // batch_groups) + mid + (feature_groups, c // feature_groups))
    p = jnp.moveaxis(p, -2, 1).reshape((batch_groups * feature_groups, n // batch_groups) + mid
                                       + (c // feature_groups,))
    o = np.arange(n_out_features)
    index = (o // (n_out_features // batch_groups)) * feature_groups + o // (n_out_features // feature_groups)
    return jnp.moveaxis(jnp.take(p, index, axis=0), 0, -1)


@register_factor("conv_patches")
def conv_patches(spec, eqn, read, linear_zero):
    """The lhs patches of a conv whose kernel is θ (see ``conv_rules._kernel_form``)."""
    a = dict(spec.args)
    lhs_spec = a["lhs_spec"]
    nsp = len(lhs_spec) - 2
    x = jnp.transpose(read(eqn.inputs[spec.operand]), (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    out, kernel = spec.shape[1:1 + nsp], spec.shape[1 + nsp:1 + 2 * nsp]
    p = patches(x, kernel, out, a["padding"], a["window_strides"], a["lhs_dilation"], a["rhs_dilation"])
    groups, batch_groups = a["feature_group_count"], a["batch_group_count"]
    if groups == 1 and batch_groups == 1:
        return p
    return group_patches(p, spec.shape[-1], groups, batch_groups)


@register_factor("conv_input_basis")
def conv_input_basis(spec, eqn, read, linear_zero):
    """T[out axes but batch, lhs axes but batch]: the conv applied to every basis vector of one
    example (batch 1) of its input, with the kernel (input ``spec.operand``) fixed."""
    lhs_spec, _, out_spec = eqn.params["dimension_numbers"]
    shape = list(eqn.inputs[0].shape)
    shape[lhs_spec[0]] = 1
    size = math.prod(shape)
    kernel = read(eqn.inputs[spec.operand])
    apply = lambda e: bind(eqn, [e.reshape(shape), kernel])[0]
    cols = jax.vmap(apply)(jnp.eye(size, dtype=eqn.inputs[0].dtype))  # (size, *z with batch 1)
    cols = jnp.squeeze(cols, axis=1 + out_spec[0])
    return jnp.moveaxis(cols, 0, -1).reshape(spec.shape)

"""Factor recipes for the index rules (registered into :data:`ntkc.backends.factors.FACTOR_OPS`).

Each builds a 0/1 array from an index or predicate operand of the equation, in the dtype of the
equation's output (θ's dtype).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from ntkc.backends.factors import register_factor


def _one_hot_window(start, n: int, s: int, valid=True):
    """``W[..., o, j] = [j == start[...] + o] · valid[...]`` of shape ``start.shape + (s, n)``."""
    window = jnp.asarray(start)[..., None] + jnp.arange(s)
    hit = window[..., None] == jnp.arange(n)
    return hit & jnp.asarray(valid)[..., None, None]


@register_factor("dynamic_window")
def dynamic_window(spec, eqn, read, linear_zero):
    """Selection of ``dynamic_slice``: ``S[o, j] = δ(j, clip(start, 0, n − s) + o)``, shape
    ``(s, n)``; transposed ``(n, s)`` for the update of ``dynamic_update_slice``."""
    n, s, transpose = spec.args
    start = jnp.clip(read(eqn.inputs[spec.operand]), 0, n - s)
    window = _one_hot_window(start, n, s).astype(eqn.outputs[0].dtype)
    return window.T if transpose else window


@register_factor("update_mask")
def update_mask(spec, eqn, read, linear_zero):
    """``dynamic_update_slice``'s base mask: 1 outside the (clamped) updated window, 0 inside."""
    dtype = eqn.outputs[0].dtype
    ones = jnp.ones(eqn.inputs[0].shape, dtype)
    starts = [read(x) for x in eqn.inputs[2:]]
    return lax.dynamic_update_slice(ones, jnp.zeros(eqn.inputs[1].shape, dtype), starts)


@register_factor("select_case")
def select_case(spec, eqn, read, linear_zero):
    """``[which == k]`` for case ``k`` of ``select_n`` (bool predicates read as 0/1)."""
    (k,) = spec.args
    which = jnp.asarray(read(eqn.inputs[0])).astype(jnp.int32)
    return (which == k).astype(eqn.outputs[0].dtype)


@register_factor("gather_window")
def gather_window(spec, eqn, read, linear_zero):
    """One indexed operand axis of ``gather``: ``W[b, o, j] = δ(j, c(b) + o)`` with ``c`` the
    index component ``k`` clamped to ``[0, n − s]`` (clip) or, for fill, zero where it lies
    outside that range. Shape ``batch + (s, n)``, or ``batch + (n,)`` for a collapsed axis."""
    k, n, s, clip, collapsed = spec.args
    start = jnp.asarray(read(eqn.inputs[1]))[..., k]
    if clip:
        window = _one_hot_window(jnp.clip(start, 0, n - s), n, s)
    else:
        window = _one_hot_window(start, n, s, (start >= 0) & (start <= n - s))
    window = window[..., 0, :] if collapsed else window
    return window.astype(eqn.outputs[0].dtype)

"""Zoo models with ``jax.custom_vjp`` functions: a straight-through estimator between layers, and
a dense layer whose backward rule is written by hand (a "fused" layer holding parameters).

The NTK of such a model is the one ``jax.jacrev`` defines — through the custom backward rule.
JAX runs such a rule only in reverse mode, so NTK-vector products (forward mode) fall back to
Jacobian contraction; the structured method transposes the rule, and a parameter read inside it
gets a dense Jacobian block (its structure is the user's code). Registered into
:data:`ntkc.testing.ZOO` on import.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ntkc.testing.models import dense
from ntkc.testing.zoo import Rng, instance, register


@jax.custom_vjp
def straight_through_round(z):
    """``round(z)`` forward; the identity backward (a straight-through estimator)."""
    return jnp.round(z)


def _round_forward(z):
    return jnp.round(z), None


def _round_backward(_, g):
    return (g,)


straight_through_round.defvjp(_round_forward, _round_backward)


def quantized_mlp(params, x):
    """Dense, tanh, activations quantized to quarters (straight-through), dense."""
    h = jnp.tanh(dense(params["hidden"], x))
    return dense(params["head"], straight_through_round(4 * h) / 4)


@jax.custom_vjp
def fused_tanh_dense(w, h):
    """``tanh(h @ w)`` with a hand-written backward rule."""
    return jnp.tanh(h @ w)


def _fused_forward(w, h):
    y = jnp.tanh(h @ w)
    return y, (w, h, y)


def _fused_backward(residuals, g):
    w, h, y = residuals
    d = g * (1 - y ** 2)
    return jnp.einsum("...i,...o->io", h, d), d @ w.T


fused_tanh_dense.defvjp(_fused_forward, _fused_backward)


def fused_layer_mlp(params, x):
    """A fused tanh-dense layer (custom VJP, parameters inside), then a dense head."""
    return dense(params["head"], fused_tanh_dense(params["fused"], x))


@register("custom_vjp_ste", "Dense, tanh, straight-through quantization (custom_vjp), dense->2.",
          tags=("custom_vjp",))
def _make_quantized_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"hidden": rng.dense(3, 5), "head": rng.dense(5, 2)}
    return instance(quantized_mlp, params, key, dtype, n1, n2, (3,))


@register("custom_vjp_fused", "A fused tanh-dense layer with a hand-written VJP (parameters inside), dense->2.",
          tags=("custom_vjp",))
def _make_fused_layer_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"fused": rng.dense(3, 5)["w"], "head": rng.dense(5, 2)}
    return instance(fused_layer_mlp, params, key, dtype, n1, n2, (3,))

"""Plain-JAX models in the corpus: the transformations and ``jnp`` idioms real models are written
with — ``jax.custom_vjp`` (a hand-written backward rule between layers, and one holding a
parameter), ``jax.custom_jvp``, ``jax.checkpoint`` with policies, ``jax.named_call`` /
``jax.named_scope``, and ``/ np.sqrt(d)``, ``jnp.where``, ``jnp.take_along_axis``, ``jnp.einsum``
with ellipses."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

from ntkc.testing.corpus import register
from ntkc.testing.corpus._common import N1, N2, float_dtype, id_pair, normal, pair


def _params(dtype: Any, **shapes: tuple[int, ...]) -> dict[str, jax.Array]:
    """Parameters of the given shapes: weights normal / √(fan-in), vectors 0.3·normal."""
    out = {}
    for i, (name, shape) in enumerate(shapes.items()):
        scale = 1 / np.sqrt(np.prod(shape[:-1])) if len(shape) >= 2 else 0.3
        out[name] = normal(i, *shape, dtype=dtype, scale=scale)
    return out


# ----------------------------------------------------------------------------- custom_vjp


@jax.custom_vjp
def softmax(z):
    """``softmax(z)`` over the last axis with a hand-written backward rule (as fused attention
    kernels have): ``ḡ = y ⊙ (g - Σ g ⊙ y)``."""
    return jax.nn.softmax(z, axis=-1)


def _softmax_fwd(z):
    y = jax.nn.softmax(z, axis=-1)
    return y, y


def _softmax_bwd(y, g):
    return (y * (g - (g * y).sum(-1, keepdims=True)),)


softmax.defvjp(_softmax_fwd, _softmax_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def scale_gradient(x, factor):
    """The identity forward; the cotangent multiplied by ``factor`` backward."""
    return x


scale_gradient.defvjp(lambda x, factor: (x, None), lambda factor, _, g: (g * factor,))


def attention_custom_vjp(p, x):
    """Single-head self-attention whose softmax has a custom VJP, a gradient-scaled residual."""
    q, k, v = x @ p["wq"], x @ p["wk"], x @ p["wv"]
    a = softmax(jnp.einsum("...qd,...kd->...qk", q, k) / np.sqrt(q.shape[-1]))
    h = scale_gradient(x + a @ v, 0.5)
    return h @ p["wo"]


@register("jax", "custom_vjp", name="custom_vjp_attention", kind="custom_vjp", method_fallbacks=("ntvp",),
          note="softmax with a hand-written VJP, gradient scaling (no parameter inside a rule); ntvp "
               "falls back: forward mode cannot run a custom VJP")
def _custom_vjp_attention(dtype=None):
    dtype = float_dtype(dtype)
    p = _params(dtype, wq=(3, 2), wk=(3, 2), wv=(3, 3), wo=(3, 2))
    return (attention_custom_vjp, p, *pair((3, 3), dtype))


@jax.custom_vjp
def fused_rms_norm(x, scale):
    """``x / rms(x) * scale`` with a hand-written backward rule, the scale read inside it."""
    return x * jax.lax.rsqrt((x * x).mean(-1, keepdims=True) + 1e-6) * scale


def _rms_fwd(x, scale):
    r = jax.lax.rsqrt((x * x).mean(-1, keepdims=True) + 1e-6)
    return x * r * scale, (x, r, scale)


def _rms_bwd(res, g):
    x, r, scale = res
    n = x * r
    gn = g * scale
    gx = r * (gn - n * (gn * n).mean(-1, keepdims=True))
    return gx, (g * n).reshape(-1, n.shape[-1]).sum(0)


fused_rms_norm.defvjp(_rms_fwd, _rms_bwd)


def fused_norm_mlp(p, x):
    return jnp.tanh(fused_rms_norm(x @ p["w1"], p["scale"])) @ p["w2"]


@register("jax", "custom_vjp", name="custom_vjp_fused_norm", kind="custom_vjp_parameter", fallbacks=("custom_lin",),
          method_fallbacks=("ntvp",),
          note="an RMS norm with a hand-written VJP reading its scale parameter: that use is a dense "
               "block (its structure is the user's backward rule); ntvp falls back")
def _custom_vjp_fused_norm(dtype=None):
    dtype = float_dtype(dtype)
    return (fused_norm_mlp, _params(dtype, w1=(3, 4), scale=(4,), w2=(4, 2)), *pair((3,), dtype))

# ----------------------------------------------------------------------------- custom_jvp


@jax.custom_jvp
def safe_norm(x):
    """``‖x‖`` over the last axis with the derivative 0 at 0 (instead of NaN)."""
    return jnp.sqrt((x * x).sum(-1))


@safe_norm.defjvp
def _safe_norm_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = safe_norm(x)
    return y, (x * t).sum(-1) / jnp.where(y == 0, 1.0, y)


def custom_jvp_model(p, x):
    """A user custom_jvp (a safe norm) and JAX's own (relu, softmax, logsumexp)."""
    h = jax.nn.relu(x @ p["w1"] + p["b1"])
    z = h @ p["w2"]
    return jnp.concatenate([jax.nn.softmax(z, axis=-1), jax.nn.logsumexp(z, axis=-1, keepdims=True),
                            safe_norm(h)[..., None]], axis=-1)


@register("jax", "custom_jvp", kind="custom_jvp",
          note="a user custom_jvp (safe norm) and jax.nn.relu / softmax / logsumexp")
def _custom_jvp(dtype=None):
    dtype = float_dtype(dtype)
    return (custom_jvp_model, _params(dtype, w1=(3, 4), b1=(4,), w2=(4, 3)), *pair((3,), dtype))

# ----------------------------------------------------------------------------- checkpoint


def _block(p, h):
    return h + jnp.tanh(checkpoint_name(h @ p["w"], "pre") + p["b"]) @ p["v"]


def checkpoint_model(p, x):
    """Residual blocks under ``jax.checkpoint`` with three policies."""
    h = x @ p["inp"]
    h = jax.checkpoint(_block, policy=jax.checkpoint_policies.dots_saveable)(p["b1"], h)
    h = jax.checkpoint(_block, policy=jax.checkpoint_policies.save_only_these_names("pre"))(p["b2"], h)
    h = jax.checkpoint(_block, policy=jax.checkpoint_policies.nothing_saveable, prevent_cse=False)(p["b3"], h)
    return h @ p["head"]


@register("jax", "checkpoint", kind="checkpoint",
          note="jax.checkpoint with dots_saveable, save_only_these_names, nothing_saveable")
def _checkpoint(dtype=None):
    dtype = float_dtype(dtype)
    p = _params(dtype, inp=(2, 3), head=(3, 2))
    for i in (1, 2, 3):
        p[f"b{i}"] = _params(dtype, w=(3, 3), b=(3,), v=(3, 3))
    return (checkpoint_model, p, *pair((2,), dtype))

# ----------------------------------------------------------------------------- names


@partial(jax.named_call, name="dense_layer")
def _named_dense(w, b, h):
    return h @ w + b


def named_model(p, x):
    """Layers wrapped in ``jax.named_call`` and ``jax.named_scope``."""
    with jax.named_scope("encoder"):
        h = jnp.tanh(_named_dense(p["w1"], p["b1"], x))
        with jax.named_scope("inner"):
            h = jax.nn.gelu(_named_dense(p["w2"], p["b2"], h))
    return jax.named_call(lambda h: h @ p["head"], name="head")(h)


@register("jax", "named_call", name="named_call_scope", kind="named_call",
          note="jax.named_call and nested jax.named_scope")
def _named(dtype=None):
    dtype = float_dtype(dtype)
    return (named_model, _params(dtype, w1=(3, 4), b1=(4,), w2=(4, 4), b2=(4,), head=(4, 2)), *pair((3,), dtype))

# ----------------------------------------------------------------------------- jnp idioms


def attention_idioms(p, x):
    """Multi-head attention written with ``jnp``: ``einsum`` with ellipses, ``/ np.sqrt(d)``,
    masking by ``jnp.where``, the causal mask from ``jnp.tril``."""
    q = jnp.einsum("...td,dhk->...thk", x, p["wq"])
    k = jnp.einsum("...td,dhk->...thk", x, p["wk"])
    v = jnp.einsum("...td,dhk->...thk", x, p["wv"])
    s = jnp.einsum("...qhd,...khd->...hqk", q, k) / np.sqrt(q.shape[-1])
    t = x.shape[-2]
    s = jnp.where(jnp.tril(jnp.ones((t, t), bool)), s, -1e9)
    a = jax.nn.softmax(s, axis=-1)
    o = jnp.einsum("...hqk,...khd->...qhd", a, v)
    return jnp.einsum("...qhd,hdo->...qo", o, p["wo"])


@register("jax", "attention_idioms", kind="jnp_attention",
          note="einsum with ellipses, / np.sqrt(d), jnp.where causal mask")
def _attention_idioms(dtype=None):
    dtype = float_dtype(dtype)
    p = _params(dtype, wq=(2, 2, 2), wk=(2, 2, 2), wv=(2, 2, 2), wo=(2, 2, 2))
    return (attention_idioms, p, *pair((3, 2), dtype))


def take_along_model(p, x):
    """Per-token logits, then each token's logit of its own label (``jnp.take_along_axis``),
    with padding tokens (label < 0) zeroed by ``jnp.where``."""
    emb = p["embed"][jnp.maximum(x["ids"], 0)]
    logits = jnp.tanh(emb @ p["w"]) @ p["out"]
    labels = jnp.maximum(x["labels"], 0)
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return jnp.where(x["labels"] >= 0, picked, 0.0)


@register("jax", "take_along_axis", kind="take_along_axis",
          note="jnp.take_along_axis on labels, jnp.where padding, an index lookup")
def _take_along(dtype=None):
    dtype = float_dtype(dtype)
    p = _params(dtype, embed=(5, 3), w=(3, 3), out=(3, 4))
    (i1, i2), (l1, l2) = id_pair((4,), 5), id_pair((4,), 4, seed=1, low=-1)
    return take_along_model, p, {"ids": i1, "labels": l1}, {"ids": i2, "labels": l2}


def jnp_misc(p, x):
    """More ``jnp`` a model is written with: ``pad``, ``roll``, ``repeat``, ``cumsum``,
    ``.at[].add``, ``linalg.norm``, ``max``, ``one_hot``, ``jax.vmap`` inside the model."""
    h = jnp.pad(x, ((0, 0), (1, 1)), mode="edge") @ p["w"]                      # (N, 4)
    h = h + jnp.roll(h, 1, axis=-1) * p["s"] + jnp.cumsum(h, axis=-1)
    h = h.at[..., 0].add(jnp.linalg.norm(h, axis=-1))
    h = jnp.repeat(h, 2, axis=-1)[..., ::3] + jnp.max(h, axis=-1, keepdims=True)
    per_feature = jax.vmap(lambda col, w: jnp.sin(col * w), in_axes=(-1, 0), out_axes=-1)(h, p["u"])
    return per_feature @ p["head"] + jax.nn.one_hot(jnp.argmax(x, -1), 2) @ p["bias_table"]


@register("jax", "jnp_misc", note="pad, roll, repeat, cumsum, .at[].add, linalg.norm, max, one_hot, vmap")
def _jnp_misc(dtype=None):
    dtype = float_dtype(dtype)
    p = _params(dtype, w=(5, 4), s=(4,), u=(3,), head=(3, 2), bias_table=(2, 2))
    return (jnp_misc, p, *pair((3,), dtype))


__all__ = ["softmax", "scale_gradient", "fused_rms_norm", "safe_norm", "N1", "N2"]

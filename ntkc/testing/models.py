"""Forward functions of the model zoo in :mod:`ntkc.testing`.

Each public function has the signature ``f(params, x, **kwargs)``; the batch
lives on axis 0 of ``x`` and of every output leaf. Parameter layouts are
documented per function and created by the matching ``make`` in
:mod:`ntkc.testing`. Only public JAX API is used.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax


# ----------------------------------------------------------------------------
# Layer helpers.


def dense(layer, h):
    """``h @ layer["w"] (+ layer["b"])``; the bias is optional."""
    out = h @ layer["w"]
    return out + layer["b"] if "b" in layer else out


def conv_nhwc(x, kernel, padding="SAME", strides=(1, 1), **extra):
    """2D convolution with NHWC inputs and HWIO kernels (extra args forwarded)."""
    return lax.conv_general_dilated(
        x, kernel, window_strides=strides, padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), **extra,
    )


def flatten(h):
    """Flatten all non-batch axes: ``(n, ...) -> (n, prod(...))``."""
    return h.reshape(h.shape[0], -1)


# ----------------------------------------------------------------------------
# Dense models.


def mlp(params, x):
    """tanh MLP: ``params = {"hidden": [layer, ...], "head": layer}``."""
    h = x
    for layer in params["hidden"]:
        h = jnp.tanh(dense(layer, h))
    return dense(params["head"], h)


def deep_mlp(params, x):
    """gelu MLP with the same parameter layout as :func:`mlp`."""
    h = x
    for layer in params["hidden"]:
        h = jax.nn.gelu(dense(layer, h))
    return dense(params["head"], h)


# ----------------------------------------------------------------------------
# Convolutional models.


def conv_same_nhwc(params, x):
    """SAME conv (``params["conv"]``, HWIO), tanh, flatten, dense head."""
    h = jnp.tanh(conv_nhwc(x, params["conv"], padding="SAME"))
    return dense(params["head"], flatten(h))


def conv_valid_strided_dilated(params, x):
    """VALID conv with strides (2, 2) and rhs_dilation (2, 1), tanh, dense head."""
    h = conv_nhwc(x, params["conv"], padding="VALID", strides=(2, 2), rhs_dilation=(2, 1))
    return dense(params["head"], flatten(jnp.tanh(h)))


def conv_nchw(params, x):
    """NCHW/OIHW conv with asymmetric explicit padding, tanh, dense head."""
    h = lax.conv_general_dilated(
        x, params["conv"], window_strides=(1, 1), padding=((1, 0), (0, 1)),
        dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return dense(params["head"], flatten(jnp.tanh(h)))


def avg_pool_cnn(params, x):
    """SAME conv, tanh, 2x2/stride-2 average pool via ``reduce_window``, dense head."""
    h = jnp.tanh(conv_nhwc(x, params["conv"], padding="SAME"))
    window = (1, 2, 2, 1)
    # The init value must be a concrete Python scalar: a traced jnp.zeros under
    # jit selects the generic reduce_window primitive, which has no JVP rule.
    summed = lax.reduce_window(h, 0.0, lax.add, window, window, "VALID")
    return dense(params["head"], flatten(summed / 4.0))


def global_pool_cnn(params, x):
    """SAME conv plus ``(C,)`` bias, tanh, mean over H and W, dense head."""
    h = jnp.tanh(conv_nhwc(x, params["conv"], padding="SAME") + params["conv_b"])
    return dense(params["head"], jnp.mean(h, axis=(1, 2)))


def conv_grouped(params, x):
    """Grouped SAME conv with ``feature_group_count=2``, tanh, dense head."""
    h = jnp.tanh(conv_nhwc(x, params["conv"], padding="SAME", feature_group_count=2))
    return dense(params["head"], flatten(h))


def conv_lhs_dilated(params, x):
    """Transposed-style conv (``lhs_dilation=(2, 2)``, padding 1), tanh, dense head."""
    h = conv_nhwc(x, params["conv"], padding=((1, 1), (1, 1)), lhs_dilation=(2, 2))
    return dense(params["head"], flatten(jnp.tanh(h)))


def conv_image_out(params, x):
    """SAME conv, tanh, VALID conv; returns an image ``(n, H', W', C')``."""
    h = jnp.tanh(conv_nhwc(x, params["conv1"], padding="SAME"))
    return conv_nhwc(h, params["conv2"], padding="VALID")


def conv1d_nwc(params, x):
    """1D NWC/WIO SAME conv, tanh, flatten, strided slice ``[:, ::3]``, matmul head."""
    h = lax.conv_general_dilated(x, params["conv"], window_strides=(1,), padding="SAME",
                                 dimension_numbers=("NWC", "WIO", "NWC"))
    return flatten(jnp.tanh(h))[:, ::3] @ params["head"]


def broadcast_bias(params, x):
    """Conv plus a ``(1, 1, 1, C)`` bias, tanh, flatten, dense with a ``(1, O)`` bias."""
    h = jnp.tanh(conv_nhwc(x, params["conv"]) + params["conv_b"])
    return flatten(h) @ params["head_w"] + params["head_b"]


# ----------------------------------------------------------------------------
# Normalisation, residual, attention, weight sharing.


def layer_norm_mlp(params, x):
    """Dense, layer norm with learned ``ln_scale``/``ln_bias``, tanh, dense."""
    h = dense(params["in"], x)
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean((h - mean) ** 2, axis=-1, keepdims=True)
    h = (h - mean) * lax.rsqrt(var + 1e-5) * params["ln_scale"] + params["ln_bias"]
    return dense(params["out"], jnp.tanh(h))


def residual_block(params, x):
    """``h = in(x); h = h + w2(tanh(w1(h))); head(h)``."""
    h = dense(params["in"], x)
    h = h + dense(params["w2"], jnp.tanh(dense(params["w1"], h)))
    return dense(params["head"], h)


def attention(params, x):
    """Single-head self-attention on ``x: (n, T, d)``; returns ``(n, T, d_out)``."""
    q = x @ params["wq"]
    k = x @ params["wk"]
    v = x @ params["wv"]
    logits = jnp.einsum("ntd,nsd->nts", q, k) / math.sqrt(q.shape[-1])
    weights = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("nts,nsd->ntd", weights, v) @ params["wo"]


def weight_sharing(params, x):
    """Input layer, then ``h = tanh(h @ shared)`` three times, dense head."""
    h = dense(params["in"], x)
    for _step in range(3):
        h = jnp.tanh(h @ params["shared"])
    return dense(params["head"], h)


# ----------------------------------------------------------------------------
# Structural ops and pytrees.


def reshape_transpose_concat_slice(params, x):
    """Exercises reshape/transpose/concat/slicing; ``w_t`` is transposed and
    ``v_flat`` reshaped before use. ``x: (n, 6)`` -> ``(n, 3)``."""
    n = x.shape[0]
    h = jnp.tanh(x @ params["w_t"].T)                                   # (n, 8)
    h = h.reshape(n, 2, 4).transpose(0, 2, 1)                           # (n, 4, 2)
    h = jnp.concatenate([h, h[:, ::-1, :1] * x[:, :4, None]], axis=2)   # (n, 4, 3)
    h = h[:, 1:, :].reshape(n, 9)                                       # (n, 9)
    return h @ params["v_flat"].reshape(9, 3)


def pytree_out(params, x):
    """Returns ``{"logits": (n, 3), "aux": (n, 2, 2)}`` from a shared trunk."""
    h = jnp.tanh(dense(params["trunk"], x))
    aux = (h @ params["aux"]).reshape(x.shape[0], 2, 2)
    return {"logits": dense(params["logits"], h), "aux": aux}


def pytree_params_unused(params, x):
    """Nested dict/list params; ``params["body"]["unused"]`` is never read."""
    h = x
    for layer in params["body"]["layers"]:
        h = jnp.tanh(dense(layer, h))
    return h @ params["head"][0]["w"] * params["head"][1]["gain"]


def scalar_output(params, x):
    """One hidden layer and a vector readout: output shape ``(n,)``."""
    h = jnp.tanh(dense(params["hidden"], x))
    return h @ params["w_out"] + params["b_out"]


def embedding(params, x):
    """Gather ``params["emb"][x]`` for int ids ``x: (n, T)``; concat the tanh of
    the mean over T with the flattened embeddings; dense head."""
    e = params["emb"][x]                                                # (n, T, d)
    pooled = jnp.tanh(jnp.mean(e, axis=1))
    return dense(params["head"], jnp.concatenate([pooled, flatten(e)], axis=1))


def kwargs_model(params, x, *, scale):
    """MLP whose pre-activation is multiplied by the keyword argument ``scale``."""
    h = jnp.tanh(scale * dense(params["hidden"], x))
    return dense(params["head"], h)


def pytree_input(params, x):
    """Input is a dict ``{"a": (n, 3), "b": (n, 2)}``; dense head."""
    h = jnp.tanh(x["a"] @ params["wa"] + x["b"] @ params["wb"] + params["b"])
    return dense(params["head"], h)


def batch_coupled(params, x):
    """Subtracts the batch mean of the hidden layer: NOT batch independent."""
    h = dense(params["hidden"], x)
    h = jnp.tanh(h - jnp.mean(h, axis=0, keepdims=True) + params["shift"])
    return dense(params["head"], h)


# ----------------------------------------------------------------------------
# Parameters transformed before use.


def ntk_param_mlp(params, x):
    """NTK parameterization: ``x @ (W · σ/√fan_in)ᵀ`` with weights stored as (out, in) and a
    scaled bias; the parameters pass through cheap ops (scale, transpose) before their matmul."""
    h = x
    for layer in params["layers"]:
        w = layer["w"]
        scaled = w * (1.5 / math.sqrt(w.shape[1]))
        h = jnp.tanh(h @ scaled.T + 0.1 * layer["b"])
    return h @ params["head"]


def vit_tokens(params, x):
    """ViT-style tokens: patches (2×2 of a 4×4 image) embedded by a dense layer, a learned
    class token concatenated in front, learned position embeddings added, a token-mixing
    layer, and the class token's features read out with a padded-and-sliced head."""
    n = x.shape[0]
    patches = x.reshape(n, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(n, 4, 4)
    tokens = patches @ params["embed"]                                    # (n, 4, d)
    cls = jnp.broadcast_to(params["cls"], (n, 1, tokens.shape[-1]))
    h = jnp.concatenate([cls, tokens], axis=1) + params["pos"]           # (n, 5, d)
    h = jnp.tanh(jnp.einsum("ntd,ts->nsd", h, params["mix"]))
    head = jnp.pad(params["head"], ((0, 1), (0, 0)))[:-1]                 # pad then slice back
    return jnp.where(h[:, 0] > 0, h[:, 0], 0.5 * h[:, 0]) @ head

"""The zoo's dense, convolutional, normalisation, attention, structural and pytree models."""

from __future__ import annotations

import jax.numpy as jnp

from ntkc.testing import models as zm
from ntkc.testing.zoo import Rng, ZooInstance, instance, mlp_params, register


# ----------------------------------------------------------------------------
# Dense models.


@register("mlp", "tanh MLP 4-8-8-3 with biases.", tags=("dense",))
def _make_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    params = mlp_params(Rng(key, dtype), (4, 8, 8, 3))
    return instance(zm.mlp, params, key, dtype, n1, n2, (4,))


@register("mlp_nobias", "tanh MLP 4-8-8-3 without biases.", tags=("dense",))
def _make_mlp_nobias(key, dtype=jnp.float32, n1=3, n2=2):
    params = mlp_params(Rng(key, dtype), (4, 8, 8, 3), bias=False)
    return instance(zm.mlp, params, key, dtype, n1, n2, (4,))


@register("deep_mlp", "Narrow gelu MLP: 10 dense layers of width 5, output 2.",
           tags=("dense", "deep"))
def _make_deep_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    params = mlp_params(Rng(key, dtype), (3,) + (5,) * 9 + (2,))
    return instance(zm.deep_mlp, params, key, dtype, n1, n2, (3,))


# ----------------------------------------------------------------------------
# Convolutional models.


@register("conv_same_nhwc", "NHWC 3x3 SAME conv (2->3 ch) on 5x5, flatten, dense->3.",
           tags=("conv",))
def _make_conv_same_nhwc(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 2, 3, fan_in=18), "head": rng.dense(5 * 5 * 3, 3)}
    return instance(zm.conv_same_nhwc, params, key, dtype, n1, n2, (5, 5, 2))


@register("conv_valid_strided_dilated",
           "NHWC VALID conv, strides (2,2), rhs_dilation (2,1) on 8x8x2, dense->3.",
           tags=("conv",))
def _make_conv_valid_strided_dilated(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    # Effective kernel 5x3 -> output spatial ((8-5)//2+1, (8-3)//2+1) = (2, 3).
    params = {"conv": rng.conv(3, 3, 2, 3, fan_in=18), "head": rng.dense(2 * 3 * 3, 3)}
    return instance(zm.conv_valid_strided_dilated, params, key, dtype, n1, n2, (8, 8, 2))


@register("conv_nchw", "NCHW/OIHW 3x3 conv, asymmetric explicit padding, dense->3.",
           tags=("conv",))
def _make_conv_nchw(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    # Input (2, 5, 5); padded (6, 6); output (3, 4, 4).
    params = {"conv": rng.conv(3, 2, 3, 3, fan_in=18), "head": rng.dense(3 * 4 * 4, 3)}
    return instance(zm.conv_nchw, params, key, dtype, n1, n2, (2, 5, 5))


@register("avg_pool_cnn", "Conv, 2x2 average pool (reduce_window add / 4), dense->3.",
           tags=("conv", "pool"))
def _make_avg_pool_cnn(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 2, 3, fan_in=18), "head": rng.dense(3 * 3 * 3, 3)}
    return instance(zm.avg_pool_cnn, params, key, dtype, n1, n2, (6, 6, 2))


@register("global_pool_cnn", "Conv with bias, global spatial mean, dense->3.",
           tags=("conv", "pool"))
def _make_global_pool_cnn(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 3, 4, fan_in=27), "conv_b": rng.bias(4),
              "head": rng.dense(4, 3)}
    return instance(zm.global_pool_cnn, params, key, dtype, n1, n2, (6, 6, 3))


@register("conv_grouped", "Grouped conv (feature_group_count=2, 4->4 ch) on 4x4, dense->3.",
           tags=("conv",))
def _make_conv_grouped(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 2, 4, fan_in=18), "head": rng.dense(4 * 4 * 4, 3)}
    return instance(zm.conv_grouped, params, key, dtype, n1, n2, (4, 4, 4))


@register("conv_lhs_dilated", "Transposed-style conv (lhs_dilation (2,2)) 3x3 -> 5x5, dense->3.",
           tags=("conv",))
def _make_conv_lhs_dilated(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    # Dilated input 5x5, padded 7x7, 3x3 kernel -> 5x5 output with 2 channels.
    params = {"conv": rng.conv(3, 3, 2, 2, fan_in=18), "head": rng.dense(5 * 5 * 2, 3)}
    return instance(zm.conv_lhs_dilated, params, key, dtype, n1, n2, (3, 3, 2))


@register("conv_image_out", "Two NHWC convs, no flatten: output (n, 2, 2, 2).",
           tags=("conv", "image_out"))
def _make_conv_image_out(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"conv1": rng.conv(3, 3, 2, 3, fan_in=18), "conv2": rng.conv(3, 3, 3, 2, fan_in=27)}
    return instance(zm.conv_image_out, params, key, dtype, n1, n2, (4, 4, 2))


@register("conv1d_nwc", "1D NWC conv on length 6, strided slice of features, matmul->2.",
           tags=("conv",))
def _make_conv1d_nwc(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"conv": rng.conv(3, 2, 3, fan_in=6), "head": rng.weight(6, 2, fan_in=6)}
    return instance(zm.conv1d_nwc, params, key, dtype, n1, n2, (6, 2))


@register("broadcast_bias", "Conv with (1,1,1,C) bias and dense with (1,3) bias.",
           tags=("conv", "broadcast"))
def _make_broadcast_bias(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 2, 3, fan_in=18), "conv_b": rng.bias(1, 1, 1, 3),
              "head_w": rng.weight(4 * 4 * 3, 3, fan_in=48), "head_b": rng.bias(1, 3)}
    return instance(zm.broadcast_bias, params, key, dtype, n1, n2, (4, 4, 2))


# ----------------------------------------------------------------------------
# Normalisation, residual, attention, weight sharing.


@register("layer_norm_mlp", "Dense 4->8, layer norm with learned scale/bias, dense->3.",
           tags=("dense", "norm"))
def _make_layer_norm_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"in": rng.dense(4, 8), "ln_scale": rng.normal(8, scale=0.1, offset=1.0),
              "ln_bias": rng.bias(8), "out": rng.dense(8, 3)}
    return instance(zm.layer_norm_mlp, params, key, dtype, n1, n2, (4,))


@register("residual_block", "Dense 4->6, residual h + W2 tanh(W1 h + b1), dense->3.",
           tags=("dense", "residual"))
def _make_residual_block(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"in": rng.dense(4, 6), "w1": rng.dense(6, 6), "w2": rng.dense(6, 6, bias=False),
              "head": rng.dense(6, 3)}
    return instance(zm.residual_block, params, key, dtype, n1, n2, (4,))


@register("attention", "Single-head self-attention, T=4, d=4; output (n, 4, 2).",
           tags=("attention", "multi_axis_out"))
def _make_attention(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {name: rng.weight(4, 4, fan_in=4) for name in ("wq", "wk", "wv")}
    params["wo"] = rng.weight(4, 2, fan_in=4)
    return instance(zm.attention, params, key, dtype, n1, n2, (4, 4))


@register("weight_sharing", "One square 6x6 matrix applied three times, dense->3.",
           tags=("dense", "shared"))
def _make_weight_sharing(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"in": rng.dense(4, 6), "shared": rng.weight(6, 6, fan_in=6), "head": rng.dense(6, 3)}
    return instance(zm.weight_sharing, params, key, dtype, n1, n2, (4,))


# ----------------------------------------------------------------------------
# Structural ops and pytrees.


@register("reshape_transpose_concat_slice",
           "Reshape/transpose/concat/slice of activations; transposed and reshaped params.",
           tags=("structural",))
def _make_reshape_transpose_concat_slice(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"w_t": rng.weight(8, 6, fan_in=6), "v_flat": rng.weight(27, fan_in=9)}
    return instance(zm.reshape_transpose_concat_slice, params, key, dtype, n1, n2, (6,))


@register("pytree_out", "Dict output {'logits': (n, 3), 'aux': (n, 2, 2)}.",
           tags=("pytree_out",))
def _make_pytree_out(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"trunk": rng.dense(4, 6), "logits": rng.dense(6, 3),
              "aux": rng.weight(6, 4, fan_in=6)}
    return instance(zm.pytree_out, params, key, dtype, n1, n2, (4,))


@register("pytree_params_unused",
           "Nested dict/list params incl. a leaf f never uses (zero NTK contribution).",
           tags=("pytree_params",))
def _make_pytree_params_unused(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {
        "body": {"layers": [rng.dense(4, 5), rng.dense(5, 5, bias=False)],
                 "unused": rng.weight(3, 2, fan_in=3)},
        "head": [{"w": rng.weight(5, 3, fan_in=5)},
                 {"gain": rng.normal(3, scale=0.1, offset=1.0)}],
    }
    return instance(zm.pytree_params_unused, params, key, dtype, n1, n2, (4,))


@register("scalar_output", "MLP with a per-example scalar output: shape (n,).",
           tags=("dense", "scalar_out"))
def _make_scalar_output(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"hidden": rng.dense(4, 8), "w_out": rng.weight(8, fan_in=8), "b_out": rng.bias()}
    return instance(zm.scalar_output, params, key, dtype, n1, n2, (4,))


_VOCAB = 7
_SEQ = 5
_EMB_DIM = 4


@register("embedding", "Embedding table (7, 4) gathered by int32 ids (n, 5), dense->3.",
           tags=("gather", "int_input"))
def _make_embedding(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"emb": rng.normal(_VOCAB, _EMB_DIM), "head": rng.dense(_EMB_DIM * (1 + _SEQ), 3)}
    return ZooInstance(f=zm.embedding, params=params,
                       x1=Rng(key, dtype, 1).ints(n1, _SEQ, high=_VOCAB),
                       x2=Rng(key, dtype, 2).ints(n2, _SEQ, high=_VOCAB))


@register("kwargs_model", "MLP f(params, x, *, scale) with kwargs {'scale': 0.5}.",
           tags=("kwargs",))
def _make_kwargs_model(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"hidden": rng.dense(4, 6), "head": rng.dense(6, 3)}
    return instance(zm.kwargs_model, params, key, dtype, n1, n2, (4,), kwargs={"scale": 0.5})


@register("pytree_input", "Dict input {'a': (n, 3), 'b': (n, 2)}, dense->3.",
           tags=("pytree_in",))
def _make_pytree_input(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"wa": rng.weight(3, 6, fan_in=5), "wb": rng.weight(2, 6, fan_in=5),
              "b": rng.bias(6), "head": rng.dense(6, 3)}
    return instance(zm.pytree_input, params, key, dtype, n1, n2, {"a": (3,), "b": (2,)})


@register("batch_coupled", "MLP subtracting the batch mean of its hidden layer.",
           batch_independent=False, tags=("batch_coupled",))
def _make_batch_coupled(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"hidden": rng.dense(4, 6), "shift": rng.bias(6), "head": rng.dense(6, 3)}
    return instance(zm.batch_coupled, params, key, dtype, n1, n2, (4,))


# ----------------------------------------------------------------------------
# Parameters transformed before use.


@register("ntk_param_mlp", "NTK-parameterized tanh MLP 3-6-6 ((out, in) weights scaled and "
           "transposed; scaled biases), head ->2.", tags=("dense", "propagation"))
def _make_ntk_param_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    layers = [{"w": rng.normal(6, m), "b": rng.bias(6)} for m in (3, 6)]
    params = {"layers": layers, "head": rng.weight(6, 2, fan_in=6)}
    return instance(zm.ntk_param_mlp, params, key, dtype, n1, n2, (3,))


@register("vit_tokens", "ViT-style tokens: patch embedding, concatenated class token, position "
           "embeddings, token mixing, padded/sliced head, where-gated readout.",
           tags=("concatenate", "pad", "slice", "select_n", "propagation"))
def _make_vit_tokens(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    d = 3
    params = {"embed": rng.weight(4, d, fan_in=4), "cls": rng.normal(1, 1, d),
              "pos": rng.normal(5, d, scale=0.1), "mix": rng.weight(5, 5, fan_in=5),
              "head": rng.weight(d, 2, fan_in=d)}
    return instance(zm.vit_tokens, params, key, dtype, n1, n2, (4, 4))

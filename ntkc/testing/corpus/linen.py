"""Flax linen layers in the corpus: every linen layer holding parameters, through
:func:`ntkc.adapters.from_linen` (batch statistics and spectral-norm vectors stay constants)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ntkc.adapters import from_linen
from ntkc.testing.corpus import register
from ntkc.testing.corpus._common import fill, float_dtype, id_pair, key, pair


def _build(module: nn.Module, x1: Any, x2: Any, dtype: Any, **apply_kwargs: Any):
    """``(f, params, x1, x2)`` for ``module``: its variables' shapes from ``module.init``, their
    values from :func:`~ntkc.testing.corpus._common.fill` (batch statistics included)."""
    shapes = jax.eval_shape(lambda x: module.init(key(0), x, **apply_kwargs), x1)
    f, params = from_linen(module, fill(shapes, dtype), **apply_kwargs)
    return f, params, x1, x2


def _simple(layer: str, make: Any, shape: tuple[int, ...], **kw: Any) -> None:
    """Register ``make(dtype)`` applied to examples of ``shape``."""
    @register("linen", layer, **kw)
    def build(dtype=None):
        dtype = float_dtype(dtype)
        return _build(make(dtype), *pair(shape, dtype), dtype)


# ----------------------------------------------------------------------------- dense

_simple("dense", lambda d: nn.Dense(3), (4,), kind="dense")
_simple("dense_general", lambda d: nn.DenseGeneral((2, 2), axis=(-2, -1)), (2, 3))
_simple("einsum", lambda d: nn.Einsum((3, 2, 2), "...d,dnh->...nh"), (2, 3))

# ----------------------------------------------------------------------------- convolutions

_simple("conv1d", lambda d: nn.Conv(2, (3,), padding="SAME"), (5, 1), kind="conv1d")
_simple("conv2d", lambda d: nn.Conv(2, (2, 2), strides=2, padding="SAME"), (4, 3, 1), kind="conv2d")
_simple("conv2d_dilated_circular", lambda d: nn.Conv(1, (2, 2), kernel_dilation=(2, 1), padding="CIRCULAR"),
        (3, 3, 2))
_simple("conv3d", lambda d: nn.Conv(2, (2, 2, 2), padding="VALID"), (3, 2, 2, 1), kind="conv3d")
_simple("conv_transpose1d", lambda d: nn.ConvTranspose(2, (3,), strides=(2,)), (3, 1), kind="conv_transpose1d")
_simple("conv_transpose2d", lambda d: nn.ConvTranspose(1, (2, 2), strides=(2, 2)), (1, 2, 2), kind="conv_transpose2d")
_simple("conv_transpose3d", lambda d: nn.ConvTranspose(1, (2, 2, 2), padding="SAME"), (2, 2, 2, 1),
        kind="conv_transpose3d")
_simple("grouped_conv1d", lambda d: nn.Conv(4, (3,), feature_group_count=2, padding="VALID"), (4, 2),
        kind="grouped_conv")
_simple("depthwise_conv2d", lambda d: nn.Conv(4, (2, 2), feature_group_count=2, padding="VALID"), (3, 2, 2),
        kind="depthwise_conv")
_simple("conv_local1d", lambda d: nn.ConvLocal(2, (2,), padding="VALID"), (4, 1))

# ----------------------------------------------------------------------------- normalisation


class ConvBatchNorm(nn.Module):
    """Conv, then BatchNorm with running averages (inference mode: statistics are constants)."""

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(2, (2,), padding="VALID")(x)
        return nn.BatchNorm(use_running_average=not train, momentum=0.5)(x)


@register("linen", "batch_norm", kind="batch_norm",
          note="Conv, then BatchNorm(use_running_average=True): statistics are constants")
def _batch_norm(dtype=None):
    dtype = float_dtype(dtype)
    x1, x2 = pair((4, 1), dtype)
    return _build(ConvBatchNorm(), x1, x2, dtype, train=False)


_simple("layer_norm", lambda d: nn.LayerNorm(), (2, 3), kind="layer_norm")
_simple("layer_norm_2axes", lambda d: nn.LayerNorm(reduction_axes=(-2, -1), feature_axes=(-2, -1)), (2, 3))
_simple("group_norm", lambda d: nn.GroupNorm(num_groups=2), (3, 4), kind="group_norm")
_simple("rms_norm", lambda d: nn.RMSNorm(), (5,), kind="rms_norm")
_simple("instance_norm", lambda d: nn.InstanceNorm(), (3, 2))

# ----------------------------------------------------------------------------- embeddings


@register("linen", "embed")
def _embed(dtype=None):
    return _build(nn.Embed(6, 2), *id_pair((3,), 6), float_dtype(dtype))


class TiedEmbed(nn.Module):
    """Embed, mean over tokens, tanh, then the same table as the output layer (``attend``)."""

    @nn.compact
    def __call__(self, ids):
        embed = nn.Embed(6, 3)
        return embed.attend(jnp.tanh(embed(ids).mean(-2)))


@register("linen", "embed_attend", kind="embedding", note="weights tied between the lookup and the output layer")
def _embed_attend(dtype=None):
    return _build(TiedEmbed(), *id_pair((3,), 6), float_dtype(dtype))

# ----------------------------------------------------------------------------- attention


class CausalSelfAttention(nn.Module):
    @nn.compact
    def __call__(self, x):
        mask = nn.make_causal_mask(jnp.ones(x.shape[:-1]))
        return nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4, out_features=2,
                                               deterministic=True, dropout_rate=0.1)(x, mask=mask)


@register("linen", "mha_causal", kind="attention",
          note="MultiHeadDotProductAttention, causal mask, dropout deterministic")
def _mha_causal(dtype=None):
    dtype = float_dtype(dtype)
    return _build(CausalSelfAttention(), *pair((3, 2), dtype), dtype)


class CrossAttention(nn.Module):
    """Queries attend to keys and values with a padding mask given with the input."""

    @nn.compact
    def __call__(self, x):
        mask = nn.make_attention_mask(jnp.ones(x["q"].shape[:-1]), x["valid"])
        return nn.MultiHeadAttention(num_heads=2, qkv_features=2, out_features=2)(x["q"], x["kv"], mask=mask)


@register("linen", "mha_cross_padding_mask", note="cross-attention, a padding mask from the input")
def _mha_cross(dtype=None):
    dtype = float_dtype(dtype)
    (q1, q2), (kv1, kv2) = pair((2, 3), dtype), pair((4, 3), dtype, seed=1)
    valid = lambda n: jnp.asarray([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]][:n], dtype)
    x1, x2 = {"q": q1, "kv": kv1, "valid": valid(3)}, {"q": q2, "kv": kv2, "valid": valid(2)}
    return _build(CrossAttention(), x1, x2, dtype)

# ----------------------------------------------------------------------------- recurrent cells


def _rnn(layer: str, cell: Any, shape=(3, 2), **kw: Any) -> None:
    _simple(layer, lambda d: nn.RNN(cell(d)), shape, note="run by nn.RNN (a lifted scan)", **kw)


_rnn("lstm", lambda d: nn.LSTMCell(3, param_dtype=d), kind="lstm")
_rnn("optimized_lstm", lambda d: nn.OptimizedLSTMCell(3, param_dtype=d))
_rnn("gru", lambda d: nn.GRUCell(3, param_dtype=d), kind="gru")
_rnn("simple_cell", lambda d: nn.SimpleCell(3, param_dtype=d))
_rnn("mgu_cell", lambda d: nn.MGUCell(3, param_dtype=d))
_rnn("conv_lstm", lambda d: nn.ConvLSTMCell(2, (2,), param_dtype=d), shape=(2, 3, 1))
_simple("bidirectional_gru",
        lambda d: nn.Bidirectional(nn.RNN(nn.GRUCell(2, param_dtype=d)), nn.RNN(nn.GRUCell(2, param_dtype=d))), (3, 2))


class LSTMWithLengths(nn.Module):
    """An LSTM over sequences of given lengths (nn.RNN masks the steps past the end)."""

    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        return nn.RNN(nn.LSTMCell(2, param_dtype=self.param_dtype))(x["x"], seq_lengths=x["length"])


@register("linen", "lstm_seq_lengths", note="nn.RNN with seq_lengths (masked steps)")
def _lstm_lengths(dtype=None):
    dtype = float_dtype(dtype)
    (a1, a2) = pair((4, 2), dtype)
    x1 = {"x": a1, "length": jnp.asarray([4, 2, 3], jnp.int32)}
    x2 = {"x": a2, "length": jnp.asarray([1, 4], jnp.int32)}
    return _build(LSTMWithLengths(dtype), x1, x2, dtype)

# ----------------------------------------------------------------------------- regularisers


class DropoutMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(nn.Dropout(0.5, deterministic=True)(jnp.tanh(nn.Dense(4)(x))))


_simple("dropout", lambda d: DropoutMLP(), (3,), note="Dropout(deterministic=True)", kind="dropout")
_simple("weight_norm", lambda d: nn.WeightNorm(nn.Dense(3)), (4,), kind="weight_norm")


class SpectralDense(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.SpectralNorm(nn.Dense(3), n_steps=2)(x, update_stats=False)


@register("linen", "spectral_norm", kind="spectral_norm",
          note="SpectralNorm(Dense), update_stats=False: u is a constant")
def _spectral(dtype=None):
    dtype = float_dtype(dtype)
    x1, x2 = pair((4,), dtype)
    return _build(SpectralDense(), x1, x2, dtype)


class PReLUMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(nn.PReLU()(nn.Dense(3)(x)))


_simple("prelu", lambda d: PReLUMLP(), (3,))

# ----------------------------------------------------------------------------- small models


class CNN(nn.Module):
    """Conv, BatchNorm (inference), relu, average pooling, conv, dense."""

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(3, (3, 3), padding="SAME")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.5)(x))
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = nn.Conv(2, (2, 2), padding="VALID")(x)
        return nn.Dense(3)(x.reshape(*x.shape[:-3], -1))


@register("linen", "cnn", kind="cnn", note="Conv-BatchNorm-relu-avg_pool-Conv-Dense")
def _cnn(dtype=None):
    dtype = float_dtype(dtype)
    x1, x2 = pair((4, 4, 1), dtype)
    return _build(CNN(), x1, x2, dtype, train=False)


class Block(nn.Module):
    """A pre-LayerNorm transformer block: self-attention with a padding mask, a GELU MLP."""

    @nn.compact
    def __call__(self, h, mask):
        h = h + nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4, out_features=4)(nn.LayerNorm()(h),
                                                                                           mask=mask)
        return h + nn.Dense(4)(nn.gelu(nn.Dense(6)(nn.LayerNorm()(h))))


class Transformer(nn.Module):
    """Token embedding, learned positions, a block, mean pooling over valid tokens, a head."""

    @nn.compact
    def __call__(self, ids):
        valid = ids > 0
        h = nn.Embed(5, 4)(ids) + self.param("pos", nn.initializers.normal(0.1), (ids.shape[-1], 4))
        h = Block()(h, nn.make_attention_mask(valid, valid))
        pooled = (h * valid[..., None]).sum(-2) / valid.sum(-1, keepdims=True)
        return nn.Dense(2)(pooled)


@register("linen", "transformer", note="embedding, positions, pre-LN block with padding mask, pooling")
def _transformer(dtype=None):
    x1, x2 = id_pair((4,), 5)
    x1, x2 = x1.at[:, 0].set(1), x2.at[:, 0].set(2)  # every sequence has a valid token
    return _build(Transformer(), x1, x2, float_dtype(dtype))


class ScannedMLP(nn.Module):
    """Three residual tanh layers run by nn.scan over stacked parameters, each under nn.remat."""

    @nn.compact
    def __call__(self, x):
        class Layer(nn.Module):
            @nn.compact
            def __call__(self, h, _):
                return h + jnp.tanh(nn.Dense(3)(h)), None

        stack = nn.scan(nn.remat(Layer), variable_axes={"params": 0}, split_rngs={"params": True}, length=3)
        h, _ = stack()(nn.Dense(3)(x), None)
        return nn.Dense(2)(h)


_simple("scan_remat_mlp", lambda d: ScannedMLP(), (2,), note="nn.scan over layers of nn.remat(Dense)")

"""Flax NNX layers in the corpus: every NNX layer holding parameters, in evaluation mode
(``model.eval()``: BatchNorm's running averages, Dropout off), through
:func:`ntkc.adapters.from_nnx`."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from ntkc.adapters import from_nnx
from ntkc.testing.corpus import register
from ntkc.testing.corpus._common import fill, float_dtype, id_pair, pair


def _build(make: Callable[[nnx.Rngs], nnx.Module], x1: Any, x2: Any, dtype: Any, eager: bool = False):
    """``(f, params, x1, x2)`` for the model ``make(rngs)``: its shapes from ``nnx.eval_shape``
    (or, ``eager``, from the model built), its values from
    :func:`~ntkc.testing.corpus._common.fill`, in evaluation mode."""
    model = make(nnx.Rngs(0)) if eager else nnx.eval_shape(lambda: make(nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    model = nnx.merge(graphdef, fill(jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), state)
                                     if eager else state, dtype))
    model.eval()
    f, params = from_nnx(model)
    return f, params, x1, x2


def _simple(layer: str, make: Callable, shape: tuple[int, ...], eager: bool = False, **kw: Any) -> None:
    """Register ``make(rngs, dtype)`` applied to examples of ``shape``."""
    @register("nnx", layer, **kw)
    def build(dtype=None):
        dtype = float_dtype(dtype)
        return _build(lambda rngs: make(rngs, dtype), *pair(shape, dtype), dtype, eager)


class Seq(nnx.Module):
    """Layers applied in turn, with ``act`` between them."""

    def __init__(self, *layers: Any, act: Callable = jnp.tanh):
        self.layers = nnx.List(layers)
        self.act = act

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(self.act(x) if i else x)
        return x


# ----------------------------------------------------------------------------- dense

_simple("linear", lambda r, d: nnx.Linear(4, 3, rngs=r), (4,), kind="dense")
_simple("linear_general", lambda r, d: nnx.LinearGeneral((2, 3), (2, 2), axis=(-2, -1), rngs=r), (2, 3))
_simple("einsum", lambda r, d: nnx.Einsum("...d,dnh->...nh", (3, 2, 2), (2, 2), rngs=r), (2, 3))
_simple("lora_linear", lambda r, d: nnx.LoRALinear(4, 3, lora_rank=2, rngs=r), (4,),
        note="a Linear plus a rank-2 LoRA update (both differentiated)")

# ----------------------------------------------------------------------------- convolutions

_simple("conv1d", lambda r, d: nnx.Conv(1, 2, (3,), rngs=r), (5, 1), kind="conv1d")
_simple("conv2d", lambda r, d: nnx.Conv(1, 2, (2, 2), strides=2, rngs=r), (4, 3, 1), kind="conv2d")
_simple("conv3d", lambda r, d: nnx.Conv(1, 2, (2, 2, 2), padding="VALID", rngs=r), (3, 2, 2, 1), kind="conv3d")
_simple("conv_transpose1d", lambda r, d: nnx.ConvTranspose(1, 2, (3,), strides=2, rngs=r), (3, 1),
        kind="conv_transpose1d")
_simple("conv_transpose2d", lambda r, d: nnx.ConvTranspose(2, 1, (2, 2), strides=2, rngs=r), (1, 2, 2),
        kind="conv_transpose2d")
_simple("conv_transpose3d", lambda r, d: nnx.ConvTranspose(1, 1, (2, 2, 2), rngs=r), (2, 2, 2, 1),
        kind="conv_transpose3d")
_simple("grouped_conv1d", lambda r, d: nnx.Conv(2, 4, (3,), feature_group_count=2, padding="VALID", rngs=r),
        (4, 2), kind="grouped_conv")
_simple("depthwise_conv2d", lambda r, d: nnx.Conv(2, 4, (2, 2), feature_group_count=2, padding="VALID", rngs=r),
        (3, 2, 2), kind="depthwise_conv")

# ----------------------------------------------------------------------------- normalisation

_simple("batch_norm", lambda r, d: Seq(nnx.Conv(1, 2, (2,), padding="VALID", rngs=r), nnx.BatchNorm(2, rngs=r),
                                       act=lambda x: x),
        (4, 1), note="Conv, then BatchNorm in eval mode: statistics are constants", kind="batch_norm")
_simple("layer_norm", lambda r, d: nnx.LayerNorm(3, rngs=r), (2, 3), kind="layer_norm")
_simple("group_norm", lambda r, d: nnx.GroupNorm(4, num_groups=2, rngs=r), (3, 4), kind="group_norm")
_simple("rms_norm", lambda r, d: nnx.RMSNorm(5, rngs=r), (5,), kind="rms_norm")
_simple("instance_norm", lambda r, d: nnx.InstanceNorm(2, rngs=r), (3, 2))

# ----------------------------------------------------------------------------- embeddings


class TiedEmbed(nnx.Module):
    """Embed, mean over tokens, tanh, then the same table as the output layer (``attend``)."""

    def __init__(self, rngs, dtype):
        self.embed = nnx.Embed(6, 3, param_dtype=dtype, rngs=rngs)

    def __call__(self, ids):
        return self.embed.attend(jnp.tanh(self.embed(ids).mean(-2)))


@register("nnx", "embed")
def _embed(dtype=None):
    dtype = float_dtype(dtype)
    return _build(lambda r: nnx.Embed(6, 2, param_dtype=dtype, rngs=r), *id_pair((3,), 6), dtype)


@register("nnx", "embed_attend", kind="embedding", note="weights tied between the lookup and the output layer")
def _embed_attend(dtype=None):
    dtype = float_dtype(dtype)
    return _build(lambda r: TiedEmbed(r, dtype), *id_pair((3,), 6), dtype)

# ----------------------------------------------------------------------------- attention


class MaskedAttention(nnx.Module):
    """Self-attention with a causal mask and a padding mask from the input, dropout off."""

    def __init__(self, rngs):
        self.mha = nnx.MultiHeadAttention(2, 2, qkv_features=4, out_features=2, dropout_rate=0.1,
                                          decode=False, rngs=rngs)

    def __call__(self, x):
        causal = nnx.make_causal_mask(x["valid"])
        mask = nnx.combine_masks(causal, nnx.make_attention_mask(x["valid"], x["valid"]))
        return self.mha(x["x"], mask=mask)


@register("nnx", "mha_masked", kind="attention",
          note="MultiHeadAttention, causal and padding masks, dropout off in eval mode")
def _mha(dtype=None):
    dtype = float_dtype(dtype)
    a1, a2 = pair((3, 2), dtype)
    valid = lambda n: jnp.asarray([[1, 1, 0], [1, 1, 1], [1, 0, 0]][:n], dtype)
    return _build(MaskedAttention, {"x": a1, "valid": valid(3)}, {"x": a2, "valid": valid(2)}, dtype)

# ----------------------------------------------------------------------------- recurrent cells


def _rnn(layer: str, cell: Callable, **kw: Any) -> None:
    _simple(layer, lambda r, d: nnx.RNN(cell(r, d), rngs=r), (3, 2), note="run by nnx.RNN (nnx.scan)", **kw)


_rnn("lstm", lambda r, d: nnx.LSTMCell(2, 3, param_dtype=d, rngs=r), kind="lstm")
_rnn("optimized_lstm", lambda r, d: nnx.OptimizedLSTMCell(2, 3, param_dtype=d, rngs=r))
_rnn("gru", lambda r, d: nnx.GRUCell(2, 3, param_dtype=d, rngs=r), kind="gru")
_rnn("simple_cell", lambda r, d: nnx.SimpleCell(2, 3, param_dtype=d, dtype=d, rngs=r))
_simple("bidirectional_gru", lambda r, d: nnx.Bidirectional(nnx.RNN(nnx.GRUCell(2, 2, param_dtype=d, rngs=r), rngs=r),
                                                            nnx.RNN(nnx.GRUCell(2, 2, param_dtype=d, rngs=r), rngs=r),
                                                            rngs=r), (3, 2))

# ----------------------------------------------------------------------------- regularisers

_simple("dropout", lambda r, d: Seq(nnx.Linear(3, 4, rngs=r), nnx.Dropout(0.5, rngs=r), nnx.Linear(4, 2, rngs=r)),
        (3,), note="Dropout in eval mode (deterministic)", kind="dropout")
_simple("weight_norm", lambda r, d: nnx.WeightNorm(nnx.Linear(4, 3, rngs=r), rngs=r), (4,), eager=True,
        note="built eagerly (its scales are plain arrays, not state): the scales are constants", kind="weight_norm")
_simple("spectral_norm", lambda r, d: nnx.SpectralNorm(nnx.Linear(4, 3, rngs=r), n_steps=2, update_stats=False, rngs=r),
        (4,), note="update_stats=False: the power-iteration vector is a constant", kind="spectral_norm")
_simple("prelu", lambda r, d: Seq(nnx.Linear(3, 3, rngs=r), nnx.PReLU(), nnx.Linear(3, 2, rngs=r), act=lambda x: x),
        (3,))

# ----------------------------------------------------------------------------- small models


class CNN(nnx.Module):
    """Conv, BatchNorm (eval), relu, average pooling, conv, dense."""

    def __init__(self, rngs):
        self.conv1 = nnx.Conv(1, 3, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(3, rngs=rngs)
        self.conv2 = nnx.Conv(3, 2, (2, 2), padding="VALID", rngs=rngs)
        self.head = nnx.Linear(2, 3, rngs=rngs)

    def __call__(self, x):
        x = nnx.avg_pool(nnx.relu(self.bn(self.conv1(x))), (2, 2), strides=(2, 2))
        x = self.conv2(x)
        return self.head(x.reshape(*x.shape[:-3], -1))


@register("nnx", "cnn", kind="cnn", note="Conv-BatchNorm-relu-avg_pool-Conv-Linear")
def _cnn(dtype=None):
    dtype = float_dtype(dtype)
    return _build(CNN, *pair((4, 4, 1), dtype), dtype)


class Transformer(nnx.Module):
    """Token embedding, learned positions, a pre-LayerNorm block (attention with a padding mask,
    GELU MLP), mean pooling over valid tokens, a head."""

    def __init__(self, rngs, dtype):
        self.embed = nnx.Embed(5, 4, param_dtype=dtype, rngs=rngs)
        self.pos = nnx.Param(jnp.zeros((4, 4)))
        self.ln1, self.ln2 = nnx.LayerNorm(4, rngs=rngs), nnx.LayerNorm(4, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(2, 4, qkv_features=4, decode=False, rngs=rngs)
        self.up, self.down = nnx.Linear(4, 6, rngs=rngs), nnx.Linear(6, 4, rngs=rngs)
        self.head = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, ids):
        valid = ids > 0
        h = self.embed(ids) + self.pos[...]
        h = h + self.attn(self.ln1(h), mask=nnx.make_attention_mask(valid, valid))
        h = h + self.down(nnx.gelu(self.up(self.ln2(h))))
        pooled = (h * valid[..., None]).sum(-2) / valid.sum(-1, keepdims=True)
        return self.head(pooled)


@register("nnx", "transformer", precision="float32",
          note="embedding, positions, pre-LN block with padding mask, pooling; without dropout NNX attention "
               "runs jax.nn.dot_product_attention, whose softmax is computed in float32")
def _transformer(dtype=None):
    dtype, (x1, x2) = float_dtype(dtype), id_pair((4,), 5)
    return _build(lambda r: Transformer(r, dtype), x1.at[:, 0].set(1), x2.at[:, 0].set(2), dtype)


class ScannedMLP(nnx.Module):
    """Three residual tanh layers created by nnx.vmap and run by nnx.scan, under nnx.remat."""

    def __init__(self, rngs):
        self.inp, self.head = nnx.Linear(2, 3, rngs=rngs), nnx.Linear(3, 2, rngs=rngs)

        @nnx.split_rngs(splits=3)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def layers(rngs):
            return nnx.Linear(3, 3, rngs=rngs)

        self.layers = layers(rngs)

    def __call__(self, x):
        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        @nnx.remat
        def step(h, layer):
            return h + jnp.tanh(layer(h))

        return self.head(step(self.inp(x), self.layers))


_simple("scan_remat_mlp", lambda r, d: ScannedMLP(r), (2,), note="nnx.vmap-made layers run by nnx.scan, nnx.remat")

"""Equinox layers in the corpus: every ``eqx.nn`` layer holding parameters, called per example
and batched by :func:`ntkc.adapters.from_equinox` (``jax.vmap``); stateful layers (BatchNorm,
SpectralNorm) in inference mode with their ``State`` as a constant; recurrent cells run by
``jax.lax.scan``."""

from __future__ import annotations

from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ntkc.adapters import from_equinox
from ntkc.testing.corpus import register
from ntkc.testing.corpus._common import fill, float_dtype, id_pair, key, pair


def _build(make: Callable[[jax.Array], Any], x1: Any, x2: Any, dtype: Any, stateful: bool = False):
    """``(f, params, x1, x2)`` for ``make(key)``: its shapes from ``eqx.filter_eval_shape``, its
    values from :func:`~ntkc.testing.corpus._common.fill` (a ``State``'s statistics positive),
    in inference mode."""
    if stateful:
        model, state = eqx.filter_eval_shape(lambda: eqx.nn.make_with_state(make)(key(0)))
        model, state = fill(model, dtype), fill(state, dtype, seed=1, positive=True)
    else:
        model, state = fill(eqx.filter_eval_shape(make, key(0)), dtype), None
    f, params = from_equinox(eqx.nn.inference_mode(model), state)
    return f, params, x1, x2


def _simple(layer: str, make: Callable, shape: tuple[int, ...], stateful: bool = False, **kw: Any) -> None:
    """Register ``make(key)`` applied to examples of ``shape``."""
    @register("equinox", layer, **kw)
    def build(dtype=None):
        dtype = float_dtype(dtype)
        return _build(make, *pair(shape, dtype), dtype, stateful)


def _keys(k: jax.Array, n: int) -> list[jax.Array]:
    return list(jax.random.split(k, n))


# ----------------------------------------------------------------------------- dense

_simple("linear", lambda k: eqx.nn.Linear(4, 3, key=k), (4,), kind="dense")
_simple("linear_scalar", lambda k: eqx.nn.Linear("scalar", 3, key=k), (), note="in_features='scalar'")
_simple("mlp", lambda k: eqx.nn.MLP(3, 2, width_size=4, depth=2, activation=jax.nn.softplus, key=k), (3,),
        note="eqx.nn.MLP with softplus")

# ----------------------------------------------------------------------------- convolutions

_simple("conv1d", lambda k: eqx.nn.Conv1d(1, 2, 3, padding="SAME", key=k), (1, 5), kind="conv1d")
_simple("conv2d", lambda k: eqx.nn.Conv2d(1, 2, 2, stride=2, padding=((0, 1), (0, 1)), key=k), (1, 4, 3), kind="conv2d")
_simple("conv2d_circular", lambda k: eqx.nn.Conv2d(2, 1, 2, dilation=(2, 1), padding=1, padding_mode="CIRCULAR", key=k),
        (2, 3, 3), note="dilated, circular padding")
_simple("conv3d", lambda k: eqx.nn.Conv3d(1, 2, 2, key=k), (1, 3, 2, 2), kind="conv3d")
_simple("conv_transpose1d", lambda k: eqx.nn.ConvTranspose1d(1, 2, 3, stride=2, padding=1, output_padding=1, key=k),
        (1, 3), kind="conv_transpose1d")
_simple("conv_transpose2d", lambda k: eqx.nn.ConvTranspose2d(2, 1, 2, stride=2, key=k), (2, 1, 2),
        kind="conv_transpose2d")
_simple("conv_transpose3d", lambda k: eqx.nn.ConvTranspose3d(1, 1, 2, padding="SAME", key=k), (1, 2, 2, 2),
        kind="conv_transpose3d")
_simple("grouped_conv1d", lambda k: eqx.nn.Conv1d(2, 4, 3, groups=2, key=k), (2, 4), kind="grouped_conv")
_simple("depthwise_conv2d", lambda k: eqx.nn.Conv2d(2, 4, 2, groups=2, key=k), (2, 3, 2), kind="depthwise_conv")

# ----------------------------------------------------------------------------- normalisation


class ConvBatchNorm(eqx.Module):
    """Conv, then BatchNorm in inference mode (its running statistics a constant State)."""

    conv: eqx.nn.Conv1d
    bn: eqx.nn.BatchNorm

    def __init__(self, k):
        self.conv = eqx.nn.Conv1d(1, 2, 2, key=k)
        self.bn = eqx.nn.BatchNorm(2, axis_name="batch", mode="ema")

    def __call__(self, x, state):
        return self.bn(self.conv(x), state)


_simple("batch_norm", ConvBatchNorm, (1, 4), stateful=True, note="inference mode, State a constant", kind="batch_norm")
_simple("layer_norm", lambda k: eqx.nn.LayerNorm((2, 3)), (2, 3), kind="layer_norm")
_simple("group_norm", lambda k: eqx.nn.GroupNorm(2, 4), (4, 3), kind="group_norm")
_simple("rms_norm", lambda k: eqx.nn.RMSNorm(5), (5,), kind="rms_norm")

# ----------------------------------------------------------------------------- embeddings


class TiedEmbedding(eqx.Module):
    """Embedding, mean over tokens, tanh, then the same table as the output layer."""

    embed: eqx.nn.Embedding

    def __init__(self, k):
        self.embed = eqx.nn.Embedding(6, 3, key=k)

    def __call__(self, ids):
        h = jnp.tanh(jax.vmap(self.embed)(ids).mean(0))
        return self.embed.weight @ h


class Tokens(eqx.Module):
    """A per-token layer over a sequence."""

    layer: Any

    def __call__(self, x):
        return jax.vmap(self.layer)(x)


@register("equinox", "embedding")
def _embedding(dtype=None):
    return _build(lambda k: Tokens(eqx.nn.Embedding(6, 2, key=k)), *id_pair((3,), 6), float_dtype(dtype))


@register("equinox", "embedding_tied", kind="embedding", note="the table is also the output layer")
def _embedding_tied(dtype=None):
    return _build(TiedEmbedding, *id_pair((3,), 6), float_dtype(dtype))

# ----------------------------------------------------------------------------- attention


class MaskedAttention(eqx.Module):
    """Self-attention with a causal mask combined with a padding mask given with the input."""

    mha: eqx.nn.MultiheadAttention

    def __init__(self, k):
        self.mha = eqx.nn.MultiheadAttention(2, 2, qk_size=2, vo_size=2, use_query_bias=True,
                                             use_output_bias=True, dropout_p=0.1, key=k)

    def __call__(self, x):
        t = x["x"].shape[0]
        mask = jnp.tril(jnp.ones((t, t), bool)) & (x["valid"][None, :] > 0)
        return self.mha(x["x"], x["x"], x["x"], mask=mask)


@register("equinox", "mha_masked", kind="attention",
          note="MultiheadAttention, causal and padding masks, dropout inference")
def _mha(dtype=None):
    dtype = float_dtype(dtype)
    a1, a2 = pair((3, 2), dtype)
    valid = lambda n: jnp.asarray([[1, 1, 0], [1, 1, 1], [1, 0, 0]][:n], dtype)
    return _build(MaskedAttention, {"x": a1, "valid": valid(3)}, {"x": a2, "valid": valid(2)}, dtype)

# ----------------------------------------------------------------------------- recurrent cells


class Scanned(eqx.Module):
    """A cell run over the sequence by ``jax.lax.scan``, its hidden states the output."""

    cell: Any
    lstm: bool = eqx.field(static=True)

    def __call__(self, xs):
        h = jnp.zeros(self.cell.hidden_size, xs.dtype)

        def step(carry, x):
            carry = self.cell(x, carry)
            return carry, carry[0] if self.lstm else carry

        _, hs = jax.lax.scan(step, (h, h) if self.lstm else h, xs)
        return hs


_simple("lstm", lambda k: Scanned(eqx.nn.LSTMCell(2, 3, key=k), True), (3, 2), note="LSTMCell under jax.lax.scan",
        kind="lstm")
_simple("gru", lambda k: Scanned(eqx.nn.GRUCell(2, 3, key=k), False), (3, 2), note="GRUCell under jax.lax.scan",
        kind="gru")

# ----------------------------------------------------------------------------- regularisers


class DropoutMLP(eqx.Module):
    layers: tuple

    def __init__(self, k):
        k1, k2 = _keys(k, 2)
        self.layers = (eqx.nn.Linear(3, 4, key=k1), eqx.nn.Dropout(0.5), eqx.nn.Linear(4, 2, key=k2))

    def __call__(self, x):
        return self.layers[2](self.layers[1](jnp.tanh(self.layers[0](x))))


_simple("dropout", DropoutMLP, (3,), note="Dropout in inference mode", kind="dropout")
_simple("weight_norm", lambda k: eqx.nn.WeightNorm(eqx.nn.Linear(4, 3, key=k)), (4,), kind="weight_norm")


class SpectralLinear(eqx.Module):
    layer: eqx.nn.SpectralNorm

    def __init__(self, k):
        k1, k2 = _keys(k, 2)
        self.layer = eqx.nn.SpectralNorm(eqx.nn.Linear(4, 3, key=k1), "weight", num_power_iterations=2, key=k2)

    def __call__(self, x, state):
        return self.layer(x, state)


_simple("spectral_norm", SpectralLinear, (4,), stateful=True,
        note="inference mode: no power iteration, u and v a constant State", kind="spectral_norm")
_simple("prelu", lambda k: eqx.nn.Sequential([eqx.nn.Linear(3, 3, key=k), eqx.nn.Lambda(eqx.nn.PReLU()),
                                              eqx.nn.Linear(3, 2, key=k)]),
        (3,), note="eqx.nn.Sequential of Linear, PReLU, Linear")

# ----------------------------------------------------------------------------- small models


class CNN(eqx.Module):
    """Conv, BatchNorm (inference), relu, average pooling, conv, linear."""

    conv1: eqx.nn.Conv2d
    bn: eqx.nn.BatchNorm
    pool: eqx.nn.AvgPool2d
    conv2: eqx.nn.Conv2d
    head: eqx.nn.Linear

    def __init__(self, k):
        k1, k2, k3 = _keys(k, 3)
        self.conv1 = eqx.nn.Conv2d(1, 3, 3, padding=1, key=k1)
        self.bn = eqx.nn.BatchNorm(3, axis_name="batch", mode="ema")
        self.pool = eqx.nn.AvgPool2d(2, 2)
        self.conv2 = eqx.nn.Conv2d(3, 2, 2, key=k2)
        self.head = eqx.nn.Linear(2, 3, key=k3)

    def __call__(self, x, state):
        h, state = self.bn(self.conv1(x), state)
        h = self.conv2(self.pool(jax.nn.relu(h)))
        return self.head(h.reshape(-1)), state


_simple("cnn", CNN, (1, 4, 4), stateful=True, note="Conv-BatchNorm-relu-AvgPool-Conv-Linear", kind="cnn")


class Transformer(eqx.Module):
    """Token embedding, learned positions, a pre-LayerNorm block (attention with a padding mask,
    GELU MLP), mean pooling over valid tokens, a head."""

    embed: eqx.nn.Embedding
    pos: jax.Array
    ln1: eqx.nn.LayerNorm
    ln2: eqx.nn.LayerNorm
    attn: eqx.nn.MultiheadAttention
    up: eqx.nn.Linear
    down: eqx.nn.Linear
    head: eqx.nn.Linear

    def __init__(self, k):
        ks = _keys(k, 6)
        self.embed, self.pos = eqx.nn.Embedding(5, 4, key=ks[0]), jax.random.normal(ks[1], (4, 4))
        self.ln1, self.ln2 = eqx.nn.LayerNorm(4), eqx.nn.LayerNorm(4)
        self.attn = eqx.nn.MultiheadAttention(2, 4, use_query_bias=True, use_output_bias=True, key=ks[2])
        self.up, self.down, self.head = (eqx.nn.Linear(4, 6, key=ks[3]), eqx.nn.Linear(6, 4, key=ks[4]),
                                         eqx.nn.Linear(4, 2, key=ks[5]))

    def __call__(self, ids):
        valid = ids > 0
        h = jax.vmap(self.embed)(ids) + self.pos
        n = jax.vmap(self.ln1)(h)
        h = h + self.attn(n, n, n, mask=valid[None, :] & valid[:, None])
        h = h + jax.vmap(lambda t: self.down(jax.nn.gelu(self.up(self.ln2(t)))))(h)
        return self.head((h * valid[:, None]).sum(0) / valid.sum())


@register("equinox", "transformer", note="embedding, positions, pre-LN block with padding mask, pooling")
def _transformer(dtype=None):
    x1, x2 = id_pair((4,), 5)
    return _build(Transformer, x1.at[:, 0].set(1), x2.at[:, 0].set(2), float_dtype(dtype))


class ScannedMLP(eqx.Module):
    """Three residual tanh layers made by ``eqx.filter_vmap`` (stacked) and run by
    ``jax.lax.scan``, each step under ``eqx.filter_checkpoint``."""

    inp: eqx.nn.Linear
    layers: eqx.nn.Linear
    head: eqx.nn.Linear

    def __init__(self, k):
        k1, k2, k3 = _keys(k, 3)
        self.inp, self.head = eqx.nn.Linear(2, 3, key=k1), eqx.nn.Linear(3, 2, key=k2)
        self.layers = eqx.filter_vmap(lambda kk: eqx.nn.Linear(3, 3, key=kk))(jax.random.split(k3, 3))

    def __call__(self, x):
        params, static = eqx.partition(self.layers, eqx.is_array)

        @eqx.filter_checkpoint
        def step(h, p):
            return h + jnp.tanh(eqx.combine(p, static)(h)), None

        h, _ = jax.lax.scan(step, self.inp(x), params)
        return self.head(h)


_simple("scan_checkpoint_mlp", ScannedMLP, (2,), note="filter_vmap-stacked layers, lax.scan, filter_checkpoint")


class SharedEmbedding(eqx.Module):
    """An embedding shared with the output layer through ``eqx.nn.Shared``."""

    shared: eqx.nn.Shared

    def __init__(self, k):
        k1, k2 = _keys(k, 2)
        embed, head = eqx.nn.Embedding(6, 3, key=k1), eqx.nn.Linear(3, 6, use_bias=False, key=k2)
        self.shared = eqx.nn.Shared((embed, head), lambda m: m[1].weight, lambda m: m[0].weight)

    def __call__(self, ids):
        embed, head = self.shared()
        return head(jnp.tanh(jax.vmap(embed)(ids).mean(0)))


@register("equinox", "shared", note="eqx.nn.Shared ties the embedding and the output layer")
def _shared(dtype=None):
    return _build(SharedEmbedding, *id_pair((3,), 6), float_dtype(dtype))

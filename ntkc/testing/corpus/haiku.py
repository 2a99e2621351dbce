"""Haiku layers in the corpus: every Haiku module holding parameters, through
:func:`ntkc.adapters.from_haiku` (state — BatchNorm's moving averages, SpectralNorm's vectors — a
constant, ``is_training=False``); recurrent cores run by ``hk.dynamic_unroll`` /
``hk.static_unroll``."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import haiku as hk
import jax
import jax.numpy as jnp

from ntkc.adapters import from_haiku
from ntkc.testing.corpus import register
from ntkc.testing.corpus._common import fill, float_dtype, id_pair, key, pair


def _build(forward: Callable, x1: Any, x2: Any, dtype: Any):
    """``(f, params, x1, x2)`` for ``hk.transform_with_state(forward)``: shapes from its ``init``
    (with ``is_training=True`` when ``forward`` takes it, so moving averages are created; the
    kernel is of ``is_training=False``), values from :func:`~ntkc.testing.corpus._common.fill`
    (state positive, as statistics are)."""
    net = hk.without_apply_rng(hk.transform_with_state(forward))
    training = {"is_training": True} if "is_training" in inspect.signature(forward).parameters else {}
    params, state = jax.eval_shape(lambda k, x: net.init(k, x, **training), key(0), x1)
    params, state = fill(params, dtype), fill(state, dtype, seed=1, positive=True)
    f, params = from_haiku(net, params, state) if state else from_haiku(
        hk.without_apply_rng(hk.transform(forward)), params)
    return f, params, x1, x2


def _simple(layer: str, forward: Callable, shape: tuple[int, ...], **kw: Any) -> None:
    """Register the forward function ``forward(x)`` on examples of ``shape``."""
    @register("haiku", layer, **kw)
    def build(dtype=None):
        dtype = float_dtype(dtype)
        return _build(forward, *pair(shape, dtype), dtype)


# ----------------------------------------------------------------------------- dense

_simple("linear", lambda x: hk.Linear(3)(x), (4,), kind="dense")
_simple("bias", lambda x: hk.Bias()(x), (2, 3), note="hk.Bias alone: a constant block-diagonal Jacobian")
_simple("mlp", lambda x: hk.nets.MLP([4, 2], activation=jax.nn.elu)(x), (3,), note="hk.nets.MLP with elu")

# ----------------------------------------------------------------------------- convolutions

_simple("conv1d", lambda x: hk.Conv1D(2, 3)(x), (5, 1), kind="conv1d")
_simple("conv2d", lambda x: hk.Conv2D(2, 2, stride=2)(x), (4, 3, 1), kind="conv2d")
_simple("conv2d_dilated_nchw", lambda x: hk.Conv2D(1, 2, rate=(2, 1), padding="VALID", data_format="NCHW")(x),
        (2, 3, 3), note="rate (dilation) 2x1, channels first")
_simple("conv3d", lambda x: hk.Conv3D(2, 2, padding="VALID")(x), (3, 2, 2, 1), kind="conv3d")
_simple("conv_transpose1d", lambda x: hk.Conv1DTranspose(2, 3, stride=2)(x), (3, 1), kind="conv_transpose1d")
_simple("conv_transpose2d", lambda x: hk.Conv2DTranspose(1, 2, stride=2)(x), (1, 2, 2), kind="conv_transpose2d")
_simple("conv_transpose3d", lambda x: hk.Conv3DTranspose(1, 2)(x), (2, 2, 2, 1), kind="conv_transpose3d")
_simple("grouped_conv1d", lambda x: hk.Conv1D(4, 3, padding="VALID", feature_group_count=2)(x), (4, 2),
        kind="grouped_conv")
_simple("depthwise_conv2d", lambda x: hk.DepthwiseConv2D(2, 2, padding="VALID")(x), (3, 2, 2), kind="depthwise_conv")
_simple("depthwise_conv1d", lambda x: hk.DepthwiseConv1D(2, 2, padding="VALID")(x), (3, 2))
_simple("separable_conv2d", lambda x: hk.SeparableDepthwiseConv2D(2, 2, padding="VALID")(x), (3, 2, 2),
        note="depthwise then pointwise (the library's separable layer)")

# ----------------------------------------------------------------------------- normalisation


def _conv_batch_norm(x, is_training=False):
    x = hk.Conv1D(2, 2, padding="VALID")(x)
    return hk.BatchNorm(True, True, decay_rate=0.9)(x, is_training=is_training)


_simple("batch_norm", _conv_batch_norm, (4, 1), note="Conv, then BatchNorm(is_training=False): averages are state",
        kind="batch_norm")
_simple("layer_norm", lambda x: hk.LayerNorm(-1, True, True)(x), (2, 3), kind="layer_norm")
_simple("layer_norm_2axes", lambda x: hk.LayerNorm((-2, -1), True, True, param_axis=(-2, -1))(x), (2, 3))
_simple("group_norm", lambda x: hk.GroupNorm(2)(x), (3, 4), kind="group_norm")
_simple("rms_norm", lambda x: hk.RMSNorm(-1)(x), (5,), kind="rms_norm")
_simple("instance_norm", lambda x: hk.InstanceNorm(True, True)(x), (3, 2))

# ----------------------------------------------------------------------------- embeddings


def _ids(layer: str, forward: Callable, **kw: Any) -> None:
    """Register ``forward(ids)`` on sequences of 3 token ids."""
    @register("haiku", layer, **kw)
    def build(dtype=None):
        return _build(forward, *id_pair((3,), 6), float_dtype(dtype))


_ids("embed", lambda ids: hk.Embed(6, 2)(ids))
_ids("embed_one_hot", lambda ids: hk.Embed(6, 2, lookup_style="ONE_HOT")(ids), note="lookup_style='ONE_HOT'")


def _tied(ids):
    embed = hk.Embed(6, 3)
    return jnp.tanh(embed(ids).mean(-2)) @ embed.embeddings.T


_ids("embed_tied", _tied, note="the table is also the output layer", kind="embedding")

# ----------------------------------------------------------------------------- attention


def _masked_attention(x):
    t = x["x"].shape[-2]
    mask = jnp.tril(jnp.ones((t, t), bool))[None, None] & (x["valid"][:, None, None, :] > 0)
    return hk.MultiHeadAttention(2, 1, w_init=hk.initializers.VarianceScaling(), model_size=2)(x["x"], x["x"], x["x"],
                                                                                            mask=mask)


@register("haiku", "mha_masked", kind="attention", note="MultiHeadAttention, causal and padding masks")
def _mha(dtype=None):
    dtype = float_dtype(dtype)
    a1, a2 = pair((3, 2), dtype)
    valid = lambda n: jnp.asarray([[1, 1, 0], [1, 1, 1], [1, 0, 0]][:n], dtype)
    return _build(_masked_attention, {"x": a1, "valid": valid(3)}, {"x": a2, "valid": valid(2)}, dtype)

# ----------------------------------------------------------------------------- recurrent cores


def _dynamic(core: Callable) -> Callable:
    def forward(xs):
        c = core()
        hs, _ = hk.dynamic_unroll(c, xs, c.initial_state(xs.shape[0]), time_major=False)
        return hs
    return forward


def _static(core: Callable) -> Callable:
    def forward(xs):
        c = core()
        hs, _ = hk.static_unroll(c, xs, c.initial_state(xs.shape[0]), time_major=False)
        return hs
    return forward


_simple("lstm", _dynamic(lambda: hk.LSTM(3)), (3, 2), note="hk.LSTM run by hk.dynamic_unroll (a scan)", kind="lstm")
_simple("gru", _static(lambda: hk.GRU(3)), (3, 2), note="hk.GRU run by hk.static_unroll (unrolled)", kind="gru")
_simple("gru_dynamic", _dynamic(lambda: hk.GRU(3)), (3, 2), note="hk.GRU run by hk.dynamic_unroll (a scan)")
_simple("vanilla_rnn", _dynamic(lambda: hk.VanillaRNN(3)), (3, 2), note="hk.VanillaRNN by hk.dynamic_unroll")
_simple("deep_rnn", _dynamic(lambda: hk.DeepRNN([hk.LSTM(2), jax.nn.relu, hk.GRU(2)])), (3, 2),
        note="hk.DeepRNN (LSTM, relu, GRU) by hk.dynamic_unroll")
_simple("conv1d_lstm", _dynamic(lambda: hk.Conv1DLSTM((3,), 2, 2)), (2, 3, 1), note="hk.Conv1DLSTM by dynamic_unroll")

# ----------------------------------------------------------------------------- regularisers


def _dropout(x, is_training=False):
    h = jnp.tanh(hk.Linear(4)(x))
    if is_training:
        h = hk.dropout(hk.next_rng_key(), 0.5, h)
    return hk.Linear(2)(h)


_simple("dropout", _dropout, (3,), note="hk.dropout skipped when is_training=False (Haiku's idiom)", kind="dropout")


def _spectral_linear(x):
    w = hk.get_parameter("w", (4, 3), init=hk.initializers.RandomNormal())
    return x @ hk.SpectralNorm(n_steps=2)(w, update_stats=False) + hk.get_parameter("b", (3,), init=jnp.zeros)


_simple("spectral_norm", _spectral_linear, (4,), note="hk.SpectralNorm(update_stats=False): u0 a constant state",
        kind="spectral_norm")

# ----------------------------------------------------------------------------- small models


def _cnn(x, is_training=False):
    x = hk.Conv2D(3, 3)(x)
    x = jax.nn.relu(hk.BatchNorm(True, True, decay_rate=0.9)(x, is_training=is_training))
    x = hk.avg_pool(x, (2, 2, 1), (2, 2, 1), "VALID")
    x = hk.Conv2D(2, 2, padding="VALID")(x)
    return hk.Linear(3)(hk.Flatten()(x))


_simple("cnn", _cnn, (4, 4, 1), note="Conv-BatchNorm-relu-avg_pool-Conv-Flatten-Linear", kind="cnn")


def _transformer(ids):
    valid = ids > 0
    h = hk.Embed(5, 4)(ids) + hk.get_parameter("pos", (ids.shape[-1], 4), init=hk.initializers.RandomNormal(0.1))
    n = hk.LayerNorm(-1, True, True)(h)
    h = h + hk.MultiHeadAttention(2, 2, w_init=hk.initializers.VarianceScaling())(
        n, n, n, mask=(valid[:, None, :, None] & valid[:, None, None, :]))
    h = h + hk.nets.MLP([6, 4], activation=jax.nn.gelu)(hk.LayerNorm(-1, True, True)(h))
    pooled = (h * valid[..., None]).sum(-2) / valid.sum(-1, keepdims=True)
    return hk.Linear(2)(pooled)


@register("haiku", "transformer", note="embedding, positions, pre-LN block with padding mask, pooling")
def _transformer_build(dtype=None):
    x1, x2 = id_pair((4,), 5)
    return _build(_transformer, x1.at[:, 0].set(1), x2.at[:, 0].set(2), float_dtype(dtype))


def _layer_stack(x):
    h = hk.Linear(3)(x)

    @hk.layer_stack(3)
    def stack(h):
        return h + jnp.tanh(hk.remat(hk.Linear(3))(h))

    return hk.Linear(2)(stack(h))


_simple("layer_stack_remat", _layer_stack, (2,), note="hk.layer_stack (a scan over layers) of hk.remat(Linear)")

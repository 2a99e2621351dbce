"""A zoo of small JAX models for testing and benchmarking NTK computations.

Every model is a pure function ``f(params, x, **kwargs)`` whose inputs and
outputs carry the batch on axis 0 (of every leaf). Models are deliberately tiny
(at most a few thousand parameters, at most ~12 outputs per example) so that a
brute-force ``jax.jacrev`` oracle in float64 stays cheap.

Usage::

    from ntkc import testing
    for model in testing.ZOO.values():
        inst = model.make(jax.random.PRNGKey(0), dtype=jnp.float64)
        out = inst.f(inst.params, inst.x1, **inst.kwargs)

Only public JAX API is used; nothing here touches ``jax.config`` except the
``_smoke`` self-check at the bottom (run with ``python ntkc/testing.py``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["ZooModel", "ZooInstance", "ZOO", "get"]


@dataclasses.dataclass(frozen=True)
class ZooInstance:
    """A concrete model: function, parameters, and two input batches.

    Attributes:
      f: ``f(params, x, **kwargs)`` returning an array or a pytree of arrays,
        with the batch on axis 0 of ``x`` and of every output leaf.
      params: pytree of float arrays of the requested dtype.
      x1: batch of ``n1`` inputs (array or pytree), batch axis 0.
      x2: batch of ``n2`` inputs with the same non-batch shapes as ``x1``.
      kwargs: extra keyword arguments for ``f`` (usually empty).
    """

    f: Callable
    params: Any
    x1: Any
    x2: Any
    kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """A named entry of the zoo.

    Attributes:
      name: unique snake_case name.
      description: one-line description.
      make: ``make(key, dtype=jnp.float32, n1=3, n2=2) -> ZooInstance``.
      batch_independent: whether ``f(params, x)[i]`` depends only on ``x[i]``
        (so ``vmap_axes=0`` semantics are valid).
      tags: feature tags such as ``"conv"``, ``"gather"``, ``"pytree_out"``.
    """

    name: str
    description: str
    make: Callable[..., ZooInstance]
    batch_independent: bool = True
    tags: tuple[str, ...] = ()


ZOO: dict[str, ZooModel] = {}


def get(name: str) -> ZooModel:
    """Return the zoo model called ``name``; KeyError lists valid names."""
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(
            f"unknown zoo model {name!r}; valid names: {', '.join(ZOO)}"
        ) from None


def _register(name, description, *, batch_independent=True, tags=()):
    """Decorator adding a ``make`` function to ``ZOO`` under ``name``."""

    def decorator(make):
        if name in ZOO:
            raise ValueError(f"duplicate zoo model name {name!r}")
        ZOO[name] = ZooModel(
            name=name,
            description=description,
            make=make,
            batch_independent=batch_independent,
            tags=tuple(tags),
        )
        return make

    return decorator


# ----------------------------------------------------------------------------
# Initialisation helpers.


def _weight(key, shape, dtype, fan_in):
    """Random normal weight of ``shape`` scaled by ``1/sqrt(fan_in)``."""
    return jax.random.normal(key, shape, dtype) / math.sqrt(fan_in)


def _bias(key, shape, dtype):
    """Small non-zero random bias (so it contributes to the NTK)."""
    return 0.1 * jax.random.normal(key, shape, dtype)


def _dense(key, fan_in, fan_out, dtype, bias=True):
    """Parameters ``{"w": (fan_in, fan_out), "b": (fan_out,)}`` of a dense layer."""
    k_w, k_b = jax.random.split(key)
    layer = {"w": _weight(k_w, (fan_in, fan_out), dtype, fan_in)}
    if bias:
        layer["b"] = _bias(k_b, (fan_out,), dtype)
    return layer


def _conv_kernel(key, shape, dtype, fan_in):
    """Convolution kernel of ``shape`` scaled by ``1/sqrt(fan_in)``."""
    return _weight(key, shape, dtype, fan_in)


def _instance(f, params, key, shape, dtype, n1, n2, kwargs=None):
    """Build a ZooInstance with random normal inputs of per-example ``shape``."""
    k1, k2 = jax.random.split(key)
    return ZooInstance(
        f=f,
        params=params,
        x1=jax.random.normal(k1, (n1, *shape), dtype),
        x2=jax.random.normal(k2, (n2, *shape), dtype),
        kwargs=dict(kwargs or {}),
    )


def _apply_dense(layer, h):
    """``h @ w (+ b)`` for a layer dict from ``_dense``."""
    out = h @ layer["w"]
    return out + layer["b"] if "b" in layer else out


def _conv_nhwc(x, kernel, padding="SAME", strides=(1, 1), **extra):
    """2D convolution with NHWC inputs and HWIO kernels."""
    return lax.conv_general_dilated(
        x, kernel, window_strides=strides, padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), **extra,
    )


def _flatten(h):
    """Flatten all non-batch axes."""
    return h.reshape(h.shape[0], -1)


# ----------------------------------------------------------------------------
# Dense models.


def _mlp_apply(params, x):
    h = x
    for layer in params["hidden"]:
        h = jnp.tanh(_apply_dense(layer, h))
    return _apply_dense(params["head"], h)


def _make_mlp_params(key, dtype, sizes, bias):
    keys = jax.random.split(key, len(sizes) - 1)
    layers = [
        _dense(k, fan_in, fan_out, dtype, bias)
        for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:])
    ]
    return {"hidden": layers[:-1], "head": layers[-1]}


@_register("mlp", "Dense MLP 4-8-8-3 with biases and tanh.", tags=("dense",))
def _make_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    k_p, k_x = jax.random.split(key)
    params = _make_mlp_params(k_p, dtype, (4, 8, 8, 3), bias=True)
    return _instance(_mlp_apply, params, k_x, (4,), dtype, n1, n2)


@_register("mlp_nobias", "Dense MLP 4-8-8-3 without biases, tanh.", tags=("dense",))
def _make_mlp_nobias(key, dtype=jnp.float32, n1=3, n2=2):
    k_p, k_x = jax.random.split(key)
    params = _make_mlp_params(k_p, dtype, (4, 8, 8, 3), bias=False)
    return _instance(_mlp_apply, params, k_x, (4,), dtype, n1, n2)


@_register("deep_mlp", "Narrow 10-layer MLP (width 5) with gelu.", tags=("dense", "deep"))
def _make_deep_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    k_p, k_x = jax.random.split(key)
    params = _make_mlp_params(k_p, dtype, (3,) + (5,) * 9 + (2,), bias=True)

    return _instance(_deep_mlp_apply, params, k_x, (3,), dtype, n1, n2)


def _deep_mlp_apply(params, x):
    h = x
    for layer in params["hidden"]:
        h = jax.nn.gelu(_apply_dense(layer, h))
    return _apply_dense(params["head"], h)


# ----------------------------------------------------------------------------
# Convolutional models.


def _conv_same_apply(params, x):
    h = jnp.tanh(_conv_nhwc(x, params["conv"], padding="SAME"))
    return _apply_dense(params["head"], _flatten(h))


@_register("conv_same_nhwc", "NHWC 3x3 SAME conv (2->3 ch) on 5x5, flatten, dense->3.",
           tags=("conv",))
def _make_conv_same_nhwc(key, dtype=jnp.float32, n1=3, n2=2):
    k_c, k_h, k_x = jax.random.split(key, 3)
    params = {"conv": _conv_kernel(k_c, (3, 3, 2, 3), dtype, 3 * 3 * 2),
              "head": _dense(k_h, 5 * 5 * 3, 3, dtype)}
    return _instance(_conv_same_apply, params, k_x, (5, 5, 2), dtype, n1, n2)


def _conv_strided_apply(params, x):
    h = _conv_nhwc(x, params["conv"], padding="VALID", strides=(2, 2),
                   rhs_dilation=(2, 1))
    return _apply_dense(params["head"], _flatten(jnp.tanh(h)))


@_register("conv_valid_strided_dilated",
           "NHWC VALID conv, stride (2,2), rhs_dilation (2,1), on 8x8x2, dense->3.",
           tags=("conv",))
def _make_conv_valid_strided_dilated(key, dtype=jnp.float32, n1=3, n2=2):
    k_c, k_h, k_x = jax.random.split(key, 3)
    # Effective kernel 5x3 -> output spatial ((8-5)//2+1, (8-3)//2+1) = (2, 3).
    params = {"conv": _conv_kernel(k_c, (3, 3, 2, 3), dtype, 3 * 3 * 2),
              "head": _dense(k_h, 2 * 3 * 3, 3, dtype)}
    return _instance(_conv_strided_apply, params, k_x, (8, 8, 2), dtype, n1, n2)


def _conv_nchw_apply(params, x):
    h = lax.conv_general_dilated(
        x, params["conv"], window_strides=(1, 1), padding=((1, 0), (0, 1)),
        dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return _apply_dense(params["head"], _flatten(jnp.tanh(h)))


@_register("conv_nchw", "NCHW/OIHW 3x3 conv with asymmetric explicit padding, dense->3.",
           tags=("conv",))
def _make_conv_nchw(key, dtype=jnp.float32, n1=3, n2=2):
    k_c, k_h, k_x = jax.random.split(key, 3)
    # Input (2, 5, 5); output spatial (5+1-3+1, 5+1-3+1) = (4, 4), 3 channels.
    params = {"conv": _conv_kernel(k_c, (3, 2, 3, 3), dtype, 2 * 3 * 3),
              "head": _dense(k_h, 3 * 4 * 4, 3, dtype)}
    return _instance(_conv_nchw_apply, params, k_x, (2, 5, 5), dtype, n1, n2)


def _avg_pool_apply(params, x):
    h = jnp.tanh(_conv_nhwc(x, params["conv"], padding="SAME"))
    window = (1, 2, 2, 1)
    pooled = lax.reduce_window(h, jnp.zeros((), h.dtype), lax.add, window, window,
                               "VALID") / 4.0
    return _apply_dense(params["head"], _flatten(pooled))


@_register("avg_pool_cnn", "Conv then 2x2 average pooling (reduce_window add), dense->3.",
           tags=("conv", "pool"))
def _make_avg_pool_cnn(key, dtype=jnp.float32, n1=3, n2=2):
    k_c, k_h, k_x = jax.random.split(key, 3)
    params = {"conv": _conv_kernel(k_c, (3, 3, 2, 3), dtype, 3 * 3 * 2),
              "head": _dense(k_h, 3 * 3 * 3, 3, dtype)}
    return _instance(_avg_pool_apply, params, k_x, (6, 6, 2), dtype, n1, n2)


def _global_pool_apply(params, x):
    h = jnp.tanh(_conv_nhwc(x, params["conv"], padding="SAME") + params["conv_b"])
    return _apply_dense(params["head"], jnp.mean(h, axis=(1, 2)))


@_register("global_pool_cnn", "Conv (+bias) then global spatial mean, dense->3.",
           tags=("conv", "pool"))
def _make_global_pool_cnn(key, dtype=jnp.float32, n1=3, n2=2):
    k_c, k_b, k_h, k_x = jax.random.split(key, 4)
    params = {"conv": _conv_kernel(k_c, (3, 3, 3, 4), dtype, 3 * 3 * 3),
              "conv_b": _bias(k_b, (4,), dtype),
              "head": _dense(k_h, 4, 3, dtype)}
    return _instance(_global_pool_apply, params, k_x, (6, 6, 3), dtype, n1, n2)


def _conv_grouped_apply(params, x):
    h = jnp.tanh(_conv_nhwc(x, params["conv"], padding="SAME", feature_group_count=2))
    return _apply_dense(params["head"], _flatten(h))


@_register("conv_grouped", "Grouped conv (feature_group_count=2, 4->4 ch) on 4x4, dense->3.",
           tags=("conv",))
def _make_conv_grouped(key, dtype=jnp.float32, n1=3, n2=2):
    k_c, k_h, k_x = jax.random.split(key, 3)
    params = {"conv": _conv_kernel(k_c, (3, 3, 2, 4), dtype, 3 * 3 * 2),
              "head": _dense(k_h, 4 * 4 * 4, 3, dtype)}
    return _instance(_conv_grouped_apply, params, k_x, (4, 4, 4), dtype, n1, n2)


def _conv_transpose_apply(params, x):
    h = _conv_nhwc(x, params["conv"], padding=((1, 1), (1, 1)), lhs_dilation=(2, 2))
    return _apply_dense(params["head"], _flatten(jnp.tanh(h)))


@_register("conv_lhs_dilated",
           "Transposed-style conv (lhs_dilation (2,2)) 3x3x2 -> 5x5x2, dense->3.",
           tags=("conv",))
def _make_conv_lhs_dilated(key, dtype=jnp.float32, n1=3, n2=2):
    k_c, k_h, k_x = jax.random.split(key, 3)
    # Dilated input 5x5, padded 7x7, 3x3 kernel -> 5x5 output.
    params = {"conv": _conv_kernel(k_c, (3, 3, 2, 2), dtype, 3 * 3 * 2),
              "head": _dense(k_h, 5 * 5 * 2, 3, dtype)}
    return _instance(_conv_transpose_apply, params, k_x, (3, 3, 2), dtype, n1, n2)


def _conv_image_out_apply(params, x):
    h = jnp.tanh(_conv_nhwc(x, params["conv1"], padding="SAME"))
    return _conv_nhwc(h, params["conv2"], padding="VALID")


@_register("conv_image_out", "Two NHWC convs, no flatten: output (n, 2, 2, 2).",
           tags=("conv", "image_out"))
def _make_conv_image_out(key, dtype=jnp.float32, n1=3, n2=2):
    k_1, k_2, k_x = jax.random.split(key, 3)
    params = {"conv1": _conv_kernel(k_1, (3, 3, 2, 3), dtype, 3 * 3 * 2),
              "conv2": _conv_kernel(k_2, (3, 3, 3, 2), dtype, 3 * 3 * 3)}
    return _instance(_conv_image_out_apply, params, k_x, (4, 4, 2), dtype, n1, n2)


def _conv1d_apply(params, x):
    h = lax.conv_general_dilated(x, params["conv"], window_strides=(1,), padding="SAME",
                                 dimension_numbers=("NWC", "WIO", "NWC"))
    return _flatten(jnp.tanh(h))[:, ::3] @ params["head"]


@_register("conv1d_nwc", "1D NWC conv on length 6, strided slice of features, dense->2.",
           tags=("conv",))
def _make_conv1d_nwc(key, dtype=jnp.float32, n1=3, n2=2):
    k_c, k_h, k_x = jax.random.split(key, 3)
    params = {"conv": _conv_kernel(k_c, (3, 2, 3), dtype, 3 * 2),
              "head": _weight(k_h, (6, 2), dtype, 6)}
    return _instance(_conv1d_apply, params, k_x, (6, 2), dtype, n1, n2)


# ----------------------------------------------------------------------------
# Normalisation, residual, attention, weight sharing.


def _layer_norm_apply(params, x):
    h = _apply_dense(params["in"], x)
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean((h - mean) ** 2, axis=-1, keepdims=True)
    h = (h - mean) * lax.rsqrt(var + 1e-5) * params["ln_scale"] + params["ln_bias"]
    return _apply_dense(params["out"], jnp.tanh(h))


@_register("layer_norm_mlp", "Dense 4->8, layer norm with learned scale/bias, dense->3.",
           tags=("dense", "norm"))
def _make_layer_norm_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    k_in, k_s, k_b, k_out, k_x = jax.random.split(key, 5)
    params = {"in": _dense(k_in, 4, 8, dtype),
              "ln_scale": 1.0 + _bias(k_s, (8,), dtype),
              "ln_bias": _bias(k_b, (8,), dtype),
              "out": _dense(k_out, 8, 3, dtype)}
    return _instance(_layer_norm_apply, params, k_x, (4,), dtype, n1, n2)


def _residual_apply(params, x):
    h = _apply_dense(params["in"], x)
    h = h + _apply_dense(params["w2"], jnp.tanh(_apply_dense(params["w1"], h)))
    return _apply_dense(params["head"], h)


@_register("residual_block", "Dense 4->6, residual h + W2 tanh(W1 h + b1), dense->3.",
           tags=("dense", "residual"))
def _make_residual_block(key, dtype=jnp.float32, n1=3, n2=2):
    k_in, k_1, k_2, k_h, k_x = jax.random.split(key, 5)
    params = {"in": _dense(k_in, 4, 6, dtype), "w1": _dense(k_1, 6, 6, dtype),
              "w2": _dense(k_2, 6, 6, dtype, bias=False), "head": _dense(k_h, 6, 3, dtype)}
    return _instance(_residual_apply, params, k_x, (4,), dtype, n1, n2)


def _attention_apply(params, x):
    q = x @ params["wq"]
    k = x @ params["wk"]
    v = x @ params["wv"]
    logits = jnp.einsum("ntd,nsd->nts", q, k) / math.sqrt(q.shape[-1])
    attn = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("nts,nsd->ntd", attn, v) @ params["wo"]


@_register("attention", "Single-head self-attention, T=4, d=4, output (n, 4, 2).",
           tags=("attention", "multi_axis_out"))
def _make_attention(key, dtype=jnp.float32, n1=3, n2=2):
    k_q, k_k, k_v, k_o, k_x = jax.random.split(key, 5)
    params = {"wq": _weight(k_q, (4, 4), dtype, 4), "wk": _weight(k_k, (4, 4), dtype, 4),
              "wv": _weight(k_v, (4, 4), dtype, 4), "wo": _weight(k_o, (4, 2), dtype, 4)}
    return _instance(_attention_apply, params, k_x, (4, 4), dtype, n1, n2)


def _weight_sharing_apply(params, x):
    h = _apply_dense(params["in"], x)
    for _step in range(3):
        h = jnp.tanh(h @ params["shared"])
    return _apply_dense(params["head"], h)


@_register("weight_sharing", "One square 6x6 matrix applied three times, dense->3.",
           tags=("dense", "shared"))
def _make_weight_sharing(key, dtype=jnp.float32, n1=3, n2=2):
    k_in, k_w, k_h, k_x = jax.random.split(key, 4)
    params = {"in": _dense(k_in, 4, 6, dtype), "shared": _weight(k_w, (6, 6), dtype, 6),
              "head": _dense(k_h, 6, 3, dtype)}
    return _instance(_weight_sharing_apply, params, k_x, (4,), dtype, n1, n2)


# ----------------------------------------------------------------------------
# Structural ops, broadcasting, pytrees.


def _rtcs_apply(params, x):
    n = x.shape[0]
    h = jnp.tanh(x @ params["w_t"].T)                     # (n, 8); param transposed
    h = h.reshape(n, 2, 4).transpose(0, 2, 1)             # (n, 4, 2)
    h = jnp.concatenate([h, h[:, ::-1, :1] * x[:, :4, None]], axis=2)  # (n, 4, 3)
    h = h[:, 1:, :].reshape(n, 9)                         # slice -> (n, 9)
    return h @ params["v_flat"].reshape(9, 3)             # param reshaped


@_register("reshape_transpose_concat_slice",
           "Reshape/transpose/concat/slice of activations; transposed and reshaped params.",
           tags=("structural",))
def _make_rtcs(key, dtype=jnp.float32, n1=3, n2=2):
    k_w, k_v, k_x = jax.random.split(key, 3)
    params = {"w_t": _weight(k_w, (8, 6), dtype, 6), "v_flat": _weight(k_v, (27,), dtype, 9)}
    return _instance(_rtcs_apply, params, k_x, (6,), dtype, n1, n2)


def _broadcast_bias_apply(params, x):
    h = jnp.tanh(_conv_nhwc(x, params["conv"]) + params["conv_b"])  # (1, 1, 1, C) bias
    return _flatten(h) @ params["head_w"] + params["head_b"]         # (1, 3) bias


@_register("broadcast_bias", "Conv with (1,1,1,C) bias and dense with (1,3) bias.",
           tags=("conv", "broadcast"))
def _make_broadcast_bias(key, dtype=jnp.float32, n1=3, n2=2):
    k_c, k_cb, k_w, k_b, k_x = jax.random.split(key, 5)
    params = {"conv": _conv_kernel(k_c, (3, 3, 2, 3), dtype, 3 * 3 * 2),
              "conv_b": _bias(k_cb, (1, 1, 1, 3), dtype),
              "head_w": _weight(k_w, (4 * 4 * 3, 3), dtype, 4 * 4 * 3),
              "head_b": _bias(k_b, (1, 3), dtype)}
    return _instance(_broadcast_bias_apply, params, k_x, (4, 4, 2), dtype, n1, n2)


def _pytree_out_apply(params, x):
    h = jnp.tanh(_apply_dense(params["trunk"], x))
    aux = (h @ params["aux"]).reshape(x.shape[0], 2, 2)
    return {"logits": _apply_dense(params["logits"], h), "aux": aux}


@_register("pytree_out", "Dict output {'logits': (n, 3), 'aux': (n, 2, 2)}.",
           tags=("pytree_out",))
def _make_pytree_out(key, dtype=jnp.float32, n1=3, n2=2):
    k_t, k_l, k_a, k_x = jax.random.split(key, 4)
    params = {"trunk": _dense(k_t, 4, 6, dtype), "logits": _dense(k_l, 6, 3, dtype),
              "aux": _weight(k_a, (6, 4), dtype, 6)}
    return _instance(_pytree_out_apply, params, k_x, (4,), dtype, n1, n2)


def _pytree_params_apply(params, x):
    h = x
    for layer in params["body"]["layers"]:
        h = jnp.tanh(_apply_dense(layer, h))
    return h @ params["head"][0]["w"] * params["head"][1]["gain"]


@_register("pytree_params_unused",
           "Nested dict/list params incl. a leaf f never uses (zero NTK contribution).",
           tags=("pytree_params",))
def _make_pytree_params_unused(key, dtype=jnp.float32, n1=3, n2=2):
    k_1, k_2, k_h, k_g, k_u, k_x = jax.random.split(key, 6)
    params = {
        "body": {"layers": [_dense(k_1, 4, 5, dtype), _dense(k_2, 5, 5, dtype, bias=False)],
                 "unused": _weight(k_u, (3, 2), dtype, 3)},
        "head": [{"w": _weight(k_h, (5, 3), dtype, 5)},
                 {"gain": 1.0 + _bias(k_g, (3,), dtype)}],
    }
    return _instance(_pytree_params_apply, params, k_x, (4,), dtype, n1, n2)


def _scalar_apply(params, x):
    h = jnp.tanh(_apply_dense(params["hidden"], x))
    return h @ params["w_out"] + params["b_out"]


@_register("scalar_output", "MLP with per-example scalar output: shape (n,).",
           tags=("dense", "scalar_out"))
def _make_scalar_output(key, dtype=jnp.float32, n1=3, n2=2):
    k_h, k_w, k_b, k_x = jax.random.split(key, 4)
    params = {"hidden": _dense(k_h, 4, 8, dtype), "w_out": _weight(k_w, (8,), dtype, 8),
              "b_out": _bias(k_b, (), dtype)}
    return _instance(_scalar_apply, params, k_x, (4,), dtype, n1, n2)


_VOCAB = 7
_SEQ = 5


def _embedding_apply(params, x):
    e = params["emb"][x]                                  # gather: (n, T, d)
    pooled = jnp.tanh(jnp.mean(e, axis=1))
    return _apply_dense(params["head"], jnp.concatenate([pooled, _flatten(e)], axis=1))


@_register("embedding", "Embedding table (7, 4) gathered by int32 ids (n, 5), dense->3.",
           tags=("gather", "int_input"))
def _make_embedding(key, dtype=jnp.float32, n1=3, n2=2):
    k_e, k_h, k_1, k_2 = jax.random.split(key, 4)
    params = {"emb": jax.random.normal(k_e, (_VOCAB, 4), dtype),
              "head": _dense(k_h, 4 + _SEQ * 4, 3, dtype)}
    return ZooInstance(
        f=_embedding_apply, params=params,
        x1=jax.random.randint(k_1, (n1, _SEQ), 0, _VOCAB, dtype=jnp.int32),
        x2=jax.random.randint(k_2, (n2, _SEQ), 0, _VOCAB, dtype=jnp.int32),
    )


def _kwargs_apply(params, x, *, scale):
    h = jnp.tanh(scale * _apply_dense(params["hidden"], x))
    return _apply_dense(params["head"], h)


@_register("kwargs_model", "MLP f(params, x, *, scale) with kwargs {'scale': 0.5}.",
           tags=("kwargs",))
def _make_kwargs_model(key, dtype=jnp.float32, n1=3, n2=2):
    k_h, k_o, k_x = jax.random.split(key, 3)
    params = {"hidden": _dense(k_h, 4, 6, dtype), "head": _dense(k_o, 6, 3, dtype)}
    return _instance(_kwargs_apply, params, k_x, (4,), dtype, n1, n2,
                     kwargs={"scale": 0.5})


def _pytree_input_apply(params, x):
    h = jnp.tanh(x["a"] @ params["wa"] + x["b"] @ params["wb"] + params["b"])
    return _apply_dense(params["head"], h)


@_register("pytree_input", "Dict input {'a': (n, 3), 'b': (n, 2)}, dense->3.",
           tags=("pytree_in",))
def _make_pytree_input(key, dtype=jnp.float32, n1=3, n2=2):
    k_a, k_b, k_bias, k_h, k_x1, k_x2 = jax.random.split(key, 6)
    params = {"wa": _weight(k_a, (3, 6), dtype, 5), "wb": _weight(k_b, (2, 6), dtype, 5),
              "b": _bias(k_bias, (6,), dtype), "head": _dense(k_h, 6, 3, dtype)}

    def inputs(k, n):
        k_in_a, k_in_b = jax.random.split(k)
        return {"a": jax.random.normal(k_in_a, (n, 3), dtype),
                "b": jax.random.normal(k_in_b, (n, 2), dtype)}

    return ZooInstance(f=_pytree_input_apply, params=params,
                       x1=inputs(k_x1, n1), x2=inputs(k_x2, n2))


def _batch_coupled_apply(params, x):
    h = _apply_dense(params["hidden"], x)
    h = jnp.tanh(h - jnp.mean(h, axis=0, keepdims=True) + params["shift"])
    return _apply_dense(params["head"], h)


@_register("batch_coupled", "MLP subtracting the batch mean of its hidden layer.",
           batch_independent=False, tags=("batch_coupled",))
def _make_batch_coupled(key, dtype=jnp.float32, n1=3, n2=2):
    k_h, k_s, k_o, k_x = jax.random.split(key, 4)
    params = {"hidden": _dense(k_h, 4, 6, dtype), "shift": _bias(k_s, (6,), dtype),
              "head": _dense(k_o, 6, 3, dtype)}
    return _instance(_batch_coupled_apply, params, k_x, (4,), dtype, n1, n2)


# ----------------------------------------------------------------------------
# Self-check.


def _smoke(verbose=True):
    """Build every model in float32 and float64 and sanity-check it.

    Checks output shapes/dtypes, finiteness, that ``jax.jacrev`` w.r.t. params
    works, and (for batch-independent models) that evaluating example ``i``
    alone matches row ``i`` of the batched evaluation. Enables x64.
    """
    jax.config.update("jax_enable_x64", True)
    tree = jax.tree_util
    for dtype in (jnp.float32, jnp.float64):
        tol = 1e-5 if dtype == jnp.float32 else 1e-12
        for idx, model in enumerate(ZOO.values()):
            inst = model.make(jax.random.PRNGKey(idx), dtype=dtype)
            assert all(leaf.dtype == dtype for leaf in tree.tree_leaves(inst.params))
            f = lambda p, x, inst=inst: inst.f(p, x, **inst.kwargs)
            for x, n in ((inst.x1, 3), (inst.x2, 2)):
                out = f(inst.params, x)
                for leaf in tree.tree_leaves(out):
                    assert leaf.shape[0] == n and leaf.dtype == dtype, (model.name, leaf)
                    assert bool(jnp.all(jnp.isfinite(leaf))), model.name
                    assert leaf.size // n <= 12, (model.name, leaf.shape)
            jac = jax.jacrev(f)(inst.params, inst.x1)
            assert all(bool(jnp.all(jnp.isfinite(j))) for j in tree.tree_leaves(jac))
            if model.batch_independent:
                full = f(inst.params, inst.x1)
                for i in range(3):
                    x_i = tree.tree_map(lambda a, i=i: a[i:i + 1], inst.x1)
                    single = f(inst.params, x_i)
                    tree.tree_map(
                        lambda a, b, i=i, name=model.name: _assert_close(a[i], b[0], tol, name),
                        full, single)
            if verbose and dtype == jnp.float64:
                n_params = sum(leaf.size for leaf in tree.tree_leaves(inst.params))
                shapes = tree.tree_map(lambda a: tuple(a.shape), f(inst.params, inst.x1))
                print(f"{model.name:32s} params={n_params:5d} out={shapes}")
    if verbose:
        print(f"smoke check passed for {len(ZOO)} models (float32 and float64)")


def _assert_close(a, b, tol, name):
    """Raise AssertionError if arrays ``a`` and ``b`` differ beyond ``tol``."""
    if not bool(jnp.allclose(a, b, rtol=tol, atol=tol)):
        raise AssertionError(f"{name}: single-example output differs from batched")


if __name__ == "__main__":
    _smoke()

"""A zoo of small JAX models for testing and benchmarking NTK computations.

Every model is a pure function ``f(params, x, **kwargs)`` (defined in
:mod:`ntkc.zoo_models`) whose inputs and outputs carry the batch on axis 0 of
every leaf. Models are deliberately tiny (at most a few hundred parameters, at
most 12 outputs per example) so that a brute-force ``jax.jacrev`` oracle in
float64 stays cheap.

Usage::

    from ntkc import testing
    for model in testing.ZOO.values():
        inst = model.make(jax.random.PRNGKey(0), dtype=jnp.float64)
        out = inst.f(inst.params, inst.x1, **inst.kwargs)

Random values are drawn with NumPy from a generator seeded by the bits of the
JAX key: this is deterministic per key and avoids compiling one XLA program per
random shape (which made ``make`` take seconds). Values are drawn in float64
and then cast, so a float32 instance is exactly the float64 one rounded (the
float32 results can be compared with a float64 oracle). ``params`` and the two
input batches use independent streams, so ``x1`` does not depend on ``n2`` and
the first rows of ``x1`` do not depend on ``n1``.

Nothing here touches ``jax.config`` except the self-check, run with
``python -m ntkc.testing``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ntkc import zoo_models as zm

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
    """Return the zoo model called ``name``; KeyError lists the valid names."""
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; valid names: {', '.join(ZOO)}") from None


def _register(name, description, *, batch_independent=True, tags=()):
    """Decorator adding a ``make`` function to ``ZOO`` under ``name``."""

    def decorator(make):
        if name in ZOO:
            raise ValueError(f"duplicate zoo model name {name!r}")
        ZOO[name] = ZooModel(name=name, description=description, make=make,
                             batch_independent=batch_independent, tags=tuple(tags))
        return make

    return decorator


# ----------------------------------------------------------------------------
# Random initialisation.


class _Rng:
    """Deterministic NumPy sampler seeded by a JAX key and a stream id.

    Produces ``jnp`` arrays of ``dtype``; weights are standard normal scaled by
    ``1/sqrt(fan_in)`` and biases are small (``0.1 *`` normal) but non-zero so
    that they contribute to the NTK.
    """

    def __init__(self, key, dtype, batch=0, leaf=0):
        # Streams: batch 0 = params, 1 = x1, 2 = x2; leaf indexes dict inputs.
        seed = np.asarray(jax.random.key_data(key)).ravel().tolist()
        self._gen = np.random.default_rng(seed + [batch, leaf])
        self._dtype = np.dtype(dtype)

    def _cast(self, values):
        return jnp.asarray(values.astype(self._dtype))

    def normal(self, *shape, scale=1.0, offset=0.0):
        """``offset + scale * standard_normal(shape)``, computed in float64 then
        cast, so float32 values are exactly the float64 ones rounded."""
        return self._cast(offset + scale * self._gen.standard_normal(shape))

    def weight(self, *shape, fan_in):
        """Normal weight of ``shape`` scaled by ``1/sqrt(fan_in)``."""
        return self.normal(*shape, scale=1.0 / math.sqrt(fan_in))

    def bias(self, *shape):
        """Small non-zero bias of ``shape``."""
        return self.normal(*shape, scale=0.1)

    def dense(self, fan_in, fan_out, bias=True):
        """Dense layer ``{"w": (fan_in, fan_out), "b": (fan_out,)}`` (``b`` optional)."""
        layer = {"w": self.weight(fan_in, fan_out, fan_in=fan_in)}
        if bias:
            layer["b"] = self.bias(fan_out)
        return layer

    def conv(self, *shape, fan_in):
        """Convolution kernel of ``shape`` scaled by ``1/sqrt(fan_in)``."""
        return self.weight(*shape, fan_in=fan_in)

    def ints(self, *shape, high):
        """Integer ids in ``[0, high)`` of ``shape`` as int32."""
        return jnp.asarray(self._gen.integers(0, high, size=shape).astype(np.int32))


def _inputs(key, dtype, n, shape, batch):
    """Standard normal batch of ``n`` inputs of per-example ``shape``.

    ``shape`` is a tuple, or a dict of tuples for dict inputs; every leaf uses
    its own stream (identified by ``batch``, 1 for x1 and 2 for x2).
    """
    if isinstance(shape, dict):
        return {name: _Rng(key, dtype, batch, index).normal(n, *leaf_shape)
                for index, (name, leaf_shape) in enumerate(shape.items())}
    return _Rng(key, dtype, batch).normal(n, *shape)


def _instance(f, params, key, dtype, n1, n2, shape, kwargs=None):
    """ZooInstance with standard normal inputs of per-example ``shape``."""
    return ZooInstance(f=f, params=params, x1=_inputs(key, dtype, n1, shape, 1),
                       x2=_inputs(key, dtype, n2, shape, 2), kwargs=dict(kwargs or {}))


def _mlp_params(rng, sizes, bias=True):
    """``{"hidden": [...], "head": layer}`` for layer widths ``sizes``."""
    layers = [rng.dense(fan_in, fan_out, bias) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
    return {"hidden": layers[:-1], "head": layers[-1]}


# ----------------------------------------------------------------------------
# Dense models.


@_register("mlp", "tanh MLP 4-8-8-3 with biases.", tags=("dense",))
def _make_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    params = _mlp_params(_Rng(key, dtype), (4, 8, 8, 3))
    return _instance(zm.mlp, params, key, dtype, n1, n2, (4,))


@_register("mlp_nobias", "tanh MLP 4-8-8-3 without biases.", tags=("dense",))
def _make_mlp_nobias(key, dtype=jnp.float32, n1=3, n2=2):
    params = _mlp_params(_Rng(key, dtype), (4, 8, 8, 3), bias=False)
    return _instance(zm.mlp, params, key, dtype, n1, n2, (4,))


@_register("deep_mlp", "Narrow gelu MLP: 10 dense layers of width 5, output 2.",
           tags=("dense", "deep"))
def _make_deep_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    params = _mlp_params(_Rng(key, dtype), (3,) + (5,) * 9 + (2,))
    return _instance(zm.deep_mlp, params, key, dtype, n1, n2, (3,))


# ----------------------------------------------------------------------------
# Convolutional models.


@_register("conv_same_nhwc", "NHWC 3x3 SAME conv (2->3 ch) on 5x5, flatten, dense->3.",
           tags=("conv",))
def _make_conv_same_nhwc(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 2, 3, fan_in=18), "head": rng.dense(5 * 5 * 3, 3)}
    return _instance(zm.conv_same_nhwc, params, key, dtype, n1, n2, (5, 5, 2))


@_register("conv_valid_strided_dilated",
           "NHWC VALID conv, strides (2,2), rhs_dilation (2,1) on 8x8x2, dense->3.",
           tags=("conv",))
def _make_conv_valid_strided_dilated(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    # Effective kernel 5x3 -> output spatial ((8-5)//2+1, (8-3)//2+1) = (2, 3).
    params = {"conv": rng.conv(3, 3, 2, 3, fan_in=18), "head": rng.dense(2 * 3 * 3, 3)}
    return _instance(zm.conv_valid_strided_dilated, params, key, dtype, n1, n2, (8, 8, 2))


@_register("conv_nchw", "NCHW/OIHW 3x3 conv, asymmetric explicit padding, dense->3.",
           tags=("conv",))
def _make_conv_nchw(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    # Input (2, 5, 5); padded (6, 6); output (3, 4, 4).
    params = {"conv": rng.conv(3, 2, 3, 3, fan_in=18), "head": rng.dense(3 * 4 * 4, 3)}
    return _instance(zm.conv_nchw, params, key, dtype, n1, n2, (2, 5, 5))


@_register("avg_pool_cnn", "Conv, 2x2 average pool (reduce_window add / 4), dense->3.",
           tags=("conv", "pool"))
def _make_avg_pool_cnn(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 2, 3, fan_in=18), "head": rng.dense(3 * 3 * 3, 3)}
    return _instance(zm.avg_pool_cnn, params, key, dtype, n1, n2, (6, 6, 2))


@_register("global_pool_cnn", "Conv with bias, global spatial mean, dense->3.",
           tags=("conv", "pool"))
def _make_global_pool_cnn(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 3, 4, fan_in=27), "conv_b": rng.bias(4),
              "head": rng.dense(4, 3)}
    return _instance(zm.global_pool_cnn, params, key, dtype, n1, n2, (6, 6, 3))


@_register("conv_grouped", "Grouped conv (feature_group_count=2, 4->4 ch) on 4x4, dense->3.",
           tags=("conv",))
def _make_conv_grouped(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 2, 4, fan_in=18), "head": rng.dense(4 * 4 * 4, 3)}
    return _instance(zm.conv_grouped, params, key, dtype, n1, n2, (4, 4, 4))


@_register("conv_lhs_dilated", "Transposed-style conv (lhs_dilation (2,2)) 3x3 -> 5x5, dense->3.",
           tags=("conv",))
def _make_conv_lhs_dilated(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    # Dilated input 5x5, padded 7x7, 3x3 kernel -> 5x5 output with 2 channels.
    params = {"conv": rng.conv(3, 3, 2, 2, fan_in=18), "head": rng.dense(5 * 5 * 2, 3)}
    return _instance(zm.conv_lhs_dilated, params, key, dtype, n1, n2, (3, 3, 2))


@_register("conv_image_out", "Two NHWC convs, no flatten: output (n, 2, 2, 2).",
           tags=("conv", "image_out"))
def _make_conv_image_out(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"conv1": rng.conv(3, 3, 2, 3, fan_in=18), "conv2": rng.conv(3, 3, 3, 2, fan_in=27)}
    return _instance(zm.conv_image_out, params, key, dtype, n1, n2, (4, 4, 2))


@_register("conv1d_nwc", "1D NWC conv on length 6, strided slice of features, matmul->2.",
           tags=("conv",))
def _make_conv1d_nwc(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"conv": rng.conv(3, 2, 3, fan_in=6), "head": rng.weight(6, 2, fan_in=6)}
    return _instance(zm.conv1d_nwc, params, key, dtype, n1, n2, (6, 2))


@_register("broadcast_bias", "Conv with (1,1,1,C) bias and dense with (1,3) bias.",
           tags=("conv", "broadcast"))
def _make_broadcast_bias(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 2, 3, fan_in=18), "conv_b": rng.bias(1, 1, 1, 3),
              "head_w": rng.weight(4 * 4 * 3, 3, fan_in=48), "head_b": rng.bias(1, 3)}
    return _instance(zm.broadcast_bias, params, key, dtype, n1, n2, (4, 4, 2))


# ----------------------------------------------------------------------------
# Normalisation, residual, attention, weight sharing.


@_register("layer_norm_mlp", "Dense 4->8, layer norm with learned scale/bias, dense->3.",
           tags=("dense", "norm"))
def _make_layer_norm_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"in": rng.dense(4, 8), "ln_scale": rng.normal(8, scale=0.1, offset=1.0),
              "ln_bias": rng.bias(8), "out": rng.dense(8, 3)}
    return _instance(zm.layer_norm_mlp, params, key, dtype, n1, n2, (4,))


@_register("residual_block", "Dense 4->6, residual h + W2 tanh(W1 h + b1), dense->3.",
           tags=("dense", "residual"))
def _make_residual_block(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"in": rng.dense(4, 6), "w1": rng.dense(6, 6), "w2": rng.dense(6, 6, bias=False),
              "head": rng.dense(6, 3)}
    return _instance(zm.residual_block, params, key, dtype, n1, n2, (4,))


@_register("attention", "Single-head self-attention, T=4, d=4; output (n, 4, 2).",
           tags=("attention", "multi_axis_out"))
def _make_attention(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {name: rng.weight(4, 4, fan_in=4) for name in ("wq", "wk", "wv")}
    params["wo"] = rng.weight(4, 2, fan_in=4)
    return _instance(zm.attention, params, key, dtype, n1, n2, (4, 4))


@_register("weight_sharing", "One square 6x6 matrix applied three times, dense->3.",
           tags=("dense", "shared"))
def _make_weight_sharing(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"in": rng.dense(4, 6), "shared": rng.weight(6, 6, fan_in=6), "head": rng.dense(6, 3)}
    return _instance(zm.weight_sharing, params, key, dtype, n1, n2, (4,))


# ----------------------------------------------------------------------------
# Structural ops and pytrees.


@_register("reshape_transpose_concat_slice",
           "Reshape/transpose/concat/slice of activations; transposed and reshaped params.",
           tags=("structural",))
def _make_reshape_transpose_concat_slice(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"w_t": rng.weight(8, 6, fan_in=6), "v_flat": rng.weight(27, fan_in=9)}
    return _instance(zm.reshape_transpose_concat_slice, params, key, dtype, n1, n2, (6,))


@_register("pytree_out", "Dict output {'logits': (n, 3), 'aux': (n, 2, 2)}.",
           tags=("pytree_out",))
def _make_pytree_out(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"trunk": rng.dense(4, 6), "logits": rng.dense(6, 3),
              "aux": rng.weight(6, 4, fan_in=6)}
    return _instance(zm.pytree_out, params, key, dtype, n1, n2, (4,))


@_register("pytree_params_unused",
           "Nested dict/list params incl. a leaf f never uses (zero NTK contribution).",
           tags=("pytree_params",))
def _make_pytree_params_unused(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {
        "body": {"layers": [rng.dense(4, 5), rng.dense(5, 5, bias=False)],
                 "unused": rng.weight(3, 2, fan_in=3)},
        "head": [{"w": rng.weight(5, 3, fan_in=5)},
                 {"gain": rng.normal(3, scale=0.1, offset=1.0)}],
    }
    return _instance(zm.pytree_params_unused, params, key, dtype, n1, n2, (4,))


@_register("scalar_output", "MLP with a per-example scalar output: shape (n,).",
           tags=("dense", "scalar_out"))
def _make_scalar_output(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"hidden": rng.dense(4, 8), "w_out": rng.weight(8, fan_in=8), "b_out": rng.bias()}
    return _instance(zm.scalar_output, params, key, dtype, n1, n2, (4,))


_VOCAB = 7
_SEQ = 5
_EMB_DIM = 4


@_register("embedding", "Embedding table (7, 4) gathered by int32 ids (n, 5), dense->3.",
           tags=("gather", "int_input"))
def _make_embedding(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"emb": rng.normal(_VOCAB, _EMB_DIM), "head": rng.dense(_EMB_DIM * (1 + _SEQ), 3)}
    return ZooInstance(f=zm.embedding, params=params,
                       x1=_Rng(key, dtype, 1).ints(n1, _SEQ, high=_VOCAB),
                       x2=_Rng(key, dtype, 2).ints(n2, _SEQ, high=_VOCAB))


@_register("kwargs_model", "MLP f(params, x, *, scale) with kwargs {'scale': 0.5}.",
           tags=("kwargs",))
def _make_kwargs_model(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"hidden": rng.dense(4, 6), "head": rng.dense(6, 3)}
    return _instance(zm.kwargs_model, params, key, dtype, n1, n2, (4,), kwargs={"scale": 0.5})


@_register("pytree_input", "Dict input {'a': (n, 3), 'b': (n, 2)}, dense->3.",
           tags=("pytree_in",))
def _make_pytree_input(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"wa": rng.weight(3, 6, fan_in=5), "wb": rng.weight(2, 6, fan_in=5),
              "b": rng.bias(6), "head": rng.dense(6, 3)}
    return _instance(zm.pytree_input, params, key, dtype, n1, n2, {"a": (3,), "b": (2,)})


@_register("batch_coupled", "MLP subtracting the batch mean of its hidden layer.",
           batch_independent=False, tags=("batch_coupled",))
def _make_batch_coupled(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    params = {"hidden": rng.dense(4, 6), "shift": rng.bias(6), "head": rng.dense(6, 3)}
    return _instance(zm.batch_coupled, params, key, dtype, n1, n2, (4,))


# ----------------------------------------------------------------------------
# Self-check.


def _assert_close(a, b, tol, name):
    """Raise AssertionError if arrays ``a`` and ``b`` differ beyond ``tol``."""
    if not np.allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol):
        raise AssertionError(f"{name}: single-example output differs from batched")


def _check(model, dtype, seed, verbose):
    """Build ``model`` in ``dtype`` and check shapes, dtypes, finiteness,
    ``jax.jacrev`` w.r.t. params and (if batch independent) row consistency."""
    tree = jax.tree_util
    inst = model.make(jax.random.PRNGKey(seed), dtype=dtype)
    assert all(leaf.dtype == dtype for leaf in tree.tree_leaves(inst.params)), model.name
    f = jax.jit(lambda p, x: inst.f(p, x, **inst.kwargs))
    for x, n in ((inst.x1, 3), (inst.x2, 2)):
        for leaf in tree.tree_leaves(f(inst.params, x)):
            assert leaf.shape[0] == n and leaf.dtype == dtype, (model.name, leaf.shape)
            assert np.all(np.isfinite(leaf)), model.name
            assert leaf.size // n <= 12, (model.name, leaf.shape)
    jac = jax.jit(jax.jacrev(f))(inst.params, inst.x1)
    assert all(np.all(np.isfinite(leaf)) for leaf in tree.tree_leaves(jac)), model.name
    full = f(inst.params, inst.x1)
    if model.batch_independent:
        tol = 1e-5 if dtype == jnp.float32 else 1e-12
        for i in range(3):
            single = f(inst.params, tree.tree_map(lambda a, i=i: a[i:i + 1], inst.x1))
            tree.tree_map(lambda a, b, i=i: _assert_close(a[i], b[0], tol, model.name),
                          full, single)
    if verbose:
        n_params = sum(leaf.size for leaf in tree.tree_leaves(inst.params))
        shapes = tree.tree_map(lambda a: tuple(a.shape), full)
        print(f"{model.name:32s} params={n_params:4d} out={shapes}")


def _smoke(verbose=True):
    """Check every zoo model in float32 and float64 (enables x64)."""
    jax.config.update("jax_enable_x64", True)
    for dtype in (jnp.float32, jnp.float64):
        for seed, model in enumerate(ZOO.values()):
            _check(model, dtype, seed, verbose=verbose and dtype == jnp.float64)
    if verbose:
        print(f"smoke check passed for {len(ZOO)} models (float32 and float64)")


if __name__ == "__main__":
    _smoke()


# ----------------------------------------------------------------------------
# Parameters transformed before use.


@_register("ntk_param_mlp", "NTK-parameterized tanh MLP 3-6-6 ((out, in) weights scaled and "
           "transposed; scaled biases), head ->2.", tags=("dense", "propagation"))
def _make_ntk_param_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    layers = [{"w": rng.normal(6, m), "b": rng.bias(6)} for m in (3, 6)]
    params = {"layers": layers, "head": rng.weight(6, 2, fan_in=6)}
    return _instance(zm.ntk_param_mlp, params, key, dtype, n1, n2, (3,))


@_register("vit_tokens", "ViT-style tokens: patch embedding, concatenated class token, position "
           "embeddings, token mixing, padded/sliced head, where-gated readout.",
           tags=("concatenate", "pad", "slice", "select_n", "propagation"))
def _make_vit_tokens(key, dtype=jnp.float32, n1=3, n2=2):
    rng = _Rng(key, dtype)
    d = 3
    params = {"embed": rng.weight(4, d, fan_in=4), "cls": rng.normal(1, 1, d),
              "pos": rng.normal(5, d, scale=0.1), "mix": rng.weight(5, 5, fan_in=5),
              "head": rng.weight(d, 2, fan_in=d)}
    return _instance(zm.vit_tokens, params, key, dtype, n1, n2, (4, 4))


# Models with control flow and transformations register themselves (they use the helpers above).
from ntkc import zoo_control  # noqa: E402,F401

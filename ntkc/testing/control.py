"""Zoo models with control flow and transformations: scan, fori_loop, cond, remat, custom_jvp,
max-pooling, multi-output primitives, and an embedding + transformer block.

Registered into :data:`ntkc.testing.ZOO` on import (``ntkc.testing`` imports it), so every
test looping over the zoo covers them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from ntkc.testing.models import dense, flatten
from ntkc.testing.zoo import Rng, ZooInstance, instance, register

_LAYERS, _WIDTH, _STEPS = 3, 4, 4


def scan_mlp(params, x):
    """Scan over layers: stacked ``w: (L, W, W)``, ``b: (L, W)``; tanh; dense head."""
    def layer(h, wb):
        w, b = wb
        return jnp.tanh(h @ w + b), None

    h, _ = lax.scan(layer, dense(params["in"], x), (params["w"], params["b"]))
    return dense(params["head"], h)


def rnn_scan(params, x):
    """Elman RNN over ``x: (n, T, 2)`` with shared weights; dense head on the last state."""
    def step(h, x_t):
        return jnp.tanh(h @ params["wh"] + x_t @ params["wx"] + params["b"]), h

    h0 = jnp.zeros(x.shape[:1] + (params["wh"].shape[0],), x.dtype)
    h, _ = lax.scan(step, h0, jnp.swapaxes(x, 0, 1))
    return dense(params["head"], h)


def fori_mlp(params, x):
    """``h = sin(h @ shared)`` three times in a ``fori_loop`` (static bounds)."""
    h = lax.fori_loop(0, 3, lambda i, h: jnp.sin(h @ params["shared"]), dense(params["in"], x))
    return dense(params["head"], h)


def cond_model(params, x):
    """Per example: ``tanh(x @ a)`` if ``sum(x) > 0`` else ``x @ a / (1 + (x @ c)²)``."""
    def one(x_i):
        return lax.cond(jnp.sum(x_i) > 0,
                        lambda v: jnp.tanh(v @ params["a"]),
                        lambda v: (v @ params["a"]) / (1.0 + (v @ params["c"]) ** 2), x_i)

    return dense(params["head"], jax.vmap(one)(x))


def remat_block(params, x):
    """A residual block under ``jax.checkpoint``."""
    block = jax.checkpoint(lambda h: h + dense(params["w2"], jnp.tanh(dense(params["w1"], h))))
    return dense(params["head"], block(dense(params["in"], x)))


@jax.custom_jvp
def softplus(z):
    return jnp.logaddexp(z, 0.0)


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    return softplus(z), jax.nn.sigmoid(z) * dz


def custom_jvp_mlp(params, x):
    """MLP with a ``custom_jvp`` softplus activation."""
    return dense(params["head"], softplus(dense(params["hidden"], x)))


def max_pool_cnn(params, x):
    """3×3 conv (4 ch) → relu → 2×2 max-pool, stride 2 → dense."""
    h = jax.nn.relu(lax.conv_general_dilated(x, params["conv"], (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")))
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return dense(params["head"], flatten(h))


def split_model(params, x):
    """``jnp.split`` (the multi-output ``split`` primitive) into three parts, mixed back."""
    a, b, c = jnp.split(dense(params["in"], x), 3, axis=-1)
    return dense(params["head"], jnp.concatenate([jnp.tanh(a) * b, c], axis=-1))


def token_transformer(params, ids):
    """Embedding of int ids ``(n, T)`` + positions → pre-norm self-attention block → MLP →
    mean over tokens → dense head."""
    h = params["emb"][ids] + params["pos"]

    def norm(v):
        mean = jnp.mean(v, axis=-1, keepdims=True)
        return (v - mean) * lax.rsqrt(jnp.mean((v - mean) ** 2, axis=-1, keepdims=True) + 1e-5)

    q, k, v = (norm(h) @ params[w] for w in ("wq", "wk", "wv"))
    weights = jax.nn.softmax(jnp.einsum("ntd,nsd->nts", q, k) / math.sqrt(q.shape[-1]), axis=-1)
    h = h + jnp.einsum("nts,nsd->ntd", weights, v) @ params["wo"]
    h = h + jax.nn.gelu(norm(h) @ params["up"]) @ params["down"]
    return dense(params["head"], jnp.mean(h, axis=1))


@register("scan_mlp", "Scan over 3 layers with stacked (3, 4, 4) weights and (3, 4) biases.",
           tags=("scan", "stacked"))
def _make_scan_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"in": rng.dense(3, _WIDTH), "w": rng.weight(_LAYERS, _WIDTH, _WIDTH, fan_in=_WIDTH),
              "b": rng.bias(_LAYERS, _WIDTH), "head": rng.dense(_WIDTH, 2)}
    return instance(scan_mlp, params, key, dtype, n1, n2, (3,))


@register("rnn_scan", "Elman RNN (scan over 4 steps, shared weights), inputs (n, 4, 2).",
           tags=("scan", "weight_sharing"))
def _make_rnn_scan(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"wh": rng.weight(_WIDTH, _WIDTH, fan_in=_WIDTH), "wx": rng.weight(2, _WIDTH, fan_in=2),
              "b": rng.bias(_WIDTH), "head": rng.dense(_WIDTH, 2)}
    return instance(rnn_scan, params, key, dtype, n1, n2, (_STEPS, 2))


@register("fori_mlp", "fori_loop(0, 3) of sin(h @ shared), dense in/out.", tags=("fori_loop", "weight_sharing"))
def _make_fori_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"in": rng.dense(3, _WIDTH), "shared": rng.weight(_WIDTH, _WIDTH, fan_in=_WIDTH),
              "head": rng.dense(_WIDTH, 2)}
    return instance(fori_mlp, params, key, dtype, n1, n2, (3,))


@register("cond_model", "Per-example lax.cond between a tanh layer and a rational layer.",
           tags=("cond",))
def _make_cond_model(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"a": rng.weight(3, _WIDTH, fan_in=3), "c": rng.weight(3, _WIDTH, fan_in=3),
              "head": rng.dense(_WIDTH, 2)}
    return instance(cond_model, params, key, dtype, n1, n2, (3,))


@register("remat_block", "Residual block under jax.checkpoint.", tags=("remat",))
def _make_remat_block(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"in": rng.dense(3, _WIDTH), "w1": rng.dense(_WIDTH, _WIDTH), "w2": rng.dense(_WIDTH, _WIDTH),
              "head": rng.dense(_WIDTH, 2)}
    return instance(remat_block, params, key, dtype, n1, n2, (3,))


@register("custom_jvp_mlp", "MLP with a custom_jvp softplus.", tags=("custom_jvp",))
def _make_custom_jvp_mlp(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"hidden": rng.dense(3, 5), "head": rng.dense(5, 2)}
    return instance(custom_jvp_mlp, params, key, dtype, n1, n2, (3,))


@register("max_pool_cnn", "Conv 3x3 (4 ch), relu, 2x2 max-pool, dense->2 on 4x4x2 images.",
           tags=("conv", "max_pool"))
def _make_max_pool_cnn(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"conv": rng.conv(3, 3, 2, 4, fan_in=18), "head": rng.dense(16, 2)}
    return instance(max_pool_cnn, params, key, dtype, n1, n2, (4, 4, 2))


@register("split_model", "jnp.split into three (multi-output primitive), mixed, dense->2.",
           tags=("multi_output",))
def _make_split_model(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    params = {"in": rng.dense(3, 6), "head": rng.dense(4, 2)}
    return instance(split_model, params, key, dtype, n1, n2, (3,))


@register("token_transformer", "Embedding (6, 4) of int ids (n, 3) + positions, pre-norm "
           "attention and gelu MLP blocks, mean-pooled head->2.", tags=("gather", "int_input", "attention"))
def _make_token_transformer(key, dtype=jnp.float32, n1=3, n2=2):
    rng = Rng(key, dtype)
    d = 4
    params = {"emb": rng.normal(6, d), "pos": rng.normal(3, d, scale=0.1),
              **{w: rng.weight(d, d, fan_in=d) for w in ("wq", "wk", "wv", "wo")},
              "up": rng.weight(d, 2 * d, fan_in=d), "down": rng.weight(2 * d, d, fan_in=2 * d),
              "head": rng.dense(d, 2)}
    return ZooInstance(f=token_transformer, params=params, x1=Rng(key, dtype, 1).ints(n1, 3, high=6),
                       x2=Rng(key, dtype, 2).ints(n2, 3, high=6))

"""The paper's Figure 2/4 model families, written in Flax (``flax.linen``), at CPU sizes.

Each family takes a ``width`` (the base channel count or hidden size, the knob that the
benchmark presets scale) and the number of logits ``outputs``; images are NHWC.

* ``resnet18`` / ``resnet50``: ResNet v1 with basic blocks (2, 2, 2, 2) / bottleneck blocks
  (3, 4, 6, 3), a CIFAR stem (3×3 conv, stride 1, no max-pool), channels ``width·(1, 2, 4, 8)``
  (the original architecture is ``width=64``).
* ``wide_resnet``: WRN-16-k, pre-activation blocks, channels ``width·(1, 2, 4)`` (``width=16·k``).
* ``vit``: a small ViT: 4×4 patches, ``width`` hidden units, 4 blocks of 4-head self-attention
  and an MLP (``2·width``), pre-LayerNorm, learned position embeddings, mean-pooled tokens.
* ``mixer``: an MLP-Mixer: 4×4 patches, ``width`` channels, 4 blocks of token- and channel-
  mixing MLPs (``width`` / ``2·width`` hidden), pre-LayerNorm, mean-pooled tokens.
* ``transformer``: a pre-LayerNorm transformer on 16 tokens of 8 features (no image): a token
  embedding ``8 → width``, learned positions, 2 blocks of 4-head self-attention and a GELU MLP
  (``4·width``), mean-pooled tokens.

BatchNorm runs with its running statistics (``use_running_average=True``, the statistics of a
fresh initialisation), so every model is a per-example function and ``vmap_axes=0`` holds.

Usage::

    f, params, x1, x2 = make("resnet18", width=16, outputs=10, batch=4, image=32)
    f(params, x1).shape            # (4, 10)
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

FAMILIES = ("resnet18", "resnet50", "wide_resnet", "vit", "mixer", "transformer")


def _norm() -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=True)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a projection shortcut when the shape changes."""
    channels: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        y = nn.relu(_norm()(nn.Conv(self.channels, (3, 3), self.stride, use_bias=False)(x)))
        y = _norm()(nn.Conv(self.channels, (3, 3), use_bias=False)(y))
        if x.shape != y.shape:
            x = _norm()(nn.Conv(self.channels, (1, 1), self.stride, use_bias=False)(x))
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3, 1×1 expand (×4), with a projection shortcut when the shape changes."""
    channels: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        y = nn.relu(_norm()(nn.Conv(self.channels, (1, 1), use_bias=False)(x)))
        y = nn.relu(_norm()(nn.Conv(self.channels, (3, 3), self.stride, use_bias=False)(y)))
        y = _norm()(nn.Conv(4 * self.channels, (1, 1), use_bias=False)(y))
        if x.shape != y.shape:
            x = _norm()(nn.Conv(4 * self.channels, (1, 1), self.stride, use_bias=False)(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    """ResNet v1 with a CIFAR stem; ``block`` and ``stages`` pick ResNet-18 or ResNet-50."""
    block: type
    stages: Sequence[int]
    width: int
    outputs: int

    @nn.compact
    def __call__(self, x):
        x = nn.relu(_norm()(nn.Conv(self.width, (3, 3), use_bias=False)(x)))
        for i, blocks in enumerate(self.stages):
            for j in range(blocks):
                x = self.block(self.width * 2**i, stride=2 if i > 0 and j == 0 else 1)(x)
        return nn.Dense(self.outputs)(jnp.mean(x, axis=(1, 2)))


class WideBlock(nn.Module):
    """Pre-activation wide block: BN-ReLU-conv twice, projection shortcut when the shape changes."""
    channels: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        a = nn.relu(_norm()(x))
        y = nn.Conv(self.channels, (3, 3), self.stride)(a)
        y = nn.Conv(self.channels, (3, 3))(nn.relu(_norm()(y)))
        if x.shape != y.shape:
            x = nn.Conv(self.channels, (1, 1), self.stride)(a)
        return x + y


class WideResNet(nn.Module):
    """WRN-16-k: three groups of two wide blocks, channels ``width·(1, 2, 4)``."""
    width: int
    outputs: int
    blocks: int = 2

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(16, (3, 3))(x)
        for i in range(3):
            for j in range(self.blocks):
                x = WideBlock(self.width * 2**i, stride=2 if i > 0 and j == 0 else 1)(x)
        x = nn.relu(_norm()(x))
        return nn.Dense(self.outputs)(jnp.mean(x, axis=(1, 2)))


def _patches(x, width: int, patch: int):
    """Non-overlapping ``patch×patch`` patches embedded to ``width``, as (tokens, width)."""
    x = nn.Conv(width, (patch, patch), patch)(x)
    return x.reshape(x.shape[0], -1, width)


class ViTBlock(nn.Module):
    width: int
    heads: int

    @nn.compact
    def __call__(self, x):
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(nn.LayerNorm()(x))
        y = nn.Dense(2 * self.width)(nn.LayerNorm()(x))
        return x + nn.Dense(self.width)(nn.gelu(y))


class ViT(nn.Module):
    """Small ViT: patch embedding, learned positions, ``depth`` blocks, mean-pooled head."""
    width: int
    outputs: int
    depth: int = 4
    heads: int = 4
    patch: int = 4

    @nn.compact
    def __call__(self, x):
        x = _patches(x, self.width, self.patch)
        x = x + self.param("position", nn.initializers.normal(0.02), x.shape[1:])
        for _ in range(self.depth):
            x = ViTBlock(self.width, self.heads)(x)
        return nn.Dense(self.outputs)(jnp.mean(nn.LayerNorm()(x), axis=1))


class MixerBlock(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
        y = jnp.swapaxes(nn.LayerNorm()(x), 1, 2)
        y = nn.Dense(x.shape[1])(nn.gelu(nn.Dense(self.width)(y)))
        x = x + jnp.swapaxes(y, 1, 2)
        y = nn.Dense(self.width)(nn.gelu(nn.Dense(2 * self.width)(nn.LayerNorm()(x))))
        return x + y


class Mixer(nn.Module):
    """MLP-Mixer: patch embedding, ``depth`` mixer blocks, mean-pooled head."""
    width: int
    outputs: int
    depth: int = 4
    patch: int = 4

    @nn.compact
    def __call__(self, x):
        x = _patches(x, self.width, self.patch)
        for _ in range(self.depth):
            x = MixerBlock(self.width)(x)
        return nn.Dense(self.outputs)(jnp.mean(nn.LayerNorm()(x), axis=1))


class TokenTransformer(nn.Module):
    """Pre-LayerNorm transformer on token vectors: an embedding of each token (a Dense of its
    features), learned positions, ``depth`` blocks of ``heads``-head self-attention and a GELU
    MLP of width ``4·width``, mean-pooled, a Dense head."""
    width: int
    outputs: int
    depth: int = 2
    heads: int = 4

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.width)(x)
        x = x + self.param("position", nn.initializers.normal(0.02), x.shape[1:])
        for _ in range(self.depth):
            x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(nn.LayerNorm()(x))
            y = nn.Dense(4 * self.width)(nn.LayerNorm()(x))
            x = x + nn.Dense(self.width)(nn.gelu(y))
        return nn.Dense(self.outputs)(jnp.mean(x, axis=1))


#: Token inputs of the transformer family: (tokens, features) per example.
TOKENS = (16, 8)


def module(family: str, width: int, outputs: int) -> nn.Module:
    """The Flax module of one family (see the module docstring)."""
    if family == "resnet18":
        return ResNet(BasicBlock, (2, 2, 2, 2), width, outputs)
    if family == "resnet50":
        return ResNet(Bottleneck, (3, 4, 6, 3), width, outputs)
    if family == "wide_resnet":
        return WideResNet(width, outputs)
    if family == "vit":
        return ViT(width, outputs)
    if family == "mixer":
        return Mixer(width, outputs)
    if family == "transformer":
        return TokenTransformer(width, outputs)
    raise ValueError(f"unknown Flax family {family!r}; known: {FAMILIES}")


def _initialise(shapes, rng):
    """Variables of these shapes, drawn with numpy: kernels ``normal / sqrt(fan_in)`` (all axes
    but the last), scales and variances 1, biases and means 0, anything else ``0.02·normal``.
    (Flax's own ``model.init`` takes XLA ~20 s to compile for a ResNet-18 on this CPU.)"""

    def leaf(path, s):
        name = path[-1].key
        if name == "kernel":
            values = rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1]))
        elif name in ("scale", "var"):
            values = np.ones(s.shape)
        elif name in ("bias", "mean"):
            values = np.zeros(s.shape)
        else:
            values = 0.02 * rng.normal(size=s.shape)
        return jnp.asarray(values, s.dtype)

    return jax.tree_util.tree_map_with_path(leaf, shapes)


def make(family: str, width: int, outputs: int, batch: int, image: int = 32, seed: int = 0):
    """``(f, params, x1, x2)`` with ``f(params, x) = model.apply({'params': params, **state}, x)``.

    ``x1`` and ``x2`` are ``batch`` random ``image×image×3`` images each (float32).
    """
    model = module(family, width, outputs)
    rng = np.random.default_rng(seed)
    shape = TOKENS if family == "transformer" else (image, image, 3)
    x1, x2 = (jnp.asarray(rng.normal(size=(batch,) + shape), jnp.float32) for _ in range(2))
    variables = _initialise(jax.eval_shape(model.init, jax.random.PRNGKey(seed), x1[:1]), rng)
    state = {k: v for k, v in variables.items() if k != "params"}

    def f(params, x):
        return model.apply({"params": params, **state}, x)

    return f, variables["params"], x1, x2

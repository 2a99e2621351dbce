"""The models of the tiled-kernel benchmark, in plain JAX (they run under ntkc's JAX and under
neural-tangents 0.6.5's older one alike).

* ``mlp``: the paper's 10-layer ReLU MLP, inputs of size 3, width 512, 10 outputs.
* ``cnn``: a CIFAR-shaped CNN (32×32×3 images): four 3×3 convolutions (32, 64, 64 stride 2,
  64 channels, ReLU), global average pooling, a dense layer to 10 outputs — 93,888 parameters.

``make(model, n, seed=0) -> (f, params, x)`` with ``n`` float32 examples; the kernel benchmarked
is the traced one (``trace_axes=(-1,)``: the logits averaged), ``vmap_axes=0``.
"""

from __future__ import annotations

import numpy as np

MODELS = ("mlp", "cnn")


def mlp(params, x):
    import jax

    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def cnn(params, x):
    import jax
    from jax import lax

    for (k, b), stride in zip(params["convs"], (1, 1, 2, 1)):
        x = lax.conv_general_dilated(x, k, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(x + b)
    return x.mean(axis=(1, 2)) @ params["head"]


def make(model: str, n: int, seed: int = 0):
    """``(f, params, x)``: the model, its parameters (NumPy float32) and ``n`` inputs."""
    rng = np.random.default_rng(seed)
    normal = lambda *s: rng.normal(size=s).astype(np.float32)
    if model == "mlp":
        sizes = [3] + [512] * 9 + [10]
        params = [(normal(m, k) / np.sqrt(m), np.zeros(k, np.float32)) for m, k in zip(sizes[:-1], sizes[1:])]
        return mlp, params, normal(n, 3)
    chans = [3, 32, 64, 64, 64]
    convs = [(normal(3, 3, a, b) / np.sqrt(9 * a), np.zeros(b, np.float32)) for a, b in zip(chans[:-1], chans[1:])]
    return cnn, {"convs": convs, "head": normal(64, 10) / 8.0}, normal(n, 32, 32, 3)

"""The NTK of a Flax ResNet: a linen module through ``ntkc.adapters.from_linen``, the cost
report's choice, the kernel by structured derivatives and by Jacobian contraction, timed.

    pip install -e ".[adapters]"
    python examples/flax_resnet.py            # ResNet-18 layout, width 16, 32x32 images, 10 classes
    python examples/flax_resnet.py --small    # a few seconds (what the tests run)
"""

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import ntkc


class Block(nn.Module):
    """Two 3x3 convolutions with batch norm; a 1x1 projection when the shape changes."""
    channels: int
    stride: int = 1

    @nn.compact
    def __call__(self, x, train: bool):
        norm = lambda: nn.BatchNorm(use_running_average=not train)  # noqa: E731
        y = nn.relu(norm()(nn.Conv(self.channels, (3, 3), self.stride, use_bias=False)(x)))
        y = norm()(nn.Conv(self.channels, (3, 3), use_bias=False)(y))
        if x.shape != y.shape:
            x = norm()(nn.Conv(self.channels, (1, 1), self.stride, use_bias=False)(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    """ResNet v1 with a CIFAR stem: ``blocks`` per stage, channels ``width * 2**stage``."""
    blocks: tuple = (2, 2, 2, 2)
    width: int = 16
    classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(self.width, (3, 3), use_bias=False)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
        for stage, n in enumerate(self.blocks):
            for i in range(n):
                x = Block(self.width * 2 ** stage, stride=2 if stage and not i else 1)(x, train)
        return nn.Dense(self.classes)(jnp.mean(x, axis=(1, 2)))


def main(small: bool = False) -> dict:
    if small:
        model, image, batch = ResNet(blocks=(1, 1), width=4), 8, 2
    else:
        model, image, batch = ResNet(), 32, 4
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    x1 = jax.random.normal(k1, (batch, image, image, 3))
    x2 = jax.random.normal(k2, (batch, image, image, 3))
    variables = jax.jit(lambda key, x: model.init(key, x, train=False))(k3, x1)  # one compile, not one per layer

    # f(params, x) differentiates the "params" collection; batch statistics are constants.
    f, params = ntkc.adapters.from_linen(model, variables, train=False)
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
    print(f"ResNet {model.blocks}, width {model.width}: {n_params:,} parameters, {image}x{image} images, "
          f"N1 = N2 = {batch}")

    # What each method will cost, before anything runs.
    report = ntkc.cost_report(f, params, x1, x2, vmap_axes=0, trace_axes=())
    print("method='auto' picks", report.why())

    kernels = {}
    for method in ("structured", "jacobian"):
        c = ntkc.compile(f, params, x1, x2, vmap_axes=0, trace_axes=(), method=method)
        jax.block_until_ready(c(x1, x2, params))
        start = time.perf_counter()
        kernels[method] = np.asarray(jax.block_until_ready(c(x1, x2, params)))
        print(f"{method:<11} {1e3 * (time.perf_counter() - start):8.1f} ms   kernel {kernels[method].shape}")
    scale = np.abs(kernels["jacobian"]).max()
    agree = np.allclose(kernels["structured"], kernels["jacobian"], rtol=1e-3, atol=1e-4 * scale)
    print("structured and jacobian agree:", agree)
    return kernels


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a tiny ResNet (seconds)")
    main(parser.parse_args().small)

"""A dataset's kernel with ``ntkc.ntk_matrix``: inputs read from a memory-mapped ``.npy`` file,
the tile plan under a memory budget, the kernel written tile by tile to a ``.npy`` file that an
interrupted run resumes.

    python examples/large_kernel.py                 # 10,000 examples, 256 MiB per tile
    python examples/large_kernel.py --small         # 300 examples (what the tests run)
    python examples/large_kernel.py --dir /tmp/k    # where x.npy and K.npy go (default: a temp dir)
"""

import argparse
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import ntkc


def mlp(params, x):  # the paper's 10-layer ReLU MLP
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def main(small: bool = False, folder: str | None = None) -> np.ndarray:
    n, width, budget = (300, 64, 16 << 20) if small else (10_000, 512, 256 << 20)
    sizes = [3] + [width] * 9 + [10]
    keys = jax.random.split(jax.random.PRNGKey(0), len(sizes))
    params = [(jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.zeros(b)) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    folder = pathlib.Path(folder or tempfile.mkdtemp(prefix="ntkc_large_"))
    np.save(folder / "x.npy", np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32))
    x = np.load(folder / "x.npy", mmap_mode="r")           # only the tiles' rows are read

    plan = ntkc.tile_plan(mlp, params, x, memory_limit=budget)
    print(plan)                                            # tile, tiles, method, FLOPs, peak, predicted time

    start = time.perf_counter()
    k = ntkc.ntk_matrix(mlp, params, x, memory_limit=budget, out=folder / "K.npy", progress=not small)
    print(f"kernel {k.shape} in {time.perf_counter() - start:.1f} s -> {folder / 'K.npy'}")

    # The same call again finds every tile done and computes nothing (after an interruption it
    # would compute only the missing ones); a different kernel at that path would be refused.
    start = time.perf_counter()
    ntkc.ntk_matrix(mlp, params, x, memory_limit=budget, out=folder / "K.npy", progress=False)
    print(f"resumed: nothing left to compute ({time.perf_counter() - start:.1f} s)")

    block = ntkc.ntk_fn(mlp, vmap_axes=0)(x[:5], x[-7:], params)
    print("a block equals ntk_fn's:", np.allclose(k[:5, -7:], block, rtol=1e-4, atol=1e-4))
    return np.asarray(k)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="300 examples")
    parser.add_argument("--dir", default=None, help="folder for x.npy and K.npy (default: a temp dir)")
    args = parser.parse_args()
    main(args.small, args.dir)

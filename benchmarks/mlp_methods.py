"""Side-by-side method timings on the paper's 10-layer ReLU MLP (inputs of size 3).

Usage: python benchmarks/mlp_methods.py [--width 512] [--outputs 16] [--batch 8] [--repeats 5]

Every method runs in this one process on the same inputs; each is compiled first (compile time
reported separately) and timed as the median of ``--repeats`` runs. Ratios are what to read:
the machine is shared and noisy.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import ntkc
from ntkc.demo import time_kernel


def mlp(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def init(key, depth, width, outputs):
    sizes = [3] + [width] * (depth - 1) + [outputs]
    keys = jax.random.split(key, depth)
    return [
        (jax.random.normal(k, (m, n)) / np.sqrt(m), jnp.zeros((n,)))
        for k, m, n in zip(keys, sizes[:-1], sizes[1:])
    ]


def _structured_preview(x1, x2, params):
    plan = ntkc.plan(mlp, params, x1, x2, trace_axes=(), vmap_axes=0, method="structured")
    return ntkc.run_plan(plan, x1, x2, params)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--outputs", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--with-preview", action="store_true",
                   help="also time the structured-derivatives preview (not yet a registered method)")
    a = p.parse_args()
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    params = init(k1, a.depth, a.width, a.outputs)
    x1, x2 = jax.random.normal(k2, (a.batch, 3)), jax.random.normal(k3, (a.batch, 3))
    print(f"{a.depth}-layer ReLU MLP, W={a.width}, O={a.outputs}, N={a.batch}, "
          f"full kernel (trace_axes=()), vmap_axes=0, float32, median of {a.repeats}")
    print(f"| method | compile [s] | run [ms] | run / fastest |\n|---|---|---|---|")
    rows = {}
    for name in ntkc.METHODS:
        kernel = ntkc.ntk_fn(mlp, trace_axes=(), vmap_axes=0, method=name)
        rows[name] = time_kernel(kernel, x1, x2, params, repeats=a.repeats)
    if a.with_preview:
        rows["structured (preview)"] = time_kernel(_structured_preview, x1, x2, params, repeats=a.repeats)
    fastest = min(r[1] for r in rows.values())
    for name, (compile_s, run_s, _) in rows.items():
        print(f"| {name} | {compile_s:.2f} | {run_s * 1e3:.1f} | {run_s / fastest:.2f} |")


if __name__ == "__main__":
    main()

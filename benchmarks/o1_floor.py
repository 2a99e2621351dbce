"""The O = 1 point at W = 2048: how fast can any program be, on this machine, with XLA?

Usage:
    python benchmarks/o1_floor.py            # W = 2048, O = 1, N = 8 per side (16 rows)

One process, median of 10 after compiling, everything side by side:

* the machine's f32 matmul rate (2048³) — the reference any FLOP rate is read against;
* the plan's two matmul shapes on their own: ``x @ w`` (forward) and ``x @ w.T`` (sweep) with 16
  rows, and the rate XLA reaches on them;
* the model's own forward pass on the 16 examples, and forward + one reverse sweep (``vjp``
  w.r.t. the inputs) — work every NTK method must do at least once;
* ntkc's structured NTK, with its plan FLOPs.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))


def _time(fn, *args, repeats: int = 10) -> float:
    import jax
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    import ntkc
    from methods_grid import make

    W, rows = a.width, 2 * a.batch
    rng = np.random.default_rng(0)
    square = jnp.asarray(rng.normal(size=(2048, 2048)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(W, W)).astype(np.float32))
    x = jnp.asarray(rng.normal(size=(rows, W)).astype(np.float32))
    matmul = jax.jit(lambda u, v: u @ v)
    rate = 2 * 2048 ** 3 / _time(matmul, square, square, repeats=5)
    fwd_s = _time(jax.jit(lambda u, v: u @ v), x, w)
    sweep_s = _time(jax.jit(lambda u, v: u @ v.T), x, w)

    f, params, x1, x2 = make("mlp", W, 1, a.batch)
    both = jnp.concatenate([x1, x2])
    forward_s = _time(jax.jit(f), params, both)

    def forward_and_sweep(p, xx):
        out, vjp = jax.vjp(lambda h: f(p, h), xx)
        return vjp(jnp.ones_like(out))

    sweep_model_s = _time(jax.jit(forward_and_sweep), params, both)
    kernel = jax.jit(ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method="structured"))
    ntk_s = _time(kernel, x1, x2, params)
    plan = ntkc.plan(f, params, x1, x2, trace_axes=(), vmap_axes=0, method="structured")
    plan_flops = int(plan.costs()["structured"].total_flops)

    n_big = 9  # hidden W × W layers: each read once forward (x @ w) and once in the sweep (x @ w.T)
    shape_floor = n_big * (fwd_s + sweep_s)
    flop = 2 * rows * W * W
    rows_out = {
        "matmul_rate_gflops": rate / 1e9,
        "x@w_ms": fwd_s * 1e3, "x@w_gflops": flop / fwd_s / 1e9,
        "x@w.T_ms": sweep_s * 1e3, "x@w.T_gflops": flop / sweep_s / 1e9,
        "model_forward_ms": forward_s * 1e3, "model_forward_and_sweep_ms": sweep_model_s * 1e3,
        "ntkc_structured_ms": ntk_s * 1e3, "plan_gflop": plan_flops / 1e9,
        "plan_rate_pct_of_matmul": 100 * plan_flops / ntk_s / rate,
        "plan_rate_pct_of_its_matmul_shapes": 100 * (plan_flops / ntk_s) / (2 * n_big * flop / shape_floor),
        "target_ms_at_half_matmul_rate": 1e3 * plan_flops / (rate / 2),
    }
    print(json.dumps(rows_out))
    for k, v in rows_out.items():
        print(f"{k:40s} {v:10.2f}")


if __name__ == "__main__":
    main()

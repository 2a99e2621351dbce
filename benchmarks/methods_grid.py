"""Jacobian vs ntvp vs structured, side by side, on MLPs and a CNN.

Usage:
    python benchmarks/methods_grid.py                # the whole grid (≈ 20–30 min on 2 cores)
    python benchmarks/methods_grid.py --quick        # W ∈ {256, 512}, O ∈ {1, 16}
    python benchmarks/methods_grid.py --out docs/benchmarks_methods_grid.md

Models: the paper's 10-layer ReLU MLP (inputs of size 3, W ∈ {256, 512, 1024, 2048},
O ∈ {1, 16, 128}, N = 8) and a 4-layer CNN (16×16×3 images, 64 channels, O = 10, N = 8); full
kernels (``trace_axes=()``), ``vmap_axes=0``, float32. Each (model, method) runs in its own
process: compiled first (compile time reported separately), then the median of 5 runs.
A method whose Jacobians would not fit in memory (``N·O·P`` floats per side above
``--jacobian-limit-gb``) is reported as skipped, not run. Also measured in the same run: this
machine's f32 matmul rate (2048² · 2048, median of 5), and for structured the FLOPs of its
compiled program (XLA ``cost_analysis``) and of its plan (``NTKPlan.costs()``: primal passes,
backward sweeps and the opt_einsum contractions), so its achieved FLOP rate can be compared with
the matmul rate.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time

from tiled_models import mlp  # noqa: E402  (the paper's ReLU MLP; this folder is on sys.path)

METHODS = ("jacobian", "ntvp", "structured")


def cnn(params, x):
    import jax
    from jax import lax
    for k, b in params["convs"]:
        x = lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(x + b)
    x = x.reshape(x.shape[0], -1)
    return x @ params["head"]


def make(model: str, width: int, outputs: int, batch: int, seed: int = 0):
    import jax
    import numpy as np
    rng = np.random.default_rng(seed)
    normal = lambda *s: rng.normal(size=s).astype(np.float32)
    if model == "mlp":
        sizes = [3] + [width] * 9 + [outputs]
        params = [(normal(m, n) / np.sqrt(m), np.zeros(n, np.float32)) for m, n in zip(sizes[:-1], sizes[1:])]
        return mlp, params, normal(batch, 3), normal(batch, 3)
    chans = [3] + [width] * 4
    convs = [(normal(3, 3, a, b) / np.sqrt(9 * a), np.zeros(b, np.float32)) for a, b in zip(chans[:-1], chans[1:])]
    params = {"convs": convs, "head": normal(16 * 16 * width, outputs) / np.sqrt(16 * 16 * width)}
    return cnn, params, normal(batch, 16, 16, 3), normal(batch, 16, 16, 3)


def n_params(params) -> int:
    import jax
    return sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))


def run_one(model: str, width: int, outputs: int, batch: int, method: str, repeats: int) -> dict:
    """Time one method on one configuration (in this process)."""
    import jax
    import ntkc
    f, params, x1, x2 = make(model, width, outputs, batch)
    kernel = jax.jit(ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method=method))
    t0 = time.perf_counter()
    compiled = kernel.lower(x1, x2, params).compile()
    compile_s = time.perf_counter() - t0
    compiled(x1, x2, params).block_until_ready()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        compiled(x1, x2, params).block_until_ready()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    row = {"compile_s": compile_s, "run_s": statistics.median(times), "cpu_s": statistics.median(cpu)}
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    row["xla_flops"] = float((cost or {}).get("flops", float("nan")))
    if method == "structured":
        row["plan_flops"] = plan_flops(f, params, x1, x2)
    return row


def plan_flops(f, params, x1, x2) -> int:
    """FLOPs of everything the structured program runs, as its plan prices it (primal passes,
    backward sweeps, fallbacks and contractions: ``NTKPlan.costs()["structured"]``)."""
    import ntkc

    plan = ntkc.plan(f, params, x1, x2, trace_axes=(), vmap_axes=0, method="structured")
    return int(plan.costs()["structured"].total_flops)


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """This machine's f32 matmul rate in FLOP/s (n×n by n×n, median of ``repeats``)."""
    import jax
    import jax.numpy as jnp
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(lambda x, y: x @ y)
    mm(a, a).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm(a, a).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def in_subprocess(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--one", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"time-out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        return {"skipped": f"failed: {tail[0][:120]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def grid(quick: bool):
    widths = (256, 512) if quick else (256, 512, 1024, 2048)
    outs = (1, 16) if quick else (1, 16, 128)
    for w in widths:
        for o in outs:
            yield "mlp", w, o
    yield "cnn", 64, 10


def table(rows, rate: float) -> str:
    lines = [f"f32 matmul rate (2048³, median of 5): **{rate / 1e9:.1f} GFLOP/s**", "",
             "| model | W | O | method | compile [s] | run [ms] | run / structured | XLA GFLOP | plan GFLOP "
             "| plan GFLOP/s | % of matmul |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (model, w, o), results in rows:
        base = results.get("structured", {}).get("run_s")
        for m in METHODS:
            r = results[m]
            if "skipped" in r:
                lines.append(f"| {model} | {w} | {o} | {m} | – | {r['skipped']} | – | – | – | – | – |")
                continue
            ratio = f"{r['run_s'] / base:.1f}" if base else "–"
            gflop = r["xla_flops"] / 1e9
            plan = r.get("plan_flops")
            plan_cols = (f"{plan / 1e9:.2f} | {plan / 1e9 / r['run_s']:.1f} | {100 * plan / r['run_s'] / rate:.0f}%"
                         if plan else "– | – | –")
            lines.append(f"| {model} | {w} | {o} | {m} | {r['compile_s']:.2f} | {r['run_s'] * 1e3:.1f} | "
                         f"{ratio} | {gflop:.2f} | {plan_cols} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per (model, method)")
    p.add_argument("--jacobian-limit-gb", type=float, default=6.0)
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    p.add_argument("--one", nargs=5, metavar=("MODEL", "W", "O", "N", "METHOD"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        model, w, o, n, method = a.one
        print(json.dumps(run_one(model, int(w), int(o), int(n), method, a.repeats)))
        return
    rate = matmul_rate()
    rows = []
    for model, w, o in grid(a.quick):
        f, params, _, _ = make(model, w, o, a.batch)
        jac_gb = a.batch * o * n_params(params) * 4 / 1e9
        results = {}
        for m in METHODS:
            if m == "jacobian" and jac_gb > a.jacobian_limit_gb:
                results[m] = {"skipped": f"skipped: Jacobians need {jac_gb:.0f} GB per side"}
            else:
                results[m] = in_subprocess([model, str(w), str(o), str(a.batch), m], a.timeout)
            print(json.dumps({"model": model, "W": w, "O": o, "N": a.batch, "method": m, **results[m]}), flush=True)
        rows.append(((model, w, o), results))
    text = table(rows, rate)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()

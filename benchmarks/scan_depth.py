"""Scan over layers: compile and run time of the structured NTK of a
scan-over-layers MLP at depth L ∈ {8, 32, 64}, next to the same MLP written as a Python loop.

Usage:
    python benchmarks/scan_depth.py                  # depths 8, 32, 64; width 64, O = 4, N = 8

    python benchmarks/scan_depth.py --depths 128,256 --forms scan

Each (depth, form) runs in its own process: `jax.jit(ntk_fn(...)).lower(...).compile()` timed as
compile time (tracing + ntkc's pipeline + XLA), then the median of 5 runs. The scan form's linear
scan is kept whole (a ``Loop``: one body, a scan-shaped sweep, iteration-labelled operands), so
its plan has the same size at every depth; the Python-loop form is unrolled by tracing itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def make(depth: int, width: int, outputs: int, batch: int, form: str):
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(depth, width, width)).astype(np.float32) / np.sqrt(width)),
              "b": jnp.zeros((depth, width), jnp.float32),
              "inp": jnp.asarray(rng.normal(size=(3, width)).astype(np.float32)),
              "head": jnp.asarray(rng.normal(size=(width, outputs)).astype(np.float32) / np.sqrt(width))}

    def layer(h, wb):
        return jnp.tanh(h @ wb[0] + wb[1]), None

    def scan_f(p, x):
        return jax.lax.scan(layer, x @ p["inp"], (p["w"], p["b"]))[0] @ p["head"]

    def loop_f(p, x):
        h = x @ p["inp"]
        for i in range(depth):
            h = layer(h, (p["w"][i], p["b"][i]))[0]
        return h @ p["head"]

    x = jnp.asarray(rng.normal(size=(batch, 3)).astype(np.float32))
    return (scan_f if form == "scan" else loop_f), params, x


def run_one(depth: int, form: str, width: int, outputs: int, batch: int) -> dict:
    import jax
    import ntkc

    f, params, x = make(depth, width, outputs, batch, form)
    kernel = jax.jit(ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method="structured"))
    t0 = time.perf_counter()
    compiled = kernel.lower(x, None, params).compile()
    compile_s = time.perf_counter() - t0
    compiled(x, None, params).block_until_ready()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        compiled(x, None, params).block_until_ready()
        times.append(time.perf_counter() - t0)
    return {"depth": depth, "form": form, "compile_s": compile_s, "run_s": statistics.median(times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="8,32,64")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--outputs", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--forms", default="scan,loop")
    p.add_argument("--one", nargs=2, metavar=("DEPTH", "FORM"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(run_one(int(a.one[0]), a.one[1], a.width, a.outputs, a.batch)))
        return
    rows = []
    for depth in (int(d) for d in a.depths.split(",")):
        for form in a.forms.split(","):
            cmd = [sys.executable, __file__, "--one", str(depth), form, "--width", str(a.width),
                   "--outputs", str(a.outputs), "--batch", str(a.batch)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            row = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else \
                {"depth": depth, "form": form, "error": done.stderr.strip().splitlines()[-1:]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("| depth | form | compile [s] | run [ms] |\n|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['depth']} | {r['form']} | – | {r['error']} |")
        else:
            print(f"| {r['depth']} | {r['form']} | {r['compile_s']:.2f} | {r['run_s'] * 1e3:.1f} |")


if __name__ == "__main__":
    main()

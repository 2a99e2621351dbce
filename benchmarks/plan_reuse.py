"""Compile time of what a user does with one compiled kernel: ``ntkc.compile``, the cost report,
the printed plan, the exported source, then 10 calls — for two source trees side by side.

Usage:
    python benchmarks/plan_reuse.py --before /path/to/older/clone [--repeats 3]

Every (tree, model) point runs in a fresh process with ``PYTHONPATH`` set to the tree, the two
trees alternating repeat by repeat (so both see the same machine load); the table reports the
median of each step in seconds, how many times the compiler's pipeline (``compile_plan``) ran,
and the ratio before ÷ after of the total. Models: the 10-layer MLP of the paper's Figure 1
(W = 256, O = 10, N = 8), the 4-layer CNN of the methods grid (16×16×3, 32 channels, O = 10,
N = 4), a scan-over-layers MLP (depth 32, W = 64, O = 4, N = 8), and the Flax ResNet-18 (W = 8)
and ViT (W = 32) of ``benchmarks/models_flax.py`` (32×32×3, O = 10, N = 4; needs flax);
``method="auto"``, full kernel (``trace_axes=()``), ``vmap_axes=0``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
MODELS = ("mlp", "cnn", "scan", "resnet18", "vit")


def _make(model: str):
    sys.path.insert(0, str(HERE))
    if model in ("resnet18", "vit"):
        from models_flax import make

        return make(model, 8 if model == "resnet18" else 32, 10, 4)
    if model == "scan":
        from scan_depth import make

        f, params, x = make(32, 64, 4, 8, "scan")
        return f, params, x, x[::-1]
    from methods_grid import make

    return make(model, 256 if model == "mlp" else 32, 10, 8 if model == "mlp" else 4)


def worker(model: str) -> dict:
    """Time each step once, in this process."""
    import jax
    import ntkc

    f, params, x1, x2 = _make(model)
    runs = _count_pipeline_runs()
    steps, t = {}, time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        steps[name] = now - t
        t = now

    c = ntkc.compile(f, params, x1, x2, trace_axes=(), vmap_axes=0)
    lap("compile")
    c.cost_report()
    lap("report")
    str(c.plan)
    lap("plan")
    c.source()
    lap("source")
    for i in range(10):
        jax.block_until_ready(c(x1, x2, params))
    lap("10 calls")
    steps["total"] = sum(steps.values())
    return {"method": c.method, "pipeline runs": len(runs), **steps}


def _count_pipeline_runs() -> list:
    """Wrap ``compile_plan`` wherever an ntkc module holds it; the list grows by one per run."""
    import ntkc.passes.pipeline as pipeline

    calls, original = [], pipeline.compile_plan

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.startswith("ntkc") and getattr(module, "compile_plan", None) is original:
            module.compile_plan = counted
    return calls


def run(tree: pathlib.Path, model: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "--worker", model], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=pathlib.Path, help="a clone of the older tree")
    p.add_argument("--after", type=pathlib.Path, default=HERE.parent, help="the tree to compare (default: this one)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker)))
        return
    if a.before is None:
        p.error("--before is required")
    results = {(tree, m): [] for tree in ("before", "after") for m in MODELS}
    for _ in range(a.repeats):
        for model in MODELS:
            for label, tree in (("before", a.before), ("after", a.after)):
                results[(label, model)].append(run(tree, model))
    steps = ("compile", "report", "plan", "source", "10 calls", "total")
    print("| model | tree | method | pipeline runs | " + " | ".join(f"{s} [s]" for s in steps) + " |")
    print("|---|---|---|---|" + "---|" * len(steps))
    for model in MODELS:
        totals = {}
        for label in ("before", "after"):
            rows = results[(label, model)]
            med = {s: statistics.median(r[s] for r in rows) for s in steps}
            totals[label] = med["total"]
            print(f"| {model} | {label} | {rows[0]['method']} | {rows[0]['pipeline runs']} | "
                  + " | ".join(f"{med[s]:.2f}" for s in steps) + " |")
        print(f"| {model} | before ÷ after | | | | | | | | {totals['before'] / totals['after']:.2f}× |")


if __name__ == "__main__":
    main()

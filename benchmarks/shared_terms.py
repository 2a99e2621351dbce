"""What the share pass saves: structured plans with and without it, side by side.

Usage:
    python benchmarks/shared_terms.py [--preset quick] [--repeats 30]

Every contraction of a structured plan runs as a chain of pairwise steps; the share pass
(``ntkc/passes/share.py``) computes a step that several contractions of a kernel perform once —
typically a weight's and its bias's ``cot1·cot2`` when both read one cotangent. For every
configuration of the preset (full kernel, ``vmap_axes=0``) this reports the predicted FLOPs of the
structured program and the measured kernel time, without the pass and with it (compiled and
timed alternately, so both see the same load), and the largest difference of the two kernels
relative to the largest entry (float rounding only).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import pathlib
import statistics
import sys
import warnings

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from presets import PRESETS  # noqa: E402
from worker import timed  # noqa: E402


@contextlib.contextmanager
def without_share_pass():
    """The pipeline without its ``share`` pass (and a plan cache that forgets both ways)."""
    import ntkc
    from ntkc.passes import pipeline

    original = list(pipeline.PASSES)
    pipeline.PASSES[:] = [(name, run) for name, run in original if name != "share"]
    ntkc.plan.cache_clear()
    try:
        yield
    finally:
        pipeline.PASSES[:] = original
        ntkc.plan.cache_clear()


def measure(config, repeats: int) -> dict:
    import jax
    import numpy as np
    import ntkc

    f, params, x1, x2 = config.build()

    def planned():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = ntkc.plan(f, params, x1, x2, trace_axes=(), vmap_axes=0, method="structured")
        compiled = plan.executable.lower(params, x1, x2, {}, {}).compile()
        return plan, lambda: compiled(params, x1, x2, {}, {})

    with without_share_pass():
        before, run_before = planned()
    after, run_after = planned()
    times = {"before": [], "after": []}
    for _ in range(3):  # alternate, so both see the same load
        times["before"].append(timed(run_before, repeats))
        times["after"].append(timed(run_after, repeats))
    k0, k1 = (np.asarray(jax.tree_util.tree_leaves(run())[0]) for run in (run_before, run_after))
    return {"flops_before": int(before.costs()["structured"].total_flops),
            "flops_after": int(after.costs()["structured"].total_flops),
            "shared": sum(len(k.shared) for k in after.compilation.kernels),
            "before_s": statistics.median(times["before"]), "after_s": statistics.median(times["after"]),
            "difference": float(np.abs(k0 - k1).max() / max(np.abs(k0).max(), 1e-30))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    p.add_argument("--repeats", type=int, default=30)
    a = p.parse_args()
    print("| configuration | shared | FLOPs without | FLOPs with | ratio | run without [ms] | run with [ms] | "
          "without ÷ with | difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    speedups = []
    for config in PRESETS[a.preset].configs():
        r = measure(config, a.repeats)
        speedups.append(r["before_s"] / r["after_s"])
        print(f"| {config.key} | {r['shared']} | {r['flops_before'] / 1e6:.1f}M | {r['flops_after'] / 1e6:.1f}M | "
              f"{r['flops_before'] / r['flops_after']:.2f}× | {1e3 * r['before_s']:.3f} | {1e3 * r['after_s']:.3f} | "
              f"{speedups[-1]:.2f}× | {r['difference']:.1e} |", flush=True)
    geo = math.exp(sum(map(math.log, speedups)) / len(speedups))
    print(f"| geometric mean | | | | | | | {geo:.2f}× | |")


if __name__ == "__main__":
    main()

"""Two source trees of ntkc side by side on a preset's configurations: kernel and compile time.

Usage:
    python benchmarks/compare_trees.py --before /path/to/older/clone [--after .] [--preset quick]
        [--methods structured,auto] [--rounds 3] [--only REGEX]

Every (configuration, method, tree) point is one ``benchmarks/worker.py`` process (model built,
kernel compiled ahead of time, median of at least 5 runs) with ``PYTHONPATH`` set to the tree;
the two trees alternate point by point and round by round, so both see the same machine load.
The table gives the median over rounds of each tree's run and compile time and their ratios
(before ÷ after: above 1, the after tree is faster); the last line their geometric means.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import re
import statistics
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from presets import PRESETS  # noqa: E402


def point(tree: pathlib.Path, config, method: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(HERE / "worker.py"), json.dumps(dataclasses.asdict(config)), method]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def geomean(values) -> float:
    values = [v for v in values if v and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=pathlib.Path, required=True)
    p.add_argument("--after", type=pathlib.Path, default=HERE.parent)
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    p.add_argument("--methods", default="structured")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", default="", help="regular expression on configuration keys")
    a = p.parse_args()
    configs = [c for c in PRESETS[a.preset].configs() if re.search(a.only, c.key)]
    methods = a.methods.split(",")
    rows: dict = {}
    for _ in range(a.rounds):
        for config in configs:
            for method in methods:
                for label, tree in (("before", a.before), ("after", a.after)):
                    rows.setdefault((config.key, method, label), []).append(point(tree, config, method))
    print("| configuration | method | run before [ms] | run after [ms] | before ÷ after | "
          "compile before [s] | compile after [s] | before ÷ after |")
    print("|---|---|---|---|---|---|---|---|")
    run_ratios, compile_ratios = [], []
    for config in configs:
        for method in methods:
            med = {}
            for label in ("before", "after"):
                done = [r for r in rows[(config.key, method, label)] if "run_s" in r]
                med[label] = (statistics.median(r["run_s"] for r in done) if done else float("nan"),
                              statistics.median(r["compile_s"] for r in done) if done else float("nan"))
            run_ratio, compile_ratio = med["before"][0] / med["after"][0], med["before"][1] / med["after"][1]
            run_ratios.append(run_ratio)
            compile_ratios.append(compile_ratio)
            print(f"| {config.key} | {method} | {1e3 * med['before'][0]:.2f} | {1e3 * med['after'][0]:.2f} | "
                  f"{run_ratio:.2f}× | {med['before'][1]:.2f} | {med['after'][1]:.2f} | {compile_ratio:.2f}× |")
    print(f"| geometric mean | | | | {geomean(run_ratios):.2f}× | | | {geomean(compile_ratios):.2f}× |")


if __name__ == "__main__":
    main()

"""Does ``method="auto"`` pick a method within 1.25x of the fastest?

Usage:
    python benchmarks/auto_choice.py                      # 26 points (≈ 25 min on 2 cores)
    python benchmarks/auto_choice.py --out docs/auto_choice.md

Points: the 10-layer ReLU MLP (inputs of size 3) with W ∈ {64, 256, 1024}, O ∈ {1, 16},
N ∈ {1, 4, 16}, and the 4-layer CNN (16×16×3 images) with W channels ∈ {8, 32}, O ∈ {1, 10},
N ∈ {2, 8}; full kernels, ``vmap_axes=0``, float32. Every method runs in its own process
(``methods_grid.py --one``: compiled first, median of 5 runs). ``auto``'s pick comes from the
cost model alone (``ntkc.plan(..., method="auto").method``: no trial runs). A point is a hit when
the picked method's time is within 1.25x of the fastest method's.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from methods_grid import METHODS, in_subprocess, make  # noqa: E402

TOLERANCE = 1.25


def points():
    for w in (64, 256, 1024):
        for o in (1, 16):
            for n in (1, 4, 16):
                yield "mlp", n, o, w
    for w in (8, 32):
        for o in (1, 10):
            for n in (2, 8):
                yield "cnn", n, o, w


def pick(model: str, n: int, o: int, w: int) -> tuple[str, dict]:
    """auto's choice and the predicted FLOPs of each method (cost model only)."""
    import ntkc

    f, params, x1, x2 = make(model, w, o, n)
    plan = ntkc.plan(f, params, x1, x2, trace_axes=(), vmap_axes=0)
    return plan.method, {m: int(c.total_flops) for m, c in plan.costs().items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per (point, method)")
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    a = p.parse_args()
    rows = []
    for model, n, o, w in points():
        chosen, predicted = pick(model, n, o, w)
        times = {}
        for m in METHODS:
            r = in_subprocess([model, str(w), str(o), str(n), m], a.timeout)
            times[m] = r.get("run_s", math.inf)
        fastest = min(times, key=times.get)
        ratio = times[chosen] / times[fastest]
        row = {"model": model, "N": n, "O": o, "W": w, "auto": chosen, "fastest": fastest,
               "ratio": ratio, "hit": ratio <= TOLERANCE, "times": times, "predicted": predicted}
        print(json.dumps(row), flush=True)
        rows.append(row)
    hits = sum(r["hit"] for r in rows)
    lines = [f"auto within {TOLERANCE}x of the fastest on **{hits}/{len(rows)}** points "
             f"({100 * hits / len(rows):.0f}%)", "",
             "| model | N | O | W | jacobian [ms] | ntvp [ms] | structured [ms] | auto picks | fastest | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["times"]
        ms = lambda m: "time-out" if math.isinf(t[m]) else f"{t[m] * 1e3:.1f}"
        lines.append(f"| {r['model']} | {r['N']} | {r['O']} | {r['W']} | {ms('jacobian')} | {ms('ntvp')} | "
                     f"{ms('structured')} | {r['auto']} | {r['fastest']} | {r['ratio']:.2f} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        pathlib.Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()

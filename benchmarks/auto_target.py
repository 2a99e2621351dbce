"""Is ``method="auto"`` as fast as ntkc's fastest method? Its time over the fastest, per point.

Usage:
    python benchmarks/auto_target.py --preset quick
    python benchmarks/auto_target.py --preset reference --out docs/auto_target.jsonl --append

For every configuration of a preset of ``presets.py`` (the ``reference`` preset's include
x2 = None), one process compiles ``jacobian``, ``ntvp`` and ``structured`` (``jax.jit`` of
``ntkc.ntk_fn``) and ``auto`` as users compile it (``ntkc.compile(..., method="auto")``: where
the cost model cannot separate methods it measures them and keeps the fastest, with a fresh
autotuning cache per process), then times the four **interleaved**: rounds in which each method
runs in turn — the order rotated every round, and one untimed run before each method's timed
runs — each timed run repeated to fill ≈ 50 ms, until every method has ≥ 7 rounds and the
rounds fill ≈ 4 s. Interleaving matters here: ``auto`` usually runs the same program as one of
the others, and on a shared machine two processes timed minutes apart differ by up to 2× for
the same program. The rotation and the untimed run keep the order from favouring a method: in
a fixed order ``auto`` always runs right after the program it chose. A method whose first run takes over 10× the fastest first run (and over 1 s)
leaves the rounds (it cannot be the fastest); one that fails to compile or run (out of memory)
is recorded as missing. Printed: one JSON line per configuration, then ``auto``'s time over
the fastest method's — per point, geometric mean and worst.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from presets import PRESETS, Config  # noqa: E402

OWN = ("jacobian", "ntvp", "structured")


def measure(config: Config) -> dict:
    import jax
    import ntkc

    f, params, x1, x2 = config.build()
    row = {"key": config.key, "compile_s": {}, "missing": {}}
    runs = {}
    for method in OWN + ("auto",):
        t0 = time.perf_counter()
        try:
            if method == "auto":
                ahead = ntkc.compile(f, params, x1, x2, trace_axes=(), vmap_axes=0, method="auto")
                runs[method], row["auto_method"] = ahead.executable, ahead.method
            else:
                kernel = ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method=method)
                runs[method] = jax.jit(kernel).lower(x1, x2, params).compile()
            row["compile_s"][method] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - out of memory or a compile failure: a missing point
            row["missing"][method] = f"{type(e).__name__}: {str(e)[:160]}"
    first = {}
    for method, run in list(runs.items()):
        try:
            t0 = time.perf_counter()
            run(x1, x2, params).block_until_ready()
            first[method] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001
            row["missing"][method] = f"{type(e).__name__}: {str(e)[:160]}"
            del runs[method]
    fastest_first = min(first.values())
    for method in [m for m in runs if m != "auto"]:
        if first[method] > max(1.0, 10 * fastest_first):
            row["missing"][method] = f"left the rounds: first run {first[method]:.2f} s"
            del runs[method]
    repeats = {m: max(1, min(50, round(0.05 / max(first[m], 1e-6)))) for m in runs}
    times: dict[str, list[float]] = {m: [] for m in runs}
    start = time.perf_counter()
    order, rounds = list(runs), 0
    while min(len(v) for v in times.values()) < 7 or time.perf_counter() - start < 4.0:
        turn = rounds % len(order)
        rounds += 1
        for method in order[turn:] + order[:turn]:
            run = runs[method]
            run(x1, x2, params).block_until_ready()  # untimed: the timed runs follow their own program
            t0 = time.perf_counter()
            for _ in range(repeats[method]):
                run(x1, x2, params).block_until_ready()
            times[method].append((time.perf_counter() - t0) / repeats[method])
        if time.perf_counter() - start > 120:
            break
    row["median_s"] = {m: statistics.median(v) for m, v in times.items()}
    row["rounds"] = min(len(v) for v in times.values())
    own = {m: t for m, t in row["median_s"].items() if m in OWN}
    if own and "auto" in row["median_s"]:
        row["fastest"] = min(own, key=own.get)
        row["ratio"] = row["median_s"]["auto"] / own[row["fastest"]]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    p.add_argument("--only", default=None, help="configuration keys matching this regular expression")
    p.add_argument("--out", default=None, help="append the JSON lines here")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a configuration, in this process
    p.add_argument("--memory-gb", type=float, default=12.0)
    args = p.parse_args()
    if args.one:
        cap = int(args.memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        print(json.dumps(measure(Config(**json.loads(args.one)))), flush=True)
        return
    import re

    rows = []
    for config in PRESETS[args.preset].configs():
        if args.only and not re.search(args.only, config.key):
            continue
        env = {**os.environ, "NTKC_CACHE_DIR": tempfile.mkdtemp(prefix="ntkc_auto_")}
        env.pop("NTKC_AUTOTUNE", None)
        cmd = [sys.executable, __file__, "--one", json.dumps(config.__dict__), "--memory-gb", str(args.memory_gb)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        row = json.loads(lines[-1]) if lines else {"key": config.key, "failed": done.stderr.strip()[-300:]}
        row["preset"] = args.preset
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    ratios = [(r["ratio"], r["key"], r.get("auto_method"), r["fastest"]) for r in rows if "ratio" in r]
    print("\n| configuration | auto ran | fastest | auto / fastest |\n|---|---|---|---|")
    for ratio, key, ran, fastest in ratios:
        print(f"| {key} | {ran} | {fastest} | {ratio:.2f} |")
    if ratios:
        mean = math.exp(sum(math.log(r[0]) for r in ratios) / len(ratios))
        print(f"\n{len(ratios)} points: geometric mean {mean:.3f}, worst {max(ratios)[0]:.3f} ({max(ratios)[1]})")


if __name__ == "__main__":
    main()

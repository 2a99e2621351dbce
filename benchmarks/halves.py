"""x2 = None: the whole program against its halves (each pair of examples once), in one process.

For each configuration (a key of the ``reference`` preset, x2 = None), the structured plan's
program (``plan._execute``) and :class:`ntkc.tiling.halves.Halves` are compiled with
``jax.jit`` and timed interleaved — rounds alternating the two, medians of 7 — after checking
that they agree; printed: one JSON line per configuration, with whether :func:`halves` would
use them (its pricing) and their time ratio::

    python benchmarks/halves.py                                   # the reference preset's MLPs and transformer
    python benchmarks/halves.py --only 'mlp_W64_O128'             # a subset (regular expression)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from presets import PRESETS  # noqa: E402


def compare(config, rounds: int = 7) -> dict:
    import jax
    import numpy as np

    import ntkc
    from ntkc.tiling.halves import halves

    f, params, x1, _ = config.build()
    plan = ntkc.plan(f, params, x1, None, trace_axes=(), vmap_axes=0, method="structured")
    split = halves(plan, priced=False)
    row = {"key": config.key, "used": halves(plan) is not None}
    if split is None:
        return {**row, "applies": False}
    programs = {"whole": jax.jit(plan._execute).lower(params, x1, None, {}, {}).compile(),
                "halves": jax.jit(split).lower(params, x1, None, {}, {}).compile()}
    whole, half = (np.asarray(run(params, x1, None, {}, {})) for run in programs.values())
    first = {}
    for name, run in programs.items():
        start = time.perf_counter()
        run(params, x1, None, {}, {}).block_until_ready()
        first[name] = time.perf_counter() - start
    repeats = {name: max(1, round(0.05 / max(t, 1e-6))) for name, t in first.items()}
    times: dict = {name: [] for name in programs}
    for _ in range(rounds):
        for name, run in programs.items():
            start = time.perf_counter()
            for _ in range(repeats[name]):
                run(params, x1, None, {}, {}).block_until_ready()
            times[name].append((time.perf_counter() - start) / repeats[name])
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    return {**row, "applies": True, "pair_flops_fraction": round(split.pair_flops_fraction, 3),
            "whole_ms": round(ms["whole"], 3), "halves_ms": round(ms["halves"], 3),
            "halves_over_whole": round(ms["halves"] / ms["whole"], 2),
            "max_relative_difference": float(np.abs(whole - half).max() / np.abs(whole).max())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="^(mlp_|transformer)", help="configuration keys matching this regular expression")
    args = p.parse_args()
    os.environ.setdefault("NTKC_AUTOTUNE", "0")
    for config in PRESETS["reference"].configs():
        if config.same and re.search(args.only, config.key):
            print(json.dumps(compare(config)), flush=True)


if __name__ == "__main__":
    main()

"""Every NTK method and the plain-JAX baselines on the paper's models.

Usage (from a clone, after ``pip install -e ".[bench]"``)::

    ntkc bench --quick                      # the quick preset, < 10 min on 2 CPU cores
    ntkc bench                              # the full preset (hours: see docs/benchmarks.md)
    python benchmarks/run.py --quick --only vit --no-plots   # the same script, a subset
    ntkc bench --only '_64px_.*_O10_' --append   # one slice of the full grid, merged into its file

Every (configuration, method) runs in its own process (``worker.py``): address space capped at
``--memory-gb``, compiled ahead of time outside the timed region (compile time recorded), the
median of at least ``--repeats`` runs, peak memory as max RSS. A method whose predicted memory
exceeds the cap is not started and counts as out of memory; a process over ``--timeout`` is a
time-out, and so is a point whose predicted FLOPs would need longer at ``--rate-gflops`` (not
started); all are missing points. Each configuration's kernels are compared across methods
(:mod:`agreement`). The cost model's predicted FLOPs and memory of each method
(``ntkc.cost_report``) are recorded next to the measurements.

Writes ``<out-dir>/bench_<preset>.jsonl`` (a line per configuration and method, written as it
is measured), ``bench_<preset>.meta.json`` (machine, settings, wall and CPU time, load average),
``bench_<preset>.md`` (tables, headline ratios, losses; :mod:`tables`) and PNG figures in
``<out-dir>/figures/`` (:mod:`plots`; needs matplotlib). ``--report-only`` rewrites the last
two from the first two. ``--append`` merges this run into the preset's existing JSON lines (a
re-measured (configuration, method) replaces its old line) and adds the run to the meta file's
``runs``, so a grid too long for one sitting can be measured slice by slice.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agreement import relative_errors  # noqa: E402
from presets import ALL_METHODS, BASELINES, PRESETS, REFERENCE, Config  # noqa: E402

#: The ntkc method whose algorithm (and so whose cost-model price) each baseline shares.
PRICED_AS = {"jax_jacobian": "jacobian", "jax_ntvp": "ntvp", "nt_jacobian": "jacobian", "nt_ntvp": "ntvp",
             "nt_structured": "structured"}


def predictions(config: Config) -> dict:
    """Parameter count, the cost model's FLOPs and memory of every method, and auto's pick."""
    import jax
    import ntkc

    f, params, x1, x2 = config.build()
    report = ntkc.cost_report(f, params, x1, x2, trace_axes=(), vmap_axes=0, xla=False).as_dict()
    costs = {m: (v["flops_value"], v["memory_bytes"]) for m, v in report["methods"].items()}
    costs.update({b: costs[m] for b, m in PRICED_AS.items()})
    costs["auto"] = costs[report["chosen"]]
    costs["nt_auto"] = (None, None)               # neural-tangents' own choice: not ntkc's to price
    return {"params": sum(leaf.size for leaf in jax.tree_util.tree_leaves(params)),
            "auto_pick": report["chosen"], "costs": costs}


def in_subprocess(config: Config, method: str, args, save: str) -> dict:
    """One worker process; a time-out or a crash becomes a missing point with its reason."""
    python = args.nt_python if method in REFERENCE else sys.executable
    cmd = [python, str(HERE / "worker.py"), json.dumps(dataclasses.asdict(config)), method,
           "--repeats", str(args.repeats), "--memory-gb", str(args.memory_gb), "--save", save]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"missing": "time-out", "detail": f"over {args.timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        killed = done.returncode == -signal.SIGKILL          # what the kernel's OOM killer sends
        return {"missing": "out of memory" if killed else "error",
                "detail": f"exit {done.returncode}: {tail[:200]}"}
    return {**json.loads(lines[-1]), "process_s": time.perf_counter() - t0}


def measure_config(config: Config, methods, args, scratch: str) -> list[dict]:
    """Rows of every method on one configuration, with the agreement check filled in."""
    predicted = predictions(config)
    rows, saved = [], {}
    for method in methods:
        flops, memory = predicted["costs"][method]
        row = {**dataclasses.asdict(config), "key": config.key, "method": method,
               "params": predicted["params"], "auto_pick": predicted["auto_pick"],
               "predicted_flops": flops, "predicted_memory_bytes": memory}
        least_s = (flops or 0) / (args.rate_gflops * 1e9) * (args.repeats + 1)
        if memory is not None and memory > args.memory_gb * 2**30:
            row.update(missing="out of memory", detail=f"predicted {memory / 2**30:.1f} GiB > cap")
        elif least_s > args.timeout:
            row.update(missing="time-out", detail=f"predicted ≥ {least_s:.0f} s at {args.rate_gflops:g} GFLOP/s")
        else:
            save = str(pathlib.Path(scratch) / f"{config.key}_{method}.npy")
            row.update(in_subprocess(config, method, args, save))
            if "run_s" in row:
                saved[method] = save
        rows.append(row)
        print(json.dumps(row), flush=True)
    errors = relative_errors(saved)
    for row in rows:
        row["rel_err"] = errors.get(row["method"])
        row["rel_err_ref"] = next(iter(saved), None)
    for path in saved.values():
        pathlib.Path(path).unlink()
    return rows


def machine() -> dict:
    """What ran the benchmark: CPU model, cores, versions, date."""
    import platform

    import jax
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    versions = {"python": platform.python_version(), "jax": jax.__version__}
    try:
        import flax
        versions["flax"] = flax.__version__
    except ImportError:
        pass
    return {"cpu": names[0] if names else platform.processor(), "cores": len(os.sched_getaffinity(0)),
            "versions": versions, "date": time.strftime("%Y-%m-%d")}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ntkc bench", description=__doc__.splitlines()[0],
                                epilog="presets: " + "; ".join(f"{preset.name}: {preset.expected}" for preset in PRESETS.values()))
    p.add_argument("--quick", action="store_true", help="the quick preset (same as --preset quick)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="full")
    p.add_argument("--only", default="",
                   help="run only configurations whose key matches this regular expression (e.g. vit, mlp_W64, "
                        "'_64px_.*_O10_'; a plain substring matches where it occurs)")
    p.add_argument("--methods", default="",
                   help=f"comma-separated subset of {','.join(ALL_METHODS)} (default: the preset's)")
    p.add_argument("--nt-python", default="",
                   help="the Python of a virtual environment with neural-tangents 0.6.5 (jax 0.4.23, numpy < 2), "
                        "which runs the nt_* methods: see benchmarks/neural_tangents_ref.py")
    p.add_argument("--repeats", type=int, default=5, help="least timed runs per point (median reported; default 5)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per process (default: the preset's)")
    p.add_argument("--memory-gb", type=float, default=8.0, help="address-space cap per process (default 8)")
    p.add_argument("--rate-gflops", type=float, default=200.0,
                   help="a point whose predicted FLOPs take longer than --timeout at this rate is not started "
                        "(default 200: twice this 2-core machine's matmul rate)")
    p.add_argument("--out-dir", default=str(HERE.parent / "docs"), help="where results go (default: docs/)")
    p.add_argument("--append", action="store_true",
                   help="merge into the preset's existing JSON lines instead of starting them anew")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: rewrite the Markdown and the figures from the preset's JSON lines and meta")
    return p


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    import resource
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def write_outputs(rows: list[dict], info: dict, out: pathlib.Path, plots: bool) -> list[pathlib.Path]:
    """``bench_<preset>.md`` and ``.meta.json`` next to the JSON lines, and the figures."""
    from tables import report
    name = info["preset"]
    (out / f"bench_{name}.meta.json").write_text(json.dumps(info, indent=1) + "\n")
    paths = [out / f"bench_{name}.md"]
    paths[0].write_text(report(rows, info))
    if plots:
        from plots import plot_all
        paths += plot_all(rows, out / "figures", name)
    return paths


def previous_rows(jsonl: pathlib.Path, append: bool) -> list[dict]:
    """The rows already measured, when appending (none otherwise, or when there are none yet)."""
    if not append or not jsonl.exists():
        return []
    return [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]


def merged_info(meta: pathlib.Path, info: dict, append: bool) -> dict:
    """This run's ``info``; when appending, with every earlier run kept in ``runs`` and the wall
    and CPU times summed over all of them (the table's header then describes the whole file)."""
    if not append or not meta.exists():
        return {**info, "runs": [info]}
    before = json.loads(meta.read_text())
    runs = before.get("runs") or [{k: v for k, v in before.items() if k != "runs"}]
    runs = [*runs, info]
    return {**info, "runs": runs, "wall_s": sum(r.get("wall_s", 0) for r in runs), "cpu_s": sum(r.get("cpu_s", 0) for r in runs),
            "load_start": max(r.get("load_start", 0) for r in runs), "load_end": max(r.get("load_end", 0) for r in runs)}


def main(argv: list[str] | None = None) -> int:
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    args = parser().parse_args(argv)
    preset = PRESETS["quick" if args.quick else args.preset]
    out = pathlib.Path(args.out_dir)
    jsonl = out / f"bench_{preset.name}.jsonl"
    if args.report_only:
        rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
        info = json.loads((out / f"bench_{preset.name}.meta.json").read_text())
        print(", ".join(map(str, write_outputs(rows, info, out, not args.no_plots))))
        return 0
    args.timeout = args.timeout or preset.timeout_s
    methods = [m for m in args.methods.split(",") if m] or list(preset.methods)
    unknown = set(methods) - set(ALL_METHODS)
    if unknown or args.repeats < 1:
        raise SystemExit(f"ntkc bench: unknown methods {sorted(unknown)}" if unknown else "ntkc bench: --repeats >= 1")
    if set(methods) & set(REFERENCE) and not pathlib.Path(args.nt_python).is_file():
        raise SystemExit("ntkc bench: the nt_* methods need --nt-python, the interpreter of a virtual environment "
                         "with neural-tangents 0.6.5 (see benchmarks/neural_tangents_ref.py)")
    if any(m in BASELINES for m in methods) and methods[0] not in BASELINES:
        methods.sort(key=ALL_METHODS.index)      # the agreement reference is a baseline when one runs
    try:
        only = re.compile(args.only)
    except re.error as error:
        raise SystemExit(f"ntkc bench: --only is not a regular expression: {error}") from None
    configs = [c for c in preset.configs() if only.search(c.key)]
    if not configs:
        raise SystemExit(f"ntkc bench: no configuration of preset {preset.name!r} matches --only {args.only!r}")
    needed = {"flax"} if any(c.figure == "flax" for c in configs) else set()
    needed |= set() if args.no_plots else {"matplotlib"}
    absent = sorted(name for name in needed if importlib.util.find_spec(name) is None)
    if absent:
        raise SystemExit(f"ntkc bench: needs {', '.join(absent)}: pip install -e \".[bench]\" in the clone")
    out.mkdir(parents=True, exist_ok=True)
    info = {**machine(), "preset": preset.name, "repeats": args.repeats, "timeout_s": args.timeout,
            "memory_gb": args.memory_gb, "configs": len(configs), "methods": methods,
            "only": args.only, "load_start": os.getloadavg()[0]}
    measuring = {(c.key, m) for c in configs for m in methods}
    kept = [row for row in previous_rows(jsonl, args.append) if (row["key"], row["method"]) not in measuring]
    rows = list(kept)
    with tempfile.TemporaryDirectory(prefix="ntkc_bench_") as scratch, jsonl.open("w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in kept)
        for config in configs:
            for row in measure_config(config, methods, args, scratch):
                fh.write(json.dumps(row) + "\n")
                rows.append(row)
            fh.flush()
    if kept:       # a re-measured configuration's older rows take this run's prediction of auto's pick
        picks = {row["key"]: row["auto_pick"] for row in rows[len(kept):]}
        for row in kept:
            row["auto_pick"] = picks.get(row["key"], row["auto_pick"])
        jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    info.update(wall_s=time.perf_counter() - t0, cpu_s=cpu_seconds() - cpu0, load_end=os.getloadavg()[0])
    wall_s = info["wall_s"]
    info = merged_info(out / f"bench_{preset.name}.meta.json", info, args.append)
    info["configs"] = len({row["key"] for row in rows})
    paths = write_outputs(rows, info, out, not args.no_plots)
    print(f"{len(rows) - len(kept)} points in {wall_s / 60:.1f} min -> {jsonl}" + "".join(f", {p}" for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())

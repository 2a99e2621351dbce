"""Runs ``nt_batch_ref.py`` (neural-tangents 0.6.5's tiled empirical NTK) over a list of
``(model, n, batch_size)`` points, each in a process of its own under neural-tangents'
interpreter and with a time cap, and appends one JSON line per point to ``--out``. A point that
runs out of time or fails is recorded with ``wall_s: null`` and an ``error``.

Run with the project's interpreter::

    .venv/bin/python benchmarks/nt_batch_run.py --nt-python /tmp/ntvenv/bin/python
    .venv/bin/python benchmarks/nt_batch_run.py --nt-python /tmp/ntvenv/bin/python --points mlp:2000:500 cnn:1000:250
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess

HERE = pathlib.Path(__file__).resolve().parent

#: The default points, ``model:n:batch_size``.
POINTS = ("mlp:1000:250", "mlp:2000:500", "mlp:4000:500", "cnn:500:250", "cnn:1000:250", "cnn:2000:500")


def run_point(args: argparse.Namespace, model: str, n: int, batch_size: int) -> dict:
    """One point's JSON row; ``wall_s`` is ``None`` where it timed out or failed."""
    cmd = [args.nt_python, str(HERE / "nt_batch_ref.py"), "--model", model, "--n", str(n),
           "--batch-size", str(batch_size), "--implementation", args.implementation]
    if args.repeat:
        cmd.append("--repeat")
    row = {"model": model, "n": n, "batch_size": batch_size, "implementation": args.implementation,
           "wall_s": None}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return row | {"error": f"timeout after {args.timeout:g} s"}
    if done.returncode != 0:
        return row | {"error": f"exit {done.returncode}: {done.stderr.strip()[-500:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nt-python", required=True, help="neural-tangents' interpreter (neural_tangents_ref.py)")
    p.add_argument("--points", nargs="+", default=POINTS, help="model:n:batch_size, batch_size dividing n")
    p.add_argument("--implementation", default="STRUCTURED_DERIVATIVES")
    p.add_argument("--repeat", action="store_true", help="also time a second call of each kernel")
    p.add_argument("--timeout", type=float, default=900.0, help="time cap of one point [s]")
    p.add_argument("--out", default="docs/nt_batch.jsonl")
    args = p.parse_args()

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for point in args.points:
        model, n, batch_size = point.split(":")
        row = run_point(args, model, int(n), int(batch_size))
        print(json.dumps(row), flush=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

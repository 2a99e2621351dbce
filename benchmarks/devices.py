"""Parallel efficiency of ``ntk_matrix(mesh=...)`` from 1 to 2 CPU devices, one thread per device.

Usage:
    python benchmarks/devices.py                       # MLP N = 4000 and CNN N = 400, traced
    python benchmarks/devices.py --points mlp:2000 cnn:200

Each point runs in a fresh process with two host devices and XLA's CPU threading pinned to one
thread per device (``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``), so
one device is one core and two devices are two cores — not two cores against two cores. It
times the traced kernel (``trace_axes=(-1,)``, x2 = None, ``memory_limit`` 1 GiB per device,
the tile fixed by the 1-device plan) on a mesh of the first device, then of both (each after a
warm-up call that compiles), and prints per point the two times, the speedup, the parallel
efficiency (speedup / 2), the schedule's layout, its steps and its idle fraction.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
FLAGS = "--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def point(model: str, n: int, memory: int) -> dict:
    import jax
    import numpy as np

    import ntkc
    from ntkc.tiling import devices

    sys.path.insert(0, str(HERE))
    import tiled_models

    f, params, x = tiled_models.make(model, n)
    plan = ntkc.tile_plan(f, params, x, memory_limit=memory)
    row = {"model": model, "n": n, "block": list(plan.block), "method": plan.method, "banded": plan.banded}
    kernels = {}
    for size in (1, 2):
        mesh = jax.sharding.Mesh(np.array(jax.devices()[:size]), ("tiles",))
        call = lambda: ntkc.ntk_matrix(f, params, x, memory_limit=memory, block_size=plan.block, mesh=mesh,
                                       progress=False)
        call()  # compiles
        start = time.perf_counter()
        kernels[size] = np.asarray(call())
        row[f"seconds_{size}"] = time.perf_counter() - start
        schedule = devices.schedule(plan, mesh)
        row[f"layout_{size}"], row[f"steps_{size}"] = schedule.layout, len(schedule.steps)
        row[f"idle_{size}"] = schedule.idle
    row["speedup"] = row["seconds_1"] / row["seconds_2"]
    row["efficiency"] = row["speedup"] / 2
    row["max_difference"] = float(np.abs(kernels[1] - kernels[2]).max())
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", nargs="+", default=["mlp:4000", "cnn:400"], help="model:n")
    p.add_argument("--memory", type=float, default=1.0, help="memory_limit per device in GiB")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        model, n = a.one.split(":")
        print(json.dumps(point(model, int(n), int(a.memory * 2**30))), flush=True)
        return
    print("| kernel | tile | layout | steps (1 → 2 devices) | idle on 2 | 1 device [s] | 2 devices [s] | speedup | efficiency |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in a.points:
        env = {**os.environ, "XLA_FLAGS": FLAGS}
        done = subprocess.run([sys.executable, __file__, "--one", spec, "--memory", str(a.memory)], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"| {spec} | failed: {done.stderr.strip()[-300:]} |")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {r['model']} N = {r['n']} | {r['block'][0]}×{r['block'][1]} | {r['layout_2']} | "
              f"{r['steps_1']} → {r['steps_2']} | {100 * r['idle_2']:.1f} % | {r['seconds_1']:.2f} | "
              f"{r['seconds_2']:.2f} | {r['speedup']:.2f}× | {100 * r['efficiency']:.0f} % |", flush=True)


if __name__ == "__main__":
    main()

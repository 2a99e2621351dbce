"""Parallel efficiency of ``ntk_matrix(mesh=...)`` from 1 to 2 CPU devices, one thread per device.

Usage:
    python benchmarks/devices.py                       # MLP N = 4000 and CNN N = 600, traced
    python benchmarks/devices.py --points mlp:2000 cnn:200 --memory 1

Each point runs twice, each time in a fresh process with two host devices: a mesh of one device
in a process pinned to one core (``os.sched_setaffinity``), then a mesh of both devices in a
process pinned to two — one core per device, not two cores against two cores. (XLA's threading
flags ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` no longer bound a
CPU device to one thread: a device alone still keeps both cores busy.) It times the traced
kernel (``trace_axes=(-1,)``, x2 = None, ``memory_limit`` 256 MiB per device, the tile of the
plan for that mesh) after a warm-up call that compiles, and prints per point the two times, the
speedup, the parallel efficiency (speedup / 2), the schedule's layout, its steps and its idle
fraction, and the largest difference of the two kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
FLAGS = "--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def point(model: str, n: int, memory: int, size: int, save: str) -> dict:
    """The kernel on a mesh of ``size`` devices, in this process pinned to ``size`` cores."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:size])
    import jax
    import numpy as np

    import ntkc
    from ntkc.tiling import devices

    sys.path.insert(0, str(HERE))
    import tiled_models

    f, params, x = tiled_models.make(model, n)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:size]), ("tiles",))
    block = ntkc.tile_plan(f, params, x, memory_limit=memory, mesh=mesh).block  # the plan for this mesh
    call = lambda: ntkc.ntk_matrix(f, params, x, memory_limit=memory, block_size=block, mesh=mesh, progress=False)
    call()  # compiles
    start = time.perf_counter()
    kernel = np.asarray(call())
    seconds = time.perf_counter() - start
    np.save(save, kernel)
    plan = ntkc.tile_plan(f, params, x, memory_limit=memory, block_size=block, mesh=mesh)
    schedule = devices.schedule(plan, mesh)
    return {"model": model, "n": n, "block": list(block), "method": plan.method, "seconds": seconds,
            "layout": schedule.layout, "steps": len(schedule.steps), "idle": schedule.idle}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", nargs="+", default=["mlp:4000", "cnn:600"], help="model:n")
    p.add_argument("--memory", type=float, default=0.25, help="memory_limit per device in GiB")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--save", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        model, n = a.one.split(":")
        print(json.dumps(point(model, int(n), int(a.memory * 2**30), a.size, a.save)), flush=True)
        return
    import numpy as np

    print("| kernel | tiles (1 → 2 devices) | layout | steps (1 → 2 devices) | idle on 2 | 1 device, 1 core [s] | 2 devices, 2 cores [s] "
          "| speedup | efficiency | difference |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for spec in a.points:
            rows = {}
            for size in (1, 2):
                save = str(pathlib.Path(folder) / f"k{size}.npy")
                done = subprocess.run([sys.executable, __file__, "--one", spec, "--memory", str(a.memory),
                                       "--size", str(size), "--save", save],
                                      env={**os.environ, "XLA_FLAGS": FLAGS}, capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"| {spec} | failed on {size}: {done.stderr.strip()[-300:]} |")
                    break
                rows[size] = json.loads(done.stdout.strip().splitlines()[-1])
            else:
                one, two = rows[1], rows[2]
                speedup = one["seconds"] / two["seconds"]
                difference = float(np.abs(np.load(str(pathlib.Path(folder) / "k1.npy"))
                                          - np.load(str(pathlib.Path(folder) / "k2.npy"))).max())
                print(f"| {one['model']} N = {one['n']} | {one['block'][0]}×{one['block'][1]} → "
                      f"{two['block'][0]}×{two['block'][1]} | {two['layout']} | "
                      f"{one['steps']} → {two['steps']} | {100 * two['idle']:.1f} % | {one['seconds']:.2f} | "
                      f"{two['seconds']:.2f} | {speedup:.2f}× | {100 * speedup / 2:.0f} % | {difference:.1e} |",
                      flush=True)


if __name__ == "__main__":
    main()

"""The tiled kernel's schedule on 8 to 1,024 devices, simulated from per-tile times measured here.

Usage:
    python benchmarks/mesh_schedule.py                          # the traced MLP kernel, N = 10^6
    python benchmarks/mesh_schedule.py --model cnn --n 100000 --repeats 1   # (a 10^6 CNN plan lists 10^8 tiles)

For each device count it plans the traced kernel (``trace_axes=(-1,)``, x2 = None) of a
``tiled_models`` model on ``--n`` examples with ``memory_limit`` 2 GiB per device as
``ntk_matrix`` would for that many devices (the inputs are one example repeated: only shapes
matter), times one band's row program and one tile's column program alone on this machine, and
replays ``ntk_matrix``'s schedule for ``--per-host`` devices per process and 1, 2,
4, … processes: in row bands, each process takes whole bands of ``per_host · b1`` rows (longest
first, to the least loaded process), each of its steps runs one column tile on all of its
devices at once, and a band first runs its rows; in square tiles (when those are priced
faster), every device takes one tile per step. Printed per device count: the steps of the busiest process, the
predicted wall time, the idle fraction (device time computing nothing of the kernel: the band
tiles' parts below the diagonal, padding, processes waiting for the busiest), and the output
bandwidth the kernel's float32 file needs at that rate.

Assumptions: a tile's time on every device is the time measured here (same device, no
contention), transfers of x2's tile to the devices and of results to the host overlap the
compute (JAX dispatches asynchronously), and processes never wait for each other before the
end (they share no data while computing).
"""

from __future__ import annotations

import argparse
import heapq
import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tiled_models  # noqa: E402
from tiled import alone_times  # noqa: E402


def measured(model: str, n: int, memory: int, spread: tuple[int, int], repeats: int) -> dict:
    """The tile plan for ``n`` examples on ``spread`` = (devices per process, processes), as
    ``ntk_matrix`` makes it for them, and its per-band and per-tile times on this machine."""
    from ntkc.tiling.driver import _options
    from ntkc.tiling.plan import make_tile_plan

    f, params, x = tiled_models.make(model, 1)
    x = np.broadcast_to(x, (n,) + x.shape[1:])
    options = _options(f, "auto", (-1,), (), 0, memory)
    plan = make_tile_plan(f, params, x, None, {}, method="auto", options=options, block_size=None, spread=spread)
    _, row_s, column_s = alone_times(plan, params, repeats)
    return {"plan": plan, "row_s": row_s if plan.banded else 0.0, "column_s": column_s}


def simulate_tiles(n: int, block: tuple[int, int], tile_s: float, per_host: int, hosts: int) -> dict:
    """The schedule of square tiles, one per device and step, the steps shared by the hosts."""
    b = block[0]
    blocks = -(-n // b)
    tiles = blocks * (blocks + 1) // 2
    devices = per_host * hosts
    steps = -(-tiles // devices)
    wall = steps * tile_s
    useful = n * (n + 1) / 2 * tile_s / (b * b)
    return {"devices": devices, "hosts": hosts, "bands": 0, "busiest_steps": steps, "wall_s": wall,
            "idle": 1.0 - useful / (wall * devices), "output_gb_per_s": n * n * 4 / wall / 1e9}


def simulate(n: int, block: tuple[int, int], row_s: float, column_s: float, per_host: int, hosts: int) -> dict:
    """The schedule of rows over each host's mesh, whole bands shared by the hosts."""
    b1, b2 = block
    height = per_host * b1
    bands = [(start, -(-(n - start) // b2)) for start in range(0, n, height)]  # (first row, column tiles)
    seconds = [row_s + tiles * column_s for _, tiles in bands]
    loads = [(0.0, h) for h in range(hosts)]
    steps = [0] * hosts
    for k in sorted(range(len(bands)), key=lambda k: -seconds[k]):
        load, host = heapq.heappop(loads)
        steps[host] += bands[k][1]
        heapq.heappush(loads, (load + seconds[k], host))
    wall = max(load for load, _ in loads)
    useful = n * (n + 1) / 2 * column_s / (b1 * b2) + n / b1 * row_s  # every pair once, every row once
    devices = per_host * hosts
    return {"devices": devices, "hosts": hosts, "bands": len(bands), "busiest_steps": max(steps),
            "wall_s": wall, "idle": 1.0 - useful / (wall * devices),
            "output_gb_per_s": n * n * 4 / wall / 1e9}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=tiled_models.MODELS, default="mlp")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--memory", type=float, default=2.0, help="memory_limit per device in GiB")
    p.add_argument("--per-host", type=int, default=8, help="devices per process")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    print("| devices | processes | tile | bands | steps of the busiest process | predicted wall | idle | output rate |")
    print("|---|---|---|---|---|---|---|---|")
    hosts, rows = 1, []
    while hosts * a.per_host <= 1024:
        m = measured(a.model, a.n, int(a.memory * 2**30), (a.per_host, hosts), a.repeats)
        plan = m["plan"]
        if plan.banded:
            r = simulate(a.n, plan.block, m["row_s"], m["column_s"], a.per_host, hosts)
        else:
            r = simulate_tiles(a.n, plan.block, m["column_s"], a.per_host, hosts)
        rows.append({**r, "block": list(plan.block), "method": plan.method, "band_row_s": m["row_s"],
                     "column_tile_s": m["column_s"]})
        print(f"| {r['devices']} | {r['hosts']} | {plan.block[0]}×{plan.block[1]} | {r['bands']} | "
              f"{r['busiest_steps']} | {r['wall_s'] / 3600:.2f} h | {100 * r['idle']:.1f} % | "
              f"{r['output_gb_per_s']:.2f} GB/s |", flush=True)
        hosts *= 2
    print(json.dumps({"model": a.model, "n": a.n, "rows": rows}))


if __name__ == "__main__":
    main()

"""A dataset's kernel with ``ntkc.ntk_matrix``: wall time, peak memory, driver overhead, symmetry.

Usage:
    python benchmarks/tiled.py --model mlp --n 10000                 # memory_limit 2 GiB, out-of-core
    python benchmarks/tiled.py --model cnn --n 2000 --unsymmetric    # also the kernel without symmetry
    python benchmarks/tiled.py --model cnn --n 10000 --predict       # predicted from per-tile times

Each point runs in this process: the traced kernel (``trace_axes=(-1,)``, ``vmap_axes=0``) of a
``tiled_models`` model on ``n`` examples with itself, ``memory_limit`` 2 GiB (``--memory``),
written to a ``.npy`` file (``--out``; a temporary directory by default). It reports, as one
JSON line: the tile plan (tile, tiles, method, predicted FLOPs and time), the wall time of one
``ntk_matrix`` call (planning and compilation included) and from its first tile to its last, the peak of resident
memory (``VmHWM``, of the process up to the end of the call) and of anonymous resident memory (``RssAnon``, sampled every 20 ms: the
kernel's file pages are the OS's cache, not the process's), the median time of a tile in the run
against the same full tile run alone (the driver's overhead), and with ``--unsymmetric`` the
same kernel computed from every tile (x2 a copy of x1) for the symmetric saving.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tiled_models  # noqa: E402
from worker import max_rss_mib, timed  # noqa: E402


class AnonPeak:
    """The peak of ``RssAnon`` (MiB), sampled in a background thread."""

    def __init__(self, every_s: float = 0.02):
        self.peak, self.every_s = 0.0, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for line in pathlib.Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.peak = max(self.peak, int(line.split()[1]) / 1024)
            time.sleep(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def alone_times(plan, params, repeats: int) -> tuple[list[int], float, float]:
    """The indices of the plan's full tiles, and the median times of a band's row program and of
    one full tile's program, each run alone (NaN for the row of an unbanded plan)."""
    import jax

    from ntkc.tiling.driver import row_chunks

    if plan.banded:  # a tile's column program; a band's first tile also runs its row program
        full = [i for i, t in enumerate(plan.tiles) if i > 0 and plan.tiles[i - 1].i0 == t.i0]
        tile = plan.tiles[full[0]] if full else plan.tiles[0]
        band = plan.kernel(plan.block, False)
        chunks = row_chunks(plan, tile)
        row_alone = timed(lambda: band.row(params, chunks), repeats)  # one band's rows alive at a time
        carried = jax.block_until_ready(band.row(params, chunks))
        b, kw2 = plan.context.side2.padded(tile.j0, tile.j1, plan.block[1])
        return full, row_alone, timed(lambda: band.column(carried, params, b, kw2), repeats)
    full = [i for i, t in enumerate(plan.tiles) if t.shape == plan.block and not t.on_diagonal]
    tile = plan.tiles[full[0]] if full else plan.tiles[0]
    alone_kernel = plan.kernel(tile.shape, plan.context.single(tile))
    a, kw1 = plan.context.side1.block(tile.i0, tile.i1)
    b, kw2 = plan.context.side2.block(tile.j0, tile.j1)
    args = (a, None if plan.context.single(tile) else b, params, kw1, kw2)
    return full, float("nan"), timed(lambda: alone_kernel.run(*args), repeats)


def predict(model: str, n: int, memory: int, repeats: int) -> dict:
    """The wall time of the kernel on ``n`` examples predicted from its tile plan and per-tile
    times, without computing it: every band's row program plus every tile's column program (or
    every tile's program), each timed alone. Own columns of a band reuse its rows and cost less,
    so this is an upper bound on the tiles' time."""
    import ntkc

    f, params, x = tiled_models.make(model, n)
    t0 = time.perf_counter()
    plan = ntkc.tile_plan(f, params, x, memory_limit=memory)
    planning = time.perf_counter() - t0
    _, row_alone, alone = alone_times(plan, params, repeats)
    bands = len({t.i0 for t in plan.tiles}) if plan.banded else 0
    tiles_s = len(plan.tiles) * alone + (bands * row_alone if plan.banded else 0.0)
    return {"model": model, "n": n, "memory_limit": memory, "block": list(plan.block), "tiles": len(plan.tiles),
            "bands": bands, "method": plan.method, "predicted_gflop": plan.flops / 1e9,
            "predicted_s": plan.seconds, "tile_peak_mib": plan.peak_bytes / 2**20, "planning_s": planning,
            "tile_alone_s": alone, "band_row_alone_s": row_alone, "predicted_from_tiles_s": tiles_s}


def run(model: str, n: int, memory: int, out: pathlib.Path, unsymmetric: bool, repeats: int) -> dict:
    import numpy as np

    import ntkc

    f, params, x = tiled_models.make(model, n)
    stamps = []
    with AnonPeak() as baseline_anon:  # the process with JAX and the inputs
        time.sleep(0.1)
    start = time.perf_counter()
    with AnonPeak() as anon:  # one call, as a user makes it: planning, compiling, every tile
        kernel = ntkc.ntk_matrix(f, params, x, memory_limit=memory, out=out,
                                 progress=lambda done, total: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - start
    peak_rss = max_rss_mib()  # before the tiles below are timed alone
    plan = ntkc.tile_plan(f, params, x, memory_limit=memory)  # the same plan, its tiles already compiled
    gaps = np.diff(stamps)
    gaps = np.concatenate([[float("nan")], gaps])  # the first tile's gap would include planning
    full, row_alone, alone = alone_times(plan, params, repeats)
    in_run = statistics.median(gaps[i] for i in full[1:]) if len(full) > 1 else float("nan")
    row = {"model": model, "n": n, "memory_limit": memory, "block": list(plan.block), "tiles": len(plan.tiles),
           "method": plan.method, "predicted_gflop": plan.flops / 1e9, "predicted_s": plan.seconds,
           "tile_peak_mib": plan.peak_bytes / 2**20, "wall_s": wall, "tiles_s": float(stamps[-1] - stamps[0]),
           "banded": plan.banded, "tile_in_run_s": in_run, "tile_alone_s": alone, "band_row_alone_s": row_alone,
           "peak_rss_mib": peak_rss, "peak_anon_mib": anon.peak, "baseline_anon_mib": baseline_anon.peak,
           "kernel_shape": list(np.shape(kernel)), "kernel_sum": float(np.sum(kernel, dtype=np.float64))}
    row["driver_overhead"] = row["tile_in_run_s"] / row["tile_alone_s"] - 1
    if unsymmetric:
        pathlib.Path("/proc/self/clear_refs").write_text("5")  # the next VmHWM is this run's
        t0 = time.perf_counter()
        every = ntkc.ntk_matrix(f, params, x, np.array(x), memory_limit=memory, progress=False)
        row["unsymmetric_wall_s"] = time.perf_counter() - t0
        row["unsymmetric_peak_rss_mib"] = max_rss_mib()
        row["max_difference"] = float(np.max(np.abs(np.asarray(every) - np.asarray(kernel))))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=tiled_models.MODELS, default="mlp")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--memory", type=float, default=2.0, help="memory_limit in GiB (default 2)")
    p.add_argument("--out", default=None, help="the kernel's .npy file (default: a temporary file)")
    p.add_argument("--unsymmetric", action="store_true", help="also compute it from every tile")
    p.add_argument("--repeats", type=int, default=3, help="runs of the lone tile (median)")
    p.add_argument("--predict", action="store_true",
                   help="only predict the wall time from the tile plan and per-tile times")
    a = p.parse_args()
    if a.predict:
        print(json.dumps(predict(a.model, a.n, int(a.memory * 2**30), a.repeats)), flush=True)
        return
    with tempfile.TemporaryDirectory() as folder:
        out = pathlib.Path(a.out) if a.out else pathlib.Path(folder) / "K.npy"
        row = run(a.model, a.n, int(a.memory * 2**30), out, a.unsymmetric, a.repeats)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

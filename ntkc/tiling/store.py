"""Where a tiled kernel is assembled: host arrays, or memory-mapped ``.npy`` files with a record of
the finished tiles, so that an interrupted run resumes.

``out=None`` assembles the kernel in host memory. ``out="kernel.npy"`` (one output leaf) or
``out="kernel_dir"`` (a pytree output: one ``.npy`` per leaf, named after its key path) writes
each finished tile into memory-mapped files and flushes them; ``<out>.tiles.json`` (a file) or
``<out>/tiles.json`` (a directory) records the run's fingerprint and, after every flush, the
finished tiles. A traced example axis (the kernel is a mean over examples) is accumulated in
``<out>.partial.npz``, written atomically with the tiles it contains, and written out at the end.

A record whose fingerprint differs from the run's is another kernel: the run is refused, and an
existing ``out`` without a record is not overwritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import re
import time
from typing import Any

import jax
import numpy as np

from ntkc.tiling import processes as across
from ntkc.tiling.geometry import TRACE, Layout, Tile

PyTree = Any


def fingerprint(parts: list, arrays: list) -> str:
    """A hash of ``parts`` (reprs: options, plan, program, versions) and of every array's shape,
    dtype and bytes (read in chunks along the first axis, so memmaps are streamed)."""
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        h.update(repr(part).encode())
    for array in arrays:
        array = np.asarray(array) if not isinstance(array, np.ndarray) else array
        h.update(repr((array.shape, array.dtype.str)).encode())
        flat = array.reshape(array.shape[0], -1) if array.ndim else array.reshape(1, 1)
        step = max(1, (1 << 24) // max(1, flat[:1].nbytes))
        for start in range(0, flat.shape[0], step):
            h.update(np.ascontiguousarray(flat[start:start + step]).tobytes())
    return h.hexdigest()


def _leaf_file(keypath) -> str:
    name = re.sub(r"\W+", "_", jax.tree_util.keystr(keypath)).strip("_")
    return f"{name or 'kernel'}.npy"


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


#: Seconds between flushes of the output files (each followed by the record of the tiles it
#: made durable): an interrupted run recomputes at most the tiles of this long.
FLUSH_SECONDS = 10.0


class Store:
    """The assembled kernel: one array per output leaf, the finished tiles, and (with ``out``)
    the files behind them."""

    def __init__(self, layouts: list[Layout], out_tree, dtype, out, fingerprint_: str, n: int,
                 processes: tuple[int, int] = (1, 0)):
        self.layouts, self.out_tree, self.n = layouts, out_tree, n
        self.processes = processes
        self.dtypes = [np.dtype(dtype or layout.dtype) for layout in layouts]
        self.trace = layouts[0].mode == TRACE
        self.done: set[int] = set()
        self.finished: list[int] = []  # written, not yet flushed and recorded
        self.synced = time.monotonic()
        self.path = None if out is None else pathlib.Path(out)
        if self.path is None:
            self.arrays = [np.zeros(l.shape, d) for l, d in zip(layouts, self.dtypes)]
            return
        several = out_tree.num_leaves > 1 or out_tree.num_nodes > 1
        files = ([self.path / _leaf_file(k) for k, _ in jax.tree_util.tree_flatten_with_path(
            jax.tree_util.tree_unflatten(out_tree, [0] * out_tree.num_leaves))[0]]
                 if several else [self.path])
        count, this = processes
        suffix = "" if count == 1 else f".p{this}of{count}"
        base = self.path if several else self.path.with_name(self.path.name + ".")
        self.record = pathlib.Path(f"{base}{'/' if several else ''}tiles{suffix}.json")
        self.partial = pathlib.Path(f"{base}{'/' if several else ''}partial{suffix}.npz")
        self.siblings = f"{self.record.name[:-len(f'tiles{suffix}.json')]}tiles.p*of{count}.json"
        resume = self._check(fingerprint_, files, several)
        if count > 1:  # every process has checked before the first one creates anything
            across.barrier()
        if this == 0:
            if several:
                self.path.mkdir(parents=True, exist_ok=True)
            exist = resume or (count > 1 and all(f.exists() for f in files))
            self.arrays = [np.lib.format.open_memmap(f, mode="r+" if exist else "w+", dtype=d, shape=l.shape)
                           for f, l, d in zip(files, layouts, self.dtypes)]
        if count > 1:
            for array in getattr(self, "arrays", []):
                array.flush()
            across.barrier()
        if this != 0:
            self.arrays = [np.lib.format.open_memmap(f, mode="r+") for f in files]
        if resume:
            self.done = set(json.loads(self.record.read_text())["done"])
        if self.trace:
            self.sums = [np.zeros(l.shape, np.float64) for l in layouts]
            if resume and self.partial.exists():
                with np.load(self.partial) as saved:
                    self.done = {int(i) for i in saved["done"]}
                    self.sums = [saved[f"leaf{k}"] for k in range(len(layouts))]
        self.fingerprint = fingerprint_
        self._save()

    def _check(self, fingerprint_: str, files: list[pathlib.Path], several: bool) -> bool:
        """Whether this is a resumed run; refuse an ``out`` that belongs to something else (with
        several processes, files any process's record of this kernel vouches for are this
        kernel's, resumed or not)."""
        exists = self.path.exists()
        records = [self.record]
        if self.processes[0] > 1:
            records += sorted(r for r in self.record.parent.glob(self.siblings) if r != self.record)
        for record in records:
            if record.exists():
                saved = json.loads(record.read_text()).get("fingerprint")
                if saved != fingerprint_:
                    raise FileExistsError(
                        f"`out` {str(self.path)!r} holds another kernel (its record {record.name} has another "
                        "fingerprint: other inputs, parameters, options, tiles, model or versions); choose another "
                        "path or remove it.")
        if self.record.exists():
            return all(f.exists() for f in files)
        if any(r.exists() for r in records):
            return False
        if exists and (not several or any(self.path.iterdir())):
            raise FileExistsError(f"`out` {str(self.path)!r} exists and has no ntkc tile record; it is not "
                                  "overwritten. Choose another path or remove it.")
        return False

    def _save(self) -> None:
        if self.path is None:
            return
        if self.trace:
            buffer = io.BytesIO()
            np.savez(buffer, done=np.array(sorted(self.done), dtype=np.int64),
                     **{f"leaf{k}": s for k, s in enumerate(self.sums)})
            _atomic_write(self.partial, buffer.getvalue())
        _atomic_write(self.record, json.dumps({"fingerprint": self.fingerprint, "done": sorted(self.done)}).encode())

    def write(self, index: int, tile: Tile, kernels: PyTree, symmetric: bool) -> None:
        """Put tile ``index``'s kernels (and their mirror image) in place; with ``out``, the
        finished tiles are flushed and recorded every :data:`FLUSH_SECONDS` (and by :meth:`sync`)."""
        blocks = [np.asarray(k) for k in jax.tree_util.tree_leaves(kernels)]
        for k, (layout, block) in enumerate(zip(self.layouts, blocks)):
            if self.trace:
                target = self.sums if self.path is not None else self.arrays
                target[k] = target[k] + block.astype(target[k].dtype) * (tile.shape[0] / self.n)
                continue
            self.arrays[k][layout.index(tile)] = block
            if symmetric and not tile.on_diagonal:
                self.arrays[k][layout.index(Tile(tile.j0, tile.j1, tile.i0, tile.i1))] = layout.mirror(block)
        self.finished.append(index)
        if self.path is None:
            self.done.update(self.finished)
            self.finished = []
        elif time.monotonic() - self.synced >= FLUSH_SECONDS:
            self.sync()

    def sync(self) -> None:
        """Flush the files and record the tiles finished since the last time as done."""
        if self.path is not None and self.finished:
            if not self.trace:
                for array in self.arrays:
                    array.flush()
            self.done.update(self.finished)
            self.finished = []
            self._save()
        self.synced = time.monotonic()

    def result(self) -> PyTree:
        """The kernel: one array per output leaf, in ``f``'s output tree (with several
        processes: every process's tiles, in every process)."""
        count, this = self.processes
        if count > 1 and self.path is None:
            self.arrays = [across.allreduce_sum(a) for a in self.arrays]
        elif count > 1 and self.trace:
            self.sums = [across.allreduce_sum(s) for s in self.sums]
        if self.trace and self.path is not None:
            if this == 0:
                for array, total in zip(self.arrays, self.sums):
                    array[...] = total
                    array.flush()
        elif self.trace:
            self.arrays = [a.astype(d) for a, d in zip(self.arrays, self.dtypes)]
        if count > 1 and self.path is not None:  # every process's tiles are in the files
            across.barrier()
        return jax.tree_util.tree_unflatten(self.out_tree, self.arrays)


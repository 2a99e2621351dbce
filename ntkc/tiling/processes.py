"""Tiles across processes: a disjoint share of the steps per process, and the kernel put together.

After ``jax.distributed.initialize(...)``, the same ``ntk_matrix`` call in every process plans
the same steps (the plan depends only on shapes and options) and computes the share of them
:func:`share` gives this process — whole row bands at a time, so a band's side-1 work is never
repeated, balanced by their cost (longest first, each to the least loaded process). Every
entry of the kernel is then written by exactly one process: a tile and its mirror image across
the diagonal never meet another process's tiles (a band's tiles that cross the diagonal mirror
into the band itself).

The kernel is put together with JAX's own collectives — one device per process, a sum over
processes of each process's part (zero where others wrote; a traced kernel's partial means add
up) — in row blocks of at most :data:`REDUCE_BYTES`, so no process holds more than the kernel
and one block. With ``out`` on a filesystem every process writes to, each process writes its
tiles into the shared file and :func:`barrier` waits for all of them instead.
"""

from __future__ import annotations

import heapq
from typing import Sequence

import jax
import numpy as np

#: The largest block of the kernel reduced across processes in one collective [bytes].
REDUCE_BYTES = 64 << 20


def count() -> int:
    return jax.process_count()


def index() -> int:
    return jax.process_index()


def share(costs: Sequence[float], groups: Sequence, processes: int, this: int) -> list[int]:
    """The positions of the steps process ``this`` of ``processes`` computes: steps with the same
    group (a band; None: a group of its own) go to one process, groups largest first to the
    least loaded process (ties: the lowest index).

    >>> share([4, 1, 1, 3, 3], ["a", "b", "b", None, None], 2, 0), share([4, 1, 1, 3, 3], ["a", "b", "b", None, None], 2, 1)
    ([0, 1, 2], [3, 4])
    """
    members: dict = {}
    for position, group in enumerate(groups):
        members.setdefault(("band", group) if group is not None else ("step", position), []).append(position)
    weight = {key: sum(costs[p] for p in positions) for key, positions in members.items()}
    order = sorted(members, key=lambda key: (-weight[key], members[key][0]))
    loads = [(0.0, p) for p in range(processes)]
    mine: list[int] = []
    for key in order:
        load, process = heapq.heappop(loads)
        if process == this:
            mine.extend(members[key])
        heapq.heappush(loads, (load + weight[key], process))
    return sorted(mine)


def _mesh() -> jax.sharding.Mesh:
    """One device per process (each process's first local device), on one axis."""
    first = [min((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)
             for p in range(jax.process_count())]
    return jax.sharding.Mesh(np.array(first), ("processes",))


def _summed(block: np.ndarray, mesh: jax.sharding.Mesh) -> np.ndarray:
    spec = jax.sharding.PartitionSpec
    stacked = jax.make_array_from_process_local_data(jax.sharding.NamedSharding(mesh, spec("processes")),
                                                     block[None], (mesh.size,) + block.shape)
    total = jax.jit(lambda a: a.sum(0), out_shardings=jax.sharding.NamedSharding(mesh, spec()))(stacked)
    return np.asarray(total.addressable_data(0))


def allreduce_sum(array: np.ndarray) -> np.ndarray:
    """The sum over processes of every process's ``array`` (the same shape in all), in every
    process; reduced in row blocks of at most :data:`REDUCE_BYTES`."""
    mesh = _mesh()
    if array.ndim == 0 or array.nbytes <= REDUCE_BYTES:
        return _summed(np.ascontiguousarray(array), mesh).astype(array.dtype, copy=False)
    rows = max(1, REDUCE_BYTES // max(array[0].nbytes, 1))
    out = np.empty_like(array)
    for start in range(0, array.shape[0], rows):
        out[start:start + rows] = _summed(np.ascontiguousarray(array[start:start + rows]), mesh)
    return out


def barrier() -> None:
    """Return when every process has called it (a collective over one device per process)."""
    allreduce_sum(np.zeros((), np.float32))

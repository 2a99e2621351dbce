"""What a tile costs before it runs: memory and FLOPs as polynomials in the tile's sizes.

One plan at probe sizes prices every method as a polynomial in the tile's ``N1`` and ``N2``
(under ``vmap_axes`` the per-example program does not depend on the batch), so the largest tile
that fits a budget — square, or a band of ``b1`` rows in tiles of ``b2`` columns — is found
without compiling anything; :mod:`ntkc.tiling.plan` then checks it against XLA's measurement.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Callable

import jax
import numpy as np
import sympy

from ntkc.passes.cost import SizeNames
from ntkc.passes.select import choose
from ntkc.symbolic import PROBES
from ntkc.tiling.geometry import PAIR

def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``; total physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@functools.lru_cache(maxsize=1)
def matmul_rate() -> float:
    """This machine's float32 matmul rate [FLOP/s] (a 512² product, median of 5): the predicted
    time of a tile plan is its FLOPs at this rate."""
    a = jax.numpy.ones((512, 512), jax.numpy.float32)
    product = jax.jit(lambda u: u @ u)
    product(a).block_until_ready()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        product(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * 512 ** 3 / sorted(times)[2]


def _probe_sizes(*trees, count: int = 2) -> list[int]:
    """Probe batch sizes: primes equal to no other size of the problem."""
    taken = {d for tree in trees for leaf in jax.tree_util.tree_leaves(tree) for d in np.shape(leaf)}
    return [p for p in PROBES if p not in taken][:count]


def _numeric(expr) -> Callable[[int, int], int]:
    """``expr`` (a polynomial in ``N1``, ``N2`` or ``N`` = ``N1``) as a fast function of the two.

    >>> import sympy
    >>> _numeric(3 * sympy.Symbol("N1") * sympy.Symbol("N2") + 1)(2, 5)
    31
    """
    if not isinstance(expr, sympy.Expr):
        return lambda b1, b2: int(expr)
    fn = sympy.lambdify([sympy.Symbol("N1"), sympy.Symbol("N2"), sympy.Symbol("N")], expr, modules="math")
    return lambda b1, b2: int(fn(b1, b2, b1))


class Pricer:
    """Every method's predicted memory [bytes] and FLOPs for a tile of ``b1 × b2`` examples, as
    polynomials in the tile's sizes (one plan at probe sizes). ``scale`` corrects the memory by
    what XLA measured of a compiled tile."""

    def __init__(self, context, budget: int):
        p1, p2 = _probe_sizes(context.params, context.side1.x, context.side2.x)
        if context.mode != PAIR:  # a diagonal or traced example axis: one N for both sides
            p2 = p1
        plan = context.tile_plan((p1, p2), single=False, memory_limit=budget)
        self.names = SizeNames.create({"N1": p1, "N2": p2} if p2 != p1 else {"N": p1})
        self.costs = plan.costs(self.names)
        params = jax.tree_util.tree_leaves(plan.params)
        self.itemsize = max(np.dtype(p.dtype).itemsize for p in params)
        self.params_bytes = sum(math.prod(p.shape) * np.dtype(p.dtype).itemsize for p in params)
        self.example_bytes = [sum(math.prod(s.shape) * np.dtype(s.dtype).itemsize
                                  for s in jax.tree_util.tree_leaves(side.specs(1)[0]))
                              for side in (context.side1, context.side2)]
        self.budget, self.method = budget, context.method
        self.scale = 1.0  # measured working set / predicted, once a tile has been compiled
        self._polynomials = {m: (_numeric(c.total_flops), _numeric(c.total_memory)) for m, c in self.costs.items()}

    def flops(self, method: str, b1: int, b2: int) -> int:
        """``method``'s predicted FLOPs for a ``b1 × b2`` tile."""
        return self._polynomials[method][0](b1, b2)

    def at(self, b1: int, b2: int, methods=None) -> tuple[str, int, int]:
        """(the method that runs, its working set [bytes], its FLOPs) for a ``b1 × b2`` tile;
        under ``auto``, chosen among ``methods`` (default: all)."""
        costs = {m: dataclasses.replace(c, flops={"all": flops(b1, b2)}, memory={"all": memory(b1, b2)})
                 for m, c in self.costs.items() for flops, memory in [self._polynomials[m]]
                 if methods is None or m in methods or m == self.method}
        method = choose(costs, self.budget, self.itemsize) if self.method == "auto" else self.method
        inputs = b1 * self.example_bytes[0] + b2 * self.example_bytes[1] + self.params_bytes
        memory = (int(costs[method].total_memory) * self.itemsize + inputs) * self.scale
        return method, int(memory), int(costs[method].total_flops)


def largest_fitting(pricer: Pricer, limit: int, shape_of: Callable[[int], tuple[int, int]], methods=None) -> int:
    """The largest block ``b ≤ limit`` whose tile is predicted to fit the budget (the method
    chosen among ``methods``)."""
    fits = lambda b: pricer.at(*shape_of(b), methods)[1] <= pricer.budget
    if not fits(1):
        smallest = pricer.at(*shape_of(1), methods)[1]
        raise ValueError(
            f"`memory_limit` of {pricer.budget:,} bytes is too small for a tile of one example per side: "
            f"it needs about {smallest:,} bytes (parameters, inputs and the method's working set); "
            f"give at least that.")
    low, high = 1, limit
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


#: The methods whose programs have a part of side 1's own, which row bands compute once (NTK-vector
#: products need both sides in every call).
BANDED_METHODS = ("structured", "jacobian")

#: Predicted seconds of dispatching one tile beyond its FLOPs (a call, a copy to the host).
CALL_SECONDS = 2e-3


def band_count(n1: int, n2: int, block: tuple[int, int], symmetric: bool) -> tuple[int, int]:
    """(bands, tiles) of :func:`~ntkc.tiling.geometry.band_tiles`.

    >>> band_count(5, 5, (3, 2), symmetric=True)
    (2, 4)
    """
    starts = range(0, n1, block[0])
    return len(starts), sum(-(-(n2 - (a if symmetric else 0)) // block[1]) for a in starts)


def band_cost(pricer, b1: int, b2: int, n1: int, n2: int, symmetric: bool, methods=BANDED_METHODS,
              devices: int = 1, processes: int = 1):
    """(predicted seconds, FLOPs) of the kernel as row bands of ``b1`` in tiles of ``b2`` (the
    method chosen among ``methods``): the tile's FLOPs ``F(N1, N2) = c + a1·N1 + a2·N2 + k·N1·N2``
    split into side 1's ``a1·b1``, once per band, and the rest, once per tile (less side 2's
    ``a2·b2`` for a symmetric band's own columns); plus :data:`CALL_SECONDS` per tile. On
    ``devices`` devices a band is ``devices · b1`` rows, each device computing ``b1`` of them
    against every tile at once; ``processes`` share the bands (the time divided among them).
    The FLOPs are the whole kernel's, the seconds one device's."""
    method = pricer.at(b1, b2, methods)[0]
    flops = lambda u, v: float(pricer.flops(method, u, v))
    k = flops(2, 2) - flops(2, 1) - flops(1, 2) + flops(1, 1)
    row = max(0.0, flops(2, 1) - flops(1, 1) - k) * b1
    column = flops(b1, b2) - row
    bands, count = band_count(n1, n2, (devices * b1, b2), symmetric)
    total = bands * row + count * column
    if symmetric and devices == 1:  # a band's own columns read side 2's work from the band's
        total -= bands * (b1 // b2) * max(0.0, flops(1, 2) - flops(1, 1) - k) * b2
    return (total / matmul_rate() + count * CALL_SECONDS) / processes, total * devices


def band_shape(b1: int, b2: int, n1: int) -> tuple[int, int]:
    """A band of at most ``b1`` rows in tiles of at most ``b2`` columns, as a multiple of its
    column width (the row program's chunk), cutting ``n1`` into the fewest bands, evened out.

    >>> band_shape(286, 41, 2000)
    (228, 38)
    """
    m = max(1, b1 // b2)
    bands = -(-n1 // (m * b2))
    width = -(-n1 // (bands * m))
    return m * width, width


def choose_band(pricer, n1: int, n2: int, symmetric: bool, devices: int = 1, processes: int = 1) -> tuple[int, int]:
    """The band ``(b1, b2)`` of least predicted time (:func:`band_cost`) among those fitting the
    pricer's budget: for ``b2`` from the largest fitting square tile down by halves, the tallest
    band fitting with it and (``symmetric``: shorter bands skip more of the lower triangle) up to
    15 more bands of it, each made a multiple of its tiles (:func:`band_shape`). A band is
    ``devices · b1`` rows; with several ``processes``, at least 4 bands per process when the
    tiles allow it (whole bands are shared out, so few bands would leave processes idle)."""
    fits = lambda b1, b2: pricer.at(b1, b2, BANDED_METHODS)[1] <= pricer.budget
    rows = -(-n1 // devices)  # one device's share of x1
    square = largest_fitting(pricer, max(rows, n2), lambda b: (min(b, rows), min(b, n2)), BANDED_METHODS)
    best, b2 = None, min(square, n2)
    while True:
        low, high = min(b2, rows), rows
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle, b2) else (low, middle - 1)
        fewest = -(-rows // low)
        if processes > 1:
            fewest = max(fewest, min(4 * processes, -(-rows // b2)))
        for bands in range(fewest, fewest + (16 if symmetric else 1)):
            b1 = -(-rows // bands)
            if b1 < b2:
                break
            block = band_shape(b1, b2, rows)
            seconds = band_cost(pricer, *block, n1, n2, symmetric, devices=devices, processes=processes)[0]
            if best is None or seconds < best[0]:
                best = (seconds, block)
        if b2 <= 8:
            return best[1]
        b2 //= 2


def square_cost(pricer, n1: int, n2: int, symmetric: bool) -> float:
    """Predicted seconds of square tiles as large as fit (any method), each computed whole."""
    b = largest_fitting(pricer, max(n1, n2), lambda b: (min(b, n1), min(b, n2)))
    rows, cols = -(-n1 // b), -(-n2 // b)
    count = rows * (rows + 1) // 2 if symmetric else rows * cols
    return count * (pricer.at(min(b, n1), min(b, n2))[2] / matmul_rate() + CALL_SECONDS)

"""The tile plan: how big a tile is, which tiles run, and what it all costs — before anything runs.

A tile of ``b1 × b2`` examples is one call of a compiled :class:`ntkc.NTKPlan` for those shapes.
Its working set — the tile's inputs and parameters, the method's residuals, Jacobians or
factors and cotangents, intermediates, the tile itself, and XLA's temporaries — must fit
``memory_limit``. The size comes from the cost model: one plan at probe sizes prices every method
as a polynomial in the tile's ``N1`` and ``N2`` (under ``vmap_axes`` the per-example program does
not depend on the batch), so the largest square tile whose cheapest fitting method fits is
found without compiling anything; then the tile is compiled and XLA's own memory analysis
(arguments + outputs + temporaries) checks it, shrinking the tile until it fits.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import weakref
from typing import Any, Callable

import jax
import numpy as np

from ntkc.batching import partition_kwargs, split_kwargs
from ntkc.passes.cost import SizeNames, evaluate
from ntkc.passes.select import choose
from ntkc.planning import NTKPlan, PlanOptions, plan_for
from ntkc.problem import build_problem
from ntkc.symbolic import PROBES
from ntkc.tiling.geometry import PAIR, Layout, Tile, layouts, tiles

PyTree = Any


def human_bytes(n: int) -> str:
    """``n`` bytes, readably.

    >>> human_bytes(3 << 30), human_bytes(1536)
    ('3.0 GiB', '1.5 KiB')
    """
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


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


def _slice(leaf, axis, start, stop):
    if axis is None:
        return leaf
    return leaf[(slice(None),) * axis + (slice(start, stop),)]


def _resize(leaf, axis, size):
    if axis is None:
        return jax.ShapeDtypeStruct(np.shape(leaf), jax.numpy.result_type(leaf))
    shape = list(np.shape(leaf))
    shape[axis] = size
    return jax.ShapeDtypeStruct(tuple(shape), jax.numpy.result_type(leaf))


@dataclasses.dataclass(frozen=True, eq=False)
class Examples:
    """One side's inputs and keyword arguments, cut into blocks of examples along their batch
    axes (unbatched inputs and keyword arguments whole). NumPy memmaps are read block by block."""

    x: PyTree
    x_axes: PyTree
    kwargs: dict
    kw_axes: dict

    @property
    def n(self) -> int:
        sizes = [np.shape(l)[a] for l, a in zip(jax.tree_util.tree_leaves(self.x),
                                                 jax.tree_util.tree_leaves(self.x_axes, is_leaf=lambda a: a is None))
                 if a is not None]
        if not sizes:
            raise ValueError("`vmap_axes` gives no leaf of `x` a batch axis: there are no examples to tile")
        return sizes[0]

    def _map(self, fn):
        x = jax.tree_util.tree_map(fn, self.x_axes, self.x, is_leaf=lambda a: a is None)
        kw = {k: jax.tree_util.tree_map(lambda leaf, a=self.kw_axes.get(k): fn(a, leaf), v)
              for k, v in self.kwargs.items()}
        return x, kw

    def specs(self, size: int):
        """``(x, kwargs)`` specs of a block of ``size`` examples (arrays only, others as given)."""
        arrays, static = partition_kwargs(self.kwargs)
        x, kw = Examples(self.x, self.x_axes, arrays, self.kw_axes)._map(lambda a, l: _resize(l, a, size))
        return x, {**kw, **dict(static)}

    def block(self, start: int, stop: int):
        """``(x, kwargs made of arrays)`` of examples ``start:stop`` as host arrays (memmaps: only
        those rows are read; the other keyword arguments are constants of the tile's plan)."""
        arrays, _ = partition_kwargs(self.kwargs)
        return Examples(self.x, self.x_axes, arrays, self.kw_axes)._map(
            lambda a, l: np.asarray(_slice(l, a, start, stop)))


def side_kwargs(kw1: dict, kw2: dict) -> dict:
    """Both sides' keyword arguments as one dict of 2-tuples (``ntk_fn``'s split form)."""
    return {k: (kw1[k], kw2[k]) for k in kw1}


@dataclasses.dataclass(frozen=True, eq=False)
class TileKernel:
    """One tile shape's plan and its compiled program ``run(x1, x2, params, kw1, kw2)`` (the array
    keyword arguments of each side); ``bytes`` is XLA's measured working set."""

    plan: NTKPlan
    run: Callable
    bytes: int


#: Compiled tile programs, by plan (a plan is for one tile shape; its program is compiled once).
_COMPILED: "weakref.WeakKeyDictionary[NTKPlan, TileKernel]" = weakref.WeakKeyDictionary()


def compiled_tile(plan: NTKPlan, x1, x2, params, kw1: dict, kw2: dict) -> TileKernel:
    """The plan's executable compiled ahead of time for these specs, with XLA's memory analysis."""
    if plan not in _COMPILED:
        compiled = plan.executable.lower(params, x1, x2, kw1, kw2).compile()
        stats = compiled.memory_analysis()
        used = 0 if stats is None else (stats.argument_size_in_bytes + stats.output_size_in_bytes
                                        + stats.temp_size_in_bytes - stats.alias_size_in_bytes)
        _COMPILED[plan] = TileKernel(plan=plan, bytes=int(used),
                                     run=lambda a, b, p, k1, k2: compiled(p, a, b, k1, k2))
    return _COMPILED[plan]


@dataclasses.dataclass(frozen=True, eq=False)
class TilePlan:
    """How a kernel of ``n1 × n2`` examples is computed tile by tile (:func:`ntkc.tile_plan`).

    Attributes:
      n1, n2: examples of x1 and x2 (``n2 == n1`` when x2 is x1).
      block: the tile's examples per side ``(b1, b2)``.
      tiles: the tiles that run (with x2 = None and pairs: on or above the diagonal only).
      mode: what the example axis becomes (``"pair"``, ``"diagonal"``, ``"trace"``).
      symmetric: x2 is x1 and the kernel is mirrored from the upper triangle.
      method: the method of the full tile's plan.
      memory_limit: the budget of one tile's working set [bytes].
      peak_bytes: XLA's measured working set of the full tile [bytes].
      flops: the predicted FLOPs of all tiles.
      seconds: the predicted time (``flops`` at this machine's matmul rate).
      layouts: each output leaf's kernel layout (:class:`~ntkc.tiling.geometry.Layout`).
    """

    n1: int
    n2: int
    block: tuple[int, int]
    tiles: tuple[Tile, ...]
    mode: str
    symmetric: bool
    method: str
    memory_limit: int
    peak_bytes: int
    flops: int
    seconds: float
    layouts: tuple[Layout, ...]
    out_tree: Any = dataclasses.field(repr=False)
    context: Any = dataclasses.field(repr=False)
    kernels: dict = dataclasses.field(repr=False, default_factory=dict)

    def __str__(self) -> str:
        return (f"{len(self.tiles)} tiles of {self.block[0]}×{self.block[1]} examples ({self.mode}"
                f"{', symmetric' if self.symmetric else ''}), method {self.method!r}: "
                f"{self.flops / 1e9:.3g} GFLOP predicted, ≈ {self.seconds:.3g} s; "
                f"{human_bytes(self.peak_bytes)} per tile of a {human_bytes(self.memory_limit)} budget")

    def kernel(self, shape: tuple[int, int], single: bool) -> TileKernel:
        """The compiled kernel of tiles of this shape (``single``: x2 is x1), compiled once."""
        key = (shape, single)
        if key not in self.kernels:
            self.kernels[key] = self.context.compile(shape, single)
        return self.kernels[key]

    def compile_all(self) -> None:
        """Compile every tile shape the plan runs (ahead of the first tile)."""
        for tile in self.tiles:
            self.kernel(tile.shape, self.context.single(tile))


@dataclasses.dataclass(frozen=True, eq=False)
class Context:
    """The problem being tiled: ``f``, parameters, both sides' examples, options."""

    f: Callable
    params: PyTree
    side1: Examples
    side2: Examples
    x2_given: bool
    method: str
    options: PlanOptions
    mode: str

    def single(self, tile: Tile) -> bool:
        """A tile of x1 with itself: planned with x2 = None (one side runs)."""
        return not self.x2_given and tile.on_diagonal

    def tile_plan(self, shape: tuple[int, int], single: bool, memory_limit: int | None) -> NTKPlan:
        x1, kw1 = self.side1.specs(shape[0])
        x2, kw2 = self.side2.specs(shape[1])
        kwargs = side_kwargs(kw1, kw1 if single else kw2)
        options = dataclasses.replace(self.options, memory_limit=memory_limit)
        return plan_for(self.f, self.params, x1, None if single else x2, kwargs, self.method, options)

    def compile(self, shape: tuple[int, int], single: bool) -> TileKernel:
        plan = self.tile_plan(shape, single, self.options.memory_limit)
        x1, kw1 = self.side1.specs(shape[0])
        x2, kw2 = self.side2.specs(shape[1])
        dynamic = lambda kw: partition_kwargs(kw)[0]
        return compiled_tile(plan, x1, None if single else x2, self.params, dynamic(kw1),
                             dynamic(kw1 if single else kw2))


def _probe_sizes(*trees, count: int = 2) -> list[int]:
    """Probe batch sizes: primes equal to no other size of the problem."""
    taken = {d for tree in trees for leaf in jax.tree_util.tree_leaves(tree) for d in np.shape(leaf)}
    return [p for p in PROBES if p not in taken][:count]


class Pricer:
    """Every method's predicted memory [bytes] and FLOPs for a tile of ``b1 × b2`` examples, as
    polynomials in the tile's sizes (one plan at probe sizes)."""

    def __init__(self, context: Context, budget: int):
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

    def at(self, b1: int, b2: int) -> tuple[str, int, int]:
        """(the method that runs, its working set [bytes], its FLOPs) for a ``b1 × b2`` tile."""
        values = {"N1": b1, "N2": b2, "N": b1}
        costs = {m: dataclasses.replace(c, flops={"all": evaluate(c.total_flops, values)},
                                        memory={"all": evaluate(c.total_memory, values)})
                 for m, c in self.costs.items()}
        method = choose(costs, self.budget, self.itemsize) if self.method == "auto" else self.method
        inputs = b1 * self.example_bytes[0] + b2 * self.example_bytes[1] + self.params_bytes
        return method, int(costs[method].total_memory) * self.itemsize + inputs, int(costs[method].total_flops)


def _largest_fitting(pricer: Pricer, limit: int, shape_of: Callable[[int], tuple[int, int]]) -> int:
    """The largest block ``b ≤ limit`` whose tile is predicted to fit the budget."""
    fits = lambda b: pricer.at(*shape_of(b))[1] <= pricer.budget
    if not fits(1):
        smallest = pricer.at(*shape_of(1))[1]
        raise ValueError(
            f"`memory_limit` of {pricer.budget:,} bytes is too small for a tile of one example per side: "
            f"it needs about {smallest:,} bytes (parameters, inputs and the method's working set); "
            f"give at least that.")
    low, high = 1, limit
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def _measured_block(context: Context, pricer: Pricer, shape_of, limit: int, budget: int, single: bool,
                    symmetric: bool, compiled: dict) -> tuple[int, int]:
    """The tile: the cost model's largest fitting block, then resized by XLA's measured working
    set of the compiled tile (the cost model prices every operand and intermediate as live at
    once, so it is an upper bound): shrunk until it fits, grown while it uses under half."""
    b, best = _largest_fitting(pricer, limit, shape_of), None
    for _ in range(6):
        block = shape_of(b)
        key = (block, single or (symmetric and block[0] >= limit))
        if key not in compiled:
            compiled[key] = context.compile(*key)
        used = compiled[key].bytes
        if used <= budget:
            best = block if best is None or block[0] > best[0] else best
        if used > budget and b > 1:
            b = max(1, int(b * math.sqrt(budget / used) * 0.9))
        elif used < budget / 2 and block[0] < limit and (best is None or best == block):
            b = min(limit, int(b * min(2.0, math.sqrt(budget / max(used, 1)) * 0.9)) + 1)
        else:
            break
    return best or shape_of(1)


def make_tile_plan(f, params, x1, x2, kwargs, *, method: str, options: PlanOptions,
                   block_size: int | tuple[int, int] | None) -> TilePlan:
    """:func:`ntkc.tile_plan` with checked options (see there)."""
    if options.vmap_axes is None:
        raise ValueError(
            "`vmap_axes=None`: a tiled kernel needs examples that are independent of each other "
            "(`vmap_axes` set), since f on a tile of examples would otherwise see another batch and, "
            "for a batch-coupled f, give another kernel. Pass the batch axis, e.g. `vmap_axes=0`.")
    budget = options.memory_limit if options.memory_limit is not None else available_memory() // 2
    options = dataclasses.replace(options, memory_limit=budget)
    problem = build_problem(f, x1, x2, params, kwargs, **options.axes())
    vmap = problem.side1.vmap
    kw1, kw2 = split_kwargs(kwargs)
    side1 = Examples(x1, vmap.x, kw1, dict(vmap.kwargs))
    side2 = Examples(x1 if x2 is None else x2, vmap.x, kw1 if x2 is None else kw2, dict(vmap.kwargs))
    n1, n2 = side1.n, side2.n
    leaf_layouts = layouts(problem, n1, n2)
    modes = {layout.mode for layout in leaf_layouts}
    if len(modes) != 1:
        raise ValueError(f"the output leaves treat the example axis differently ({sorted(modes)}); a tiled "
                         "kernel needs one treatment (pair, diagonal or traced) for all of them")
    mode = modes.pop()
    context = Context(f=f, params=params, side1=side1, side2=side2, x2_given=x2 is not None, method=method,
                      options=options, mode=mode)
    symmetric = x2 is None and mode == PAIR
    single = x2 is None and mode != PAIR  # 1-D tiles of x1 with itself
    pricer = Pricer(context, budget)
    shape_of = (lambda b: (min(b, n1), min(b, n2))) if mode == PAIR else (lambda b: (min(b, n1),) * 2)
    compiled: dict = {}
    if block_size is not None:
        b1, b2 = (block_size, block_size) if isinstance(block_size, int) else tuple(block_size)
        if not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in (b1, b2)):
            raise ValueError(f"`block_size` must be a positive int or a pair of them, got {block_size!r}")
        block = (min(b1, n1), min(b2, n2)) if mode == PAIR else shape_of(b1)
    else:
        block = _measured_block(context, pricer, shape_of, max(n1, n2), budget, single, symmetric, compiled)
    grid = tiles(n1, n2, block, symmetric=symmetric, diagonal=mode != PAIR)
    plan = TilePlan(n1=n1, n2=n2, block=block, tiles=grid, mode=mode, symmetric=symmetric, method=method,
                    memory_limit=budget, peak_bytes=0, flops=0, seconds=0.0,
                    layouts=tuple(leaf_layouts), out_tree=jax.tree_util.tree_structure(problem.out1),
                    context=context, kernels={k: v for k, v in compiled.items() if k[0] == block})
    plan.compile_all()
    flops = sum(_flops(plan.kernel(tile.shape, context.single(tile)).plan) for tile in grid)
    kernels = plan.kernels.values()
    methods = {k.plan.method for k in kernels}
    return dataclasses.replace(plan, peak_bytes=max(k.bytes for k in kernels), flops=flops,
                               seconds=flops / matmul_rate(),
                               method=methods.pop() if len(methods) == 1 else "/".join(sorted(methods)))


def _flops(plan: NTKPlan) -> int:
    """The predicted FLOPs of one tile's plan (its method, at its sizes)."""
    parts = plan.complex.parts if plan.complex is not None else (plan,)
    return sum(int(p.costs()[p.method].total_flops) for p in parts)

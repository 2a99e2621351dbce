"""The tile plan: how big a tile is, which tiles run, and what it all costs — before anything runs.

A tile of ``b1 × b2`` examples is one call of a compiled :class:`ntkc.NTKPlan` for those shapes.
Its working set — the tile's inputs and parameters, the method's residuals, Jacobians or
factors and cotangents, intermediates, the tile itself, and XLA's temporaries — must fit
``memory_limit``. The size comes from the cost model: one plan at probe sizes prices every method
as a polynomial in the tile's ``N1`` and ``N2`` (under ``vmap_axes`` the per-example program does
not depend on the batch), so the largest square tile whose cheapest fitting method fits is
found without compiling anything (:mod:`ntkc.tiling.pricing`); then the tile is compiled and
XLA's own memory analysis (arguments + outputs + temporaries) checks it, resizing the tile until
it fits.

When side 1's part of the tile's program can be cut off (:mod:`ntkc.tiling.bands`: operands or
Jacobians, not NTK-vector products) and the example axes form pairs, tiles run as **row bands**:
``b1`` examples of x1 in tiles of ``b2`` columns, side 1's work done once per band. The band's
shape minimizes the predicted time — side 1's work once per band, side 2's once per tile, the
contractions, a small cost per call — among the shapes that fit: tall bands when per-example
work dominates (a CNN's Jacobians), squarer ones when contractions do (an MLP's).
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from typing import Any, Callable

import jax

from ntkc.batching import partition_kwargs, split_kwargs
from ntkc.planning import NTKPlan, PlanOptions, plan_for
from ntkc.problem import build_problem
from ntkc.tiling.bands import BandKernel, band_split, compiled_band
from ntkc.tiling.examples import Examples, side_kwargs
from ntkc.tiling.geometry import PAIR, Layout, Tile, band_tiles, layouts, tiles
from ntkc.tiling.pricing import (
    BANDED_METHODS, Pricer, available_memory, band_cost, choose_band, largest_fitting, matmul_rate, square_cost,
)

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
      banded: tiles run as row bands (side 1's work once per band; every tile ``block``-shaped,
        padded at the edges).
      flops: the predicted FLOPs of all tiles.
      seconds: the predicted time (on the devices and processes the plan is for): ``flops`` at
        this machine's matmul rate plus a dispatch cost per tile — a lower bound where XLA runs the tiles' programs below that rate (the
        gradients of convolutions on CPU run at about a fifth of it).
      layouts: each output leaf's kernel layout (:class:`~ntkc.tiling.geometry.Layout`).
      spread: (devices per process, processes) the plan is for.

    Example:
      >>> import numpy as np, jax.numpy as jnp, ntkc
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": jnp.ones((3, 16)) / 3, "v": jnp.ones((16, 2)) / 4}
      >>> x = np.ones((100, 3), np.float32)
      >>> tp = ntkc.tile_plan(f, params, x, block_size=40)       # x2 = None: symmetric
      >>> tp.n1, tp.block, tp.symmetric, len(tp.tiles)          # the 6 tiles on or above the diagonal
      (100, (40, 40), True, 6)
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
    banded: bool
    flops: int
    seconds: float
    layouts: tuple[Layout, ...]
    spread: tuple[int, int] = (1, 1)
    out_tree: Any = dataclasses.field(repr=False, default=None)
    context: Any = dataclasses.field(repr=False, default=None)
    kernels: dict = dataclasses.field(repr=False, default_factory=dict)

    def __str__(self) -> str:
        return (f"{len(self.tiles)} tiles of {self.block[0]}×{self.block[1]} examples ({self.mode}"
                f"{', symmetric' if self.symmetric else ''}{', row bands' if self.banded else ''}), "
                f"method {self.method!r}: "
                f"{self._where()}"
                f"{self.flops / 1e9:.3g} GFLOP predicted, {self.seconds:.3g} s at the matmul rate; "
                f"{human_bytes(self.peak_bytes)} per tile of a {human_bytes(self.memory_limit)} budget")

    def _where(self) -> str:
        devices, processes = self.spread
        if (devices, processes) == (1, 1):
            return ""
        return f"on {devices} device{'s' * (devices > 1)} × {processes} process{'es' * (processes > 1)}, "

    def kernel(self, shape: tuple[int, int], single: bool) -> TileKernel | BandKernel:
        """The compiled kernel of tiles of this shape (``single``: x2 is x1), compiled once; with
        row bands, the one :class:`BandKernel` every tile runs."""
        if self.banded:
            return self.kernels[("band", self.block)]
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

    def tile_plan(self, shape: tuple[int, int], single: bool, memory_limit: int | None,
                  method: str | None = None) -> NTKPlan:
        x1, kw1 = self.side1.specs(shape[0])
        x2, kw2 = self.side2.specs(shape[1])
        kwargs = side_kwargs(kw1, kw1 if single else kw2)
        options = dataclasses.replace(self.options, memory_limit=memory_limit)
        return plan_for(self.f, self.params, x1, None if single else x2, kwargs, method or self.method, options)

    def compile(self, shape: tuple[int, int], single: bool) -> TileKernel:
        plan = self.tile_plan(shape, single, self.options.memory_limit)
        x1, kw1 = self.side1.specs(shape[0])
        x2, kw2 = self.side2.specs(shape[1])
        dynamic = lambda kw: partition_kwargs(kw)[0]
        return compiled_tile(plan, x1, None if single else x2, self.params, dynamic(kw1),
                             dynamic(kw1 if single else kw2))

    def compile_band(self, shape: tuple[int, int], method: str) -> BandKernel | None:
        """The row-band kernel of ``shape`` tiles running ``method``, or None when its plan
        cannot be cut."""
        plan = self.tile_plan(shape, False, self.options.memory_limit, method)
        cut = band_split(plan)
        if cut is None:
            return None
        dynamic = lambda kw: partition_kwargs(kw)[0]
        side1_specs = lambda n: (self.side1.specs(n)[0], dynamic(self.side1.specs(n)[1]))
        x2, kw2 = self.side2.specs(shape[1])
        chunk = shape[1] if shape[0] % shape[1] == 0 else shape[0]
        return compiled_band(plan, cut, side1_specs, x2, self.params, dynamic(kw2), chunk, not self.x2_given)


def _measured_block(context: Context, pricer: Pricer, shape_of, limit: int, budget: int, single: bool,
                    symmetric: bool, compiled: dict) -> tuple[int, int]:
    """The tile: the cost model's largest fitting block, then resized by XLA's measured working
    set of the compiled tile (the cost model prices every operand and intermediate as live at
    once, so it is an upper bound): shrunk until it fits, grown while it uses under half."""
    b, best = largest_fitting(pricer, limit, shape_of), None
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


def _measured_band(context: Context, pricer: Pricer, n1: int, n2: int, symmetric: bool, budget: int,
                   compiled: dict, spread: tuple[int, int] = (1, 1)) -> tuple[int, int] | None:
    """The row bands' tile: the cost model's best fitting band, then re-chosen with the
    predicted memory scaled by XLA's measured working set over the predicted one (the prediction
    is an upper bound), keeping the fastest predicted band that fits. None when the plan cannot
    be cut into bands, no band tried fits (square tiles then shrink to fit), or square tiles
    (``auto``: of any method; on several devices: one per device) are predicted faster.
    ``spread``: (devices per process, processes) the bands are priced for."""
    best = None
    devices, count = spread
    seconds = lambda block: band_cost(pricer, *block, n1, n2, symmetric, devices=devices, processes=count)[0]
    choose = lambda: choose_band(pricer, n1, n2, symmetric, devices=devices, processes=count)
    # Under auto a method that cannot band (NTK-vector products) may be faster; on several
    # devices, square tiles (one per device) skip the band's share of the lower triangle.
    if context.method == "auto" or spread != (1, 1):
        try:
            square = square_cost(pricer, n1, n2, symmetric) / (devices * count)
            if seconds(choose()) > square:
                return None
        except ValueError:
            return None
    try:
        for _ in range(5):
            try:
                block = choose()
            except ValueError:  # not even one example per side fits: square tiles say so
                break
            if ("band", block) not in compiled:
                compiled[("band", block)] = context.compile_band(block, pricer.at(*block, BANDED_METHODS)[0])
            kernel = compiled[("band", block)]
            if kernel is None:
                return None
            if kernel.bytes <= budget and (best is None or seconds(block) < seconds(best)):
                best = block
            if 0.8 * budget <= kernel.bytes <= budget:
                break
            scale = kernel.bytes / (pricer.at(*block, BANDED_METHODS)[1] / pricer.scale) / 0.9
            if abs(scale - pricer.scale) < 0.1 * pricer.scale:
                break
            pricer.scale = scale
    finally:
        pricer.scale = 1.0
    return best


def make_tile_plan(f, params, x1, x2, kwargs, *, method: str, options: PlanOptions,
                   block_size: int | tuple[int, int] | None, spread: tuple[int, int] = (1, 1)) -> TilePlan:
    """:func:`ntkc.tile_plan` with checked options (see there); ``spread``: (devices per
    process, processes) — a band's rows are split over a process's devices, whole bands shared
    by the processes (:mod:`ntkc.tiling.devices`, :mod:`ntkc.tiling.processes`)."""
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
    block = None
    if block_size is not None:
        b1, b2 = (block_size, block_size) if isinstance(block_size, int) else tuple(block_size)
        if not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in (b1, b2)):
            raise ValueError(f"`block_size` must be a positive int or a pair of them, got {block_size!r}")
        block = (min(b1, n1), min(b2, n2)) if mode == PAIR else shape_of(b1)
    banded = False
    if mode == PAIR and method in BANDED_METHODS + ("auto",):
        if block is None:
            band = _measured_band(context, pricer, n1, n2, symmetric, budget, compiled, spread)
        else:
            compiled[("band", block)] = context.compile_band(block, pricer.at(*block, BANDED_METHODS)[0])
            band = block if compiled[("band", block)] is not None else None
        if band is not None:
            block, banded = band, True
    if block is None:
        block = _measured_block(context, pricer, shape_of, max(n1, n2), budget, single, symmetric, compiled)
    if banded:
        grid = band_tiles(n1, n2, block, symmetric)
        kernels = {("band", block): compiled[("band", block)]}
    else:
        grid = tiles(n1, n2, block, symmetric=symmetric, diagonal=mode != PAIR)
        kernels = {k: v for k, v in compiled.items() if k[0] == block and v is not None}
    plan = TilePlan(n1=n1, n2=n2, block=block, tiles=grid, mode=mode, symmetric=symmetric, method=method,
                    memory_limit=budget, peak_bytes=0, banded=banded, flops=0, seconds=0.0,
                    layouts=tuple(leaf_layouts), spread=spread, out_tree=jax.tree_util.tree_structure(problem.out1),
                    context=context, kernels=kernels)
    plan.compile_all()
    kernels = plan.kernels.values()
    if banded:
        seconds, flops = band_cost(pricer, *block, n1, n2, symmetric, methods=(plan.kernel(block, False).plan.method,),
                                   devices=spread[0], processes=spread[1])
        flops = int(flops)
    else:
        flops = sum(_flops(plan.kernel(tile.shape, context.single(tile)).plan) for tile in grid)
        steps = -(-len(grid) // (spread[0] * spread[1]))  # tiles over the devices
        seconds = flops / matmul_rate() * steps / max(len(grid), 1)
    methods = {k.plan.method for k in kernels}
    return dataclasses.replace(plan, peak_bytes=max(k.bytes for k in kernels), flops=flops, seconds=seconds,
                               method=methods.pop() if len(methods) == 1 else "/".join(sorted(methods)))


def _flops(plan: NTKPlan) -> int:
    """The predicted FLOPs of one tile's plan (its method, at its sizes)."""
    parts = plan.complex.parts if plan.complex is not None else (plan,)
    return sum(int(p.costs()[p.method].total_flops) for p in parts)

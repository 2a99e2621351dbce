"""Tiles on the devices of a mesh: every step one SPMD program, each device a share of it.

A mesh's devices (all of its axes taken as one axis of ``D`` devices) run a tile plan in steps,
each one call of a ``jax.shard_map`` program compiled once:

* **rows over the mesh** (plans in row bands): a band of ``D·b1`` examples of x1, device ``d``
  holding rows ``d·b1 … (d+1)·b1`` and their row results (Jacobians, factors, cotangents) for
  the whole band; each column tile of ``b2`` examples of x2 is replicated, and every device
  computes its rows against it. Side 1's work never leaves its device; every device does the
  same work in every step, so the triangular schedule of ``x2 = None`` is balanced (its cost:
  the band's own tiles below the diagonal, computed by the devices whose rows are past it).
* **tiles over the mesh** (other plans): ``D`` tiles of the plan's block stacked, device ``d``
  running tile ``d`` (ragged tiles padded to the block and cropped; the last step repeats its
  last tile, discarded). The flattened list of tiles is cut into steps, so a triangle costs at
  most ``D - 1`` idle tiles.

Each device's working set is one tile's (rows over the mesh: one band's rows of ``b1``
examples), which the budget ``memory_limit`` bounds as on one device. Results are identical
to one device's up to float rounding.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np

from ntkc.batching import partition_kwargs
from ntkc.tiling.bands import _batch_axes, band_functions, assembler, per_example
from ntkc.tiling.geometry import TRACE, Tile, band_tiles
from ntkc.tiling.plan import TilePlan

PyTree = Any

ROWS, TILES = "rows", "tiles"


def resolve_mesh(mesh) -> jax.sharding.Mesh | None:
    """The mesh of ``ntk_matrix(..., mesh=)``: None, a ``jax.sharding.Mesh``, or ``"all"`` for
    one axis over every local device."""
    if mesh is None:
        return None
    if not hasattr(jax, "shard_map"):
        raise RuntimeError(f"`mesh` needs `jax.shard_map`, which JAX {jax.__version__} does not have; "
                           "upgrade JAX (`pip install -U jax`) to run tiles on several devices")
    if isinstance(mesh, str) and mesh == "all":
        return jax.sharding.Mesh(np.array(jax.local_devices()), ("tiles",))
    if isinstance(mesh, jax.sharding.Mesh):
        return mesh
    raise TypeError(f"`mesh` must be a jax.sharding.Mesh, 'all' or None, got {type(mesh).__name__}")


def _shard_map(body, mesh, in_specs, out_specs):
    """``jax.shard_map`` of ``body`` (its devices run independent programs: no replication or
    varying-axis checks, which NTK programs' mixed per-example and shared values would trip)."""
    import inspect

    check = {name: False for name in ("check_vma", "check_rep")
             if name in inspect.signature(jax.shard_map).parameters}
    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=in_specs, out_specs=out_specs, **check))


def _spec(mesh):
    return jax.sharding.PartitionSpec(tuple(mesh.axis_names))


def _sharding(mesh, sharded: bool):
    spec = _spec(mesh) if sharded else jax.sharding.PartitionSpec()
    return jax.sharding.NamedSharding(mesh, spec)


def _first(tree):
    return jax.tree_util.tree_map(lambda leaf: leaf[0], tree)


def _stacked(tree):
    return jax.tree_util.tree_map(lambda leaf: leaf[None], tree)


def _stack(blocks: list) -> PyTree:
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *blocks)


def _put(tree, mesh, sharded: bool):
    return jax.device_put(tree, _sharding(mesh, sharded))


@dataclasses.dataclass(frozen=True)
class Step:
    """One call on the mesh: the tiles it computes (with their indices in the schedule) and, for
    rows over the mesh, the band's first example (the band's rows are computed when it changes).
    ``alone``: a ragged tile of a traced example axis, run by itself on one device (padding
    would change the mean over its examples)."""

    tiles: tuple[tuple[int, Tile], ...]
    band: int | None = None
    alone: bool = False


@dataclasses.dataclass(frozen=True, eq=False)
class MeshSchedule:
    """How a tile plan runs on ``mesh``: ``layout`` (:data:`ROWS` or :data:`TILES`), the tiles of
    the whole kernel (``tiles``: what resume records), the steps that compute them, and
    ``capacity``, the example pairs the devices compute in all (padding and repeats included),
    and ``useful``, the pairs the kernel needs (with x2 = None: those on or above the diagonal)."""

    mesh: jax.sharding.Mesh
    layout: str
    tiles: tuple[Tile, ...]
    steps: tuple[Step, ...]
    capacity: int

    @property
    def devices(self) -> int:
        return self.mesh.size

    useful: int = 0

    @property
    def idle(self) -> float:
        """The fraction of the devices' example pairs computing nothing new of the kernel
        (padding, repeated tiles, and with x2 = None the pairs below the diagonal).

        >>> MeshSchedule(mesh=None, layout=ROWS, tiles=(), steps=(), capacity=8, useful=6).idle
        0.25
        """
        return 1.0 - self.useful / max(self.capacity, 1)


def _block(plan: TilePlan) -> tuple[int, int]:
    """The shape every tile is padded to (symmetric tiles are square: x1's blocks both ways)."""
    if plan.banded:
        return plan.block
    return max(t.shape[0] for t in plan.tiles), max(t.shape[1] for t in plan.tiles)


def schedule(plan: TilePlan, mesh: jax.sharding.Mesh) -> MeshSchedule:
    """The steps of ``plan`` on ``mesh``: rows over the mesh for plans in row bands, tiles over
    the mesh otherwise (see the module docstring)."""
    d = mesh.size
    b1, b2 = _block(plan)
    useful = plan.n1 * (plan.n1 + 1) // 2 if plan.symmetric else sum(t.shape[0] * t.shape[1] for t in plan.tiles)
    if plan.banded:
        grid = band_tiles(plan.n1, plan.n2, (d * b1, b2), plan.symmetric)
        steps = tuple(Step(tiles=((k, t),), band=t.i0) for k, t in enumerate(grid))
        return MeshSchedule(mesh=mesh, layout=ROWS, tiles=grid, steps=steps, capacity=len(grid) * d * b1 * b2,
                            useful=useful)
    grid = plan.tiles
    alone = [k for k, t in enumerate(grid) if plan.mode == TRACE and t.shape != (b1, b2)]
    shared = sorted(set(range(len(grid))) - set(alone))
    steps = tuple(Step(tiles=tuple((k, grid[k]) for k in shared[s:s + d])) for s in range(0, len(shared), d))
    steps += tuple(Step(tiles=((k, grid[k]),), alone=True) for k in alone)
    capacity = (len(steps) - len(alone)) * d * b1 * b2 + sum(grid[k].shape[0] * grid[k].shape[1] for k in alone)
    return MeshSchedule(mesh=mesh, layout=TILES, tiles=grid, steps=steps, capacity=capacity, useful=useful)


def _leaves_split(plan: TilePlan, stacked: PyTree, join: bool) -> list:
    """Host copies of a step's output leaves: ``(D, ...)`` each, or (``join``) the D row blocks
    put end to end along each leaf's row axis."""
    leaves = [np.asarray(leaf) for leaf in plan.out_tree.flatten_up_to(stacked)]
    if not join:
        return leaves
    return [np.concatenate(list(leaf), axis=layout.rows) for layout, leaf in zip(plan.layouts, leaves)]


def _crop(plan: TilePlan, leaves: list, shape: tuple[int, int]) -> PyTree:
    return plan.out_tree.unflatten([layout.crop(leaf, shape) for layout, leaf in zip(plan.layouts, leaves)])


def tile_runner(plan: TilePlan, mesh_schedule: MeshSchedule, params, alone: Callable) -> Callable:
    """``run(step) -> collect``, ``collect() -> [(index, tile, kernels)]`` (the step is
    dispatched, not waited for) for tiles over the mesh: one program on ``D``
    stacked tiles of the plan's block (x2 given: diagonal tiles of x2 = None get x1's block);
    ``alone(tile)`` runs a step's tile by itself on one device."""
    mesh, context = mesh_schedule.mesh, plan.context
    block = _block(plan)
    tile_plan = context.tile_plan(block, False, plan.memory_limit)
    spec, whole = _spec(mesh), jax.sharding.PartitionSpec()

    def body(params, x1, x2, kw1, kw2):
        return _stacked(tile_plan.executable(params, _first(x1), _first(x2), _first(kw1), _first(kw2)))

    program = _shard_map(body, mesh, (whole, spec, spec, spec, spec), spec)
    params_on_mesh = _put(params, mesh, False)

    def run(step: Step):
        if step.alone:
            done = [(index, tile, alone(tile)) for index, tile in step.tiles]
            return lambda: done
        tiles = [tile for _, tile in step.tiles]
        tiles += [tiles[-1]] * (mesh.size - len(tiles))
        ones = [context.side1.padded(t.i0, t.i1, block[0]) for t in tiles]
        twos = [context.side2.padded(t.j0, t.j1, block[1]) for t in tiles]
        x1, kw1 = _stack([o[0] for o in ones]), _stack([o[1] for o in ones])
        x2, kw2 = _stack([t[0] for t in twos]), _stack([t[1] for t in twos])
        out = program(params_on_mesh, *(_put(a, mesh, True) for a in (x1, x2, kw1, kw2)))

        def collect():
            leaves = _leaves_split(plan, out, join=False)
            return [(index, tile, _crop(plan, [leaf[k] for leaf in leaves], tile.shape))
                    for k, (index, tile) in enumerate(step.tiles)]
        return collect
    return run


def band_runner(plan: TilePlan, mesh_schedule: MeshSchedule, params) -> Callable:
    """``run(step) -> collect`` (as :func:`tile_runner`'s) for rows over the mesh: a band's row program
    when the band changes (each device its ``b1`` rows, ``chunk`` examples at a time, placed in
    its part of the band's arrays in place), then the tile's column program, x2 replicated."""
    mesh, context = mesh_schedule.mesh, plan.context
    kernel = plan.kernel(plan.block, False)
    b1, b2 = plan.block
    chunk, d = kernel.chunk, mesh.size
    functions = band_functions(kernel.plan, kernel.cut)
    row, column = functions.row, functions.column
    spec, whole = _spec(mesh), jax.sharding.PartitionSpec()
    side1_specs = lambda n: (context.side1.specs(n)[0], partition_kwargs(context.side1.specs(n)[1])[0])
    if per_example(kernel.cut.row):
        axes = _batch_axes(jax.eval_shape(row, params, *side1_specs(1)), jax.eval_shape(row, params, *side1_specs(2)))
    else:
        axes = None
    carried = jax.eval_shape(row, params, *side1_specs(b1))

    rows = _shard_map(lambda p, x, kw: _stacked(row(p, _first(x), _first(kw))), mesh, (whole, spec, spec), spec)
    columns = _shard_map(lambda c, p, x, kw: _stacked(column(_first(c), p, x, kw)), mesh,
                         (spec, whole, whole, whole), spec)

    stacked = [jax.ShapeDtypeStruct((d,) + tuple(c.shape), c.dtype) for c in carried]
    on_mesh = lambda p, x, kw: rows(p, _put(x, mesh, True), _put(kw, mesh, True))
    assemble = assembler(on_mesh, stacked, axes, chunk, stacked=1,
                         shardings=tuple(_sharding(mesh, True) for _ in carried))
    params_on_mesh = _put(params, mesh, False)
    band: dict = {}

    def chunks(start: int) -> list:
        """Per chunk, the D devices' ``(x1, kw1)`` blocks stacked (rows past x1 repeat its last)."""
        n1, blocks = plan.n1, []
        for k in range(0, b1, chunk):
            parts = []
            for device in range(d):
                lo = min(start + device * b1 + k, n1 - 1)
                parts.append(context.side1.padded(lo, min(lo + chunk, n1), chunk))
            blocks.append((_stack([p[0] for p in parts]), _stack([p[1] for p in parts])))
        return blocks

    def run(step: Step):
        ((index, tile),) = step.tiles
        if band.get("start") != step.band:
            band.clear()  # the last band's arrays go before this band's exist
            band.update(start=step.band, carried=assemble(params_on_mesh, chunks(step.band)))
        x2, kw2 = context.side2.padded(tile.j0, tile.j1, b2)
        out = columns(band["carried"], params_on_mesh, _put(x2, mesh, False), _put(kw2, mesh, False))
        return lambda: [(index, tile, _crop(plan, _leaves_split(plan, out, join=True), tile.shape))]
    return run


def runner(plan: TilePlan, mesh_schedule: MeshSchedule, params, alone: Callable) -> Callable:
    """The step runner of ``mesh_schedule``'s layout (``alone(tile)``: one tile on one device)."""
    if mesh_schedule.layout == ROWS:
        return band_runner(plan, mesh_schedule, params)
    return tile_runner(plan, mesh_schedule, params, alone)


def every_process_mesh() -> jax.sharding.Mesh:
    """One axis over every device of every process (``out='sharded'`` with several processes)."""
    return jax.sharding.Mesh(np.array(jax.devices()), ("tiles",))


def check_sharded(plan: TilePlan, mesh: jax.sharding.Mesh) -> None:
    """Refuse ``out='sharded'`` (before anything runs) when x1's examples do not divide over the mesh."""
    if plan.layouts[0].rows is not None and plan.n1 % mesh.size:
        raise ValueError(
            f"out='sharded': the kernel's {plan.n1} rows (x1's examples) do not divide over the mesh's "
            f"{mesh.size} devices; pass a number of examples that is a multiple of {mesh.size}, or a mesh "
            "whose size divides it")


def on_mesh(kernel: PyTree, plan: TilePlan, mesh: jax.sharding.Mesh) -> PyTree:
    """The host kernel as ``jax.Array`` s on ``mesh``: each leaf's rows of x1 split over the
    devices (a leaf without them — a traced example axis — replicated)."""
    check_sharded(plan, mesh)

    def place(layout, leaf):
        spec = [None] * np.ndim(leaf)
        if layout.rows is not None:
            spec[layout.rows] = tuple(mesh.axis_names)
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))
        return jax.make_array_from_callback(np.shape(leaf), sharding, lambda index: np.asarray(leaf[index]))
    leaves = plan.out_tree.flatten_up_to(kernel)
    return plan.out_tree.unflatten([place(layout, leaf) for layout, leaf in zip(plan.layouts, leaves)])

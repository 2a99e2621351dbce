"""``ntkc.ntk_matrix`` and ``ntkc.tile_plan``: the tiled kernel's entry points and its driver loop.

The loop dispatches tile t+1 before it copies tile t to the host (JAX runs asynchronously), so
copying and writing a tile overlaps the next tile's computation. With row bands, a band's side-1
results are computed when its first tile runs and kept for the band's other tiles; a new band
starts once the last band's tiles are done, so two bands' arrays never coexist.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import jax

from ntkc._version import __version__
from ntkc.planning import PlanOptions, check_options
from ntkc.tiling import devices, processes
from ntkc.tiling.plan import TilePlan, make_tile_plan
from ntkc.tiling.store import Store, fingerprint

PyTree = Any

#: ``out=SHARDED``: the kernel as a global ``jax.Array`` sharded over the mesh's devices.
SHARDED = "sharded"


def _options(f, method, trace_axes, diagonal_axes, vmap_axes, memory_limit) -> PlanOptions:
    options = PlanOptions(trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap_axes=vmap_axes,
                          memory_limit=memory_limit)
    check_options(f, method, options)
    return options


def tile_plan(f: Callable, params: PyTree, x1: PyTree, x2: PyTree | None = None, *,
              trace_axes: Sequence[int] = (-1,), diagonal_axes: Sequence[int] = (), vmap_axes: Any = 0,
              method: str = "auto", memory_limit: int | None = None,
              block_size: int | tuple[int, int] | None = None, mesh=None, **kwargs) -> TilePlan:
    """How :func:`ntk_matrix` would compute this kernel: the tile, the tiles, the method, the
    predicted FLOPs and time, and XLA's measured working set of one tile — nothing is computed
    (the full tile is compiled, to measure it). Same arguments as :func:`ntk_matrix` (``mesh``
    and the number of processes shape the bands: each device's share of a band's rows is priced).

    >>> import jax.numpy as jnp, numpy as np, ntkc
    >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
    >>> params = {"w": np.ones((3, 16), np.float32) / 3, "v": np.ones((16, 2), np.float32) / 4}
    >>> plan = ntkc.tile_plan(f, params, np.ones((100, 3), np.float32), block_size=32)
    >>> plan.block, len(plan.tiles), plan.symmetric
    ((32, 32), 10, True)
    """
    options = _options(f, method, trace_axes, diagonal_axes, vmap_axes, memory_limit)
    mesh = devices.resolve_mesh(mesh)
    return make_tile_plan(f, params, x1, x2, kwargs, method=method, options=options, block_size=block_size,
                          spread=_spread(mesh))


def _spread(mesh) -> tuple[int, int]:
    """(devices per process, processes): how the tiles are spread."""
    return (1 if mesh is None else mesh.size), processes.count()


def _fingerprint(plan: TilePlan, params, x1, x2, kwargs, options: PlanOptions, dtype, where) -> str:
    context = plan.context
    kernel = plan.kernel(plan.block, context.single(plan.tiles[0]) if plan.tiles else False)
    analyses = [kernel.plan.analysis] if kernel.plan.complex is None else [p.analysis for p in kernel.plan.complex.parts]
    programs = [side.graph.pretty() for a in analyses for side in a.lowered.sides]
    static = sorted((k, repr(v)) for k, v in kwargs.items() if not jax.tree_util.tree_leaves(v)
                    or not all(hasattr(l, "shape") for l in jax.tree_util.tree_leaves(v)))
    arrays = [l for l in jax.tree_util.tree_leaves((params, x1, x2, kwargs)) if hasattr(l, "shape")]
    parts = [__version__, jax.__version__, options, context.method, str(dtype), plan.block, plan.n1, plan.n2,
             plan.symmetric, plan.mode, plan.banded, where, jax.tree_util.tree_structure((params, x1, x2)), static,
             programs]
    return fingerprint(parts, arrays)


def _progress(progress, total: int, done: int, plan: TilePlan):
    """A callable ``advance()`` per finished tile: a tqdm bar, the user's hook, or nothing."""
    if callable(progress):
        counter = {"done": done}

        def hook():
            counter["done"] += 1
            progress(counter["done"], total)
        return hook, lambda: None
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return (lambda: None), (lambda: None)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=done, unit="tile", desc=f"ntk_matrix {plan.block[0]}×{plan.block[1]}",
               postfix={"plan": f"{plan.flops / 1e9:.3g} GFLOP, ≈{plan.seconds:.0f} s, "
                                f"{plan.peak_bytes / 2**20:.0f} MiB/tile"})
    return (lambda: bar.update(1)), bar.close


def _tile_runner(plan: TilePlan, params) -> Callable:
    """``run(tile) -> kernels`` (dispatched, not waited for): one call of the tile's kernel."""
    context = plan.context

    def run(tile):
        single = context.single(tile)
        kernel = plan.kernel(tile.shape, single)
        a, kw1 = context.side1.block(tile.i0, tile.i1)
        b, kw2 = context.side2.block(tile.j0, tile.j1)
        return kernel.run(a, None if single else b, params, kw1, kw1 if single else kw2)
    return run


def _steps(plan: TilePlan, mesh, params):
    """``(tiles, steps, run, where)``: the schedule's tiles; its steps, each ``(pairs, band,
    step)`` with the ``(index, tile)`` pairs it computes and the band they belong to;
    ``run(step) -> collect``, ``collect() -> [(index, tile, kernels)]``; and where it runs (None:
    one device; a mesh: its layout and device count, :mod:`ntkc.tiling.devices`)."""
    if mesh is not None:
        mesh_schedule = devices.schedule(plan, mesh)
        run = devices.runner(plan, mesh_schedule, params, _tile_runner(plan, params))
        steps = [(list(s.tiles), s.band, s) for s in mesh_schedule.steps]
        return mesh_schedule.tiles, steps, run, (mesh_schedule.layout, mesh_schedule.devices)
    single = _band_runner(plan, params) if plan.banded else _tile_runner(plan, params)

    def run(step):
        ((index, tile),) = step
        kernels = single(tile)
        return lambda: [(index, tile, kernels)]
    steps = [([(k, t)], t.i0 if plan.banded else None, [(k, t)]) for k, t in enumerate(plan.tiles)]
    return plan.tiles, steps, run, None


def row_chunks(plan: TilePlan, tile) -> list:
    """The ``(x1, kw1)`` blocks of the row program for ``tile``'s band: ``chunk`` examples
    each, padded (past the last example, chunks repeat it)."""
    chunk, context = plan.kernel(plan.block, False).chunk, plan.context

    def block(start: int, stop: int):
        start, stop = (start, stop) if start < stop else (stop - 1, stop)
        return context.side1.padded(start, stop, chunk)
    return [block(s, min(s + chunk, tile.i1)) for s in range(tile.i0, tile.i0 + plan.block[0], chunk)]


def _band_runner(plan: TilePlan, params) -> Callable:
    """``run(tile) -> kernels`` with row bands: the band's row program when the band changes,
    then the tile's column program on examples padded to the block, cropped to the tile."""
    context, kernel, b2 = plan.context, plan.kernel(plan.block, False), plan.block[1]
    band: dict = {}

    def run(tile):
        if band.get("start") != tile.i0:
            band.clear()  # the last band's arrays go once its last tile has run, before this band's exist
            band.update(start=tile.i0, carried=kernel.row(params, row_chunks(plan, tile)))
        b, kw2 = context.side2.padded(tile.j0, tile.j1, b2)
        start = tile.j0 - tile.i0
        if kernel.own is not None and 0 <= start and start + b2 <= plan.block[0]:  # x2 is x1: the band's own
            kernels = kernel.own(band["carried"], params, b, kw2, start)
        else:
            kernels = kernel.column(band["carried"], params, b, kw2)
        if tile.shape == plan.block:
            return kernels
        leaves = plan.out_tree.flatten_up_to(kernels)
        return plan.out_tree.unflatten([layout.crop(leaf, tile.shape) for layout, leaf in zip(plan.layouts, leaves)])
    return run


def ntk_matrix(f: Callable, params: PyTree, x1: PyTree, x2: PyTree | None = None, *,
               trace_axes: Sequence[int] = (-1,), diagonal_axes: Sequence[int] = (), vmap_axes: Any = 0,
               method: str = "auto", memory_limit: int | None = None,
               block_size: int | tuple[int, int] | None = None, out=None, progress=None, dtype=None,
               mesh=None, **kwargs) -> PyTree:
    """The empirical NTK of ``f`` on ``x1`` and ``x2`` (None: x2 is x1), computed tile by tile.

    Returns what ``ntkc.ntk_fn(f, trace_axes, diagonal_axes, vmap_axes, method)(x1, x2, params,
    **kwargs)`` returns, as NumPy arrays (a pytree of them for a pytree output), whatever the
    number of examples. Examples must be independent (``vmap_axes`` set: tiling a batch-coupled
    ``f`` would change it); inputs may be NumPy memmaps, of which only the tiles' examples are read.

    Args:
      memory_limit: bytes for one tile's working set (parameters and inputs, the method's
        residuals, Jacobians or factors and cotangents, intermediates, the tile, XLA's
        temporaries — measured from the compiled tile); the assembled kernel is not counted.
        None: half of the memory available now. It also steers the tiles' contraction orders.
      block_size: examples per tile (an int, or ``(b1, b2)``), instead of the budget's choice.
      out: None (host memory), or a path: ``kernel.npy`` (one output leaf) or a directory (one
        ``.npy`` per output leaf) written tile by tile as memory-mapped files and returned as
        ``numpy.memmap`` s; finished tiles are flushed and recorded next to it (every 10 s, and
        when the call ends or is interrupted), and the same call after an interruption computes
        only the missing tiles (a run of another kernel there is refused).
      progress: a progress bar (tqdm): None (default) shows it in a terminal; True, False; or a
        callable ``progress(done, total)`` called after every tile.
      dtype: the kernel's dtype (default: ``f``'s output dtype).
      mesh: None (one device), a ``jax.sharding.Mesh`` whose devices all take tiles, or
        ``"all"`` (every local device): each step is one program over the mesh — a row band of
        x1 split over the devices with x2's tile replicated when the plan runs in row bands,
        one tile per device otherwise (:mod:`ntkc.tiling.devices`). ``memory_limit`` is per
        device. The result equals one device's up to float rounding.

    With x2 = None only the tiles on or above the diagonal are computed (the kernel is
    symmetric); a diagonal example axis (``diagonal_axes`` holding it) needs only the diagonal
    tiles, a traced one is their mean. ``ntkc.tile_plan(...)`` tells the tiles and costs first.

    >>> import jax.numpy as jnp, numpy as np, ntkc
    >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
    >>> params = {"w": np.ones((3, 16), np.float32) / 3, "v": np.ones((16, 2), np.float32) / 4}
    >>> x = np.linspace(-1, 1, 111 * 3, dtype=np.float32).reshape(111, 3)
    >>> K = ntkc.ntk_matrix(f, params, x, block_size=32)
    >>> K.shape, bool(np.allclose(K, ntkc.ntk_fn(f, vmap_axes=0)(x, None, params), rtol=1e-5))
    ((111, 111), True)
    """
    options = _options(f, method, trace_axes, diagonal_axes, vmap_axes, memory_limit)
    sharded = isinstance(out, str) and out == SHARDED
    mesh = devices.resolve_mesh("all" if sharded and mesh is None else mesh)
    count, this = processes.count(), processes.index()
    if mesh is not None and any(d.process_index != this for d in mesh.devices.flat):
        raise ValueError("`mesh` holds devices of other processes; with several processes each one's mesh is "
                         "its own devices (`mesh='all'`), and the processes share the tiles")
    plan = make_tile_plan(f, params, x1, x2, kwargs, method=method, options=options, block_size=block_size,
                          spread=_spread(mesh))
    spread = mesh if count == 1 else devices.every_process_mesh()  # where out='sharded' puts the kernel
    if sharded:
        devices.check_sharded(plan, spread)
    grid, steps, run, where = _steps(plan, mesh, params)
    if count > 1:  # this process's share: whole bands, balanced by their tiles' sizes
        costs = [sum(t.shape[0] * t.shape[1] for _, t in pairs) for pairs, _, _ in steps]
        steps = [steps[k] for k in processes.share(costs, [band for _, band, _ in steps], count, this)]
    record = None if out is None or sharded else _fingerprint(plan, params, x1, x2, kwargs, options, dtype,
                                                               (where, count))
    store = Store(list(plan.layouts), plan.out_tree, dtype, None if sharded else out, record, plan.n1,
                  processes=(count, this))
    mine = sum(len(pairs) for pairs, _, _ in steps)
    todo = [(pairs, band, step) for pairs, band, step in steps
            if any(index not in store.done for index, _ in pairs)]
    remaining = sum(index not in store.done for pairs, _, _ in todo for index, _ in pairs)
    advance, close = _progress(progress, mine, mine - remaining, plan)
    pending = None

    def write(collect):
        for index, tile, kernels in collect():
            if index not in store.done:
                store.write(index, tile, kernels, symmetric=plan.symmetric)
                advance()
    try:
        for pairs, band, step in todo:
            if band is not None and pending is not None and pending[0] != band:
                write(pending[1])  # the last band's tiles done: its arrays go
                pending = None
            running = (band, run(step))
            if pending is not None:
                write(pending[1])
            pending = running
        if pending is not None:
            write(pending[1])
    finally:
        store.sync()
        close()
    kernel = store.result()
    return devices.on_mesh(kernel, plan, spread) if sharded else kernel

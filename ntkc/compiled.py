"""Ahead-of-time compiled NTK functions: ``ntkc.compile(f, params, x1, ...)`` -> :class:`CompiledNTK`.

Compiling fixes the shapes and dtypes of ``x1``, ``x2`` and ``params``: the plan is built once
(:func:`ntkc.plan`; ``method="auto"`` asks the cost model), its program is lowered and compiled
by XLA once, and every call runs the compiled executable — ``f`` is never traced again. The cost
report, the printed plan, the exported source and the serialized kernel all come from that one
plan. A call with other shapes or dtypes raises an error naming the argument and both shapes.

>>> import jax, jax.numpy as jnp
>>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
>>> params = {"w": jnp.ones((3, 8)) / 3, "v": jnp.ones((8, 2)) / 8}
>>> c = compile(f, params, jnp.ones((4, 3)), jnp.ones((5, 3)), vmap_axes=0)
>>> c(jnp.ones((4, 3)), jnp.ones((5, 3)), params).shape
(4, 5)
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.export  # a submodule that `import jax` alone does not load on older JAX (0.4.30 … 0.5)

from ntkc.api import resolve_method
from ntkc.export import plan_source
from ntkc.planning import NTKPlan, PlanOptions, check_argument, check_options, emit_warnings, execute, plan_for
from ntkc.report import plan_report

PyTree = Any


@dataclasses.dataclass(frozen=True, eq=False)
class CompiledNTK:
    """An NTK function compiled for fixed shapes: ``c(x1, x2, params)``.

    Attributes:
      method: the method it runs (``auto`` resolved at compile time).
      specs: the ``(x1, x2, params)`` shapes and dtypes it was compiled for.
      plan: the :class:`ntkc.NTKPlan` it runs (``str(c.plan)`` is the compiler's IR).
    """

    method: str
    specs: tuple
    plan: NTKPlan
    kwargs: Mapping[str, Any]
    dims: Mapping[str, int] | None
    _executable: Any
    _lowered: Any
    _jitted: Callable
    _memo: dict = dataclasses.field(default_factory=dict, repr=False)

    def __call__(self, x1: PyTree, x2: PyTree | None = None, params: PyTree = None) -> PyTree:
        for name, expected, got in zip(("x1", "x2", "params"), self.specs, (x1, x2, params)):
            check_argument(name, expected, got)
        return self._executable(x1, x2, params)

    def cost_report(self):
        """The symbolic cost report (:func:`ntkc.cost_report`) of the compiled plan, with XLA's
        FLOP count of every method's program."""
        if "report" not in self._memo:
            self._memo["report"] = plan_report(self.plan, dims=self.dims, xla=True, kwargs=self.kwargs)
        return self._memo["report"]

    def source(self) -> str:
        """This kernel as one standalone Python module that imports only jax and numpy
        (:mod:`ntkc.export`): ``ntk(x1, x2, params)`` gives what this object gives, written
        from the program this object runs. Deterministic: the same compilation yields
        byte-identical source."""
        if "source" not in self._memo:
            self._memo["source"] = plan_source(self.plan, self.kwargs, dims=self.dims)
        return self._memo["source"]

    def export(self, path) -> str:
        """Write :meth:`source` to ``path`` (e.g. ``ntk_generated.py``); returns the source."""
        text = self.source()
        pathlib.Path(path).write_text(text, encoding="utf-8")
        return text

    @property
    def executable(self):
        """The compiled XLA executable (``jax.stages.Compiled``: its ``cost_analysis()``,
        ``memory_analysis()``); calling it skips the argument checks of ``self(...)``."""
        return self._executable

    def lowered_text(self) -> str:
        """The StableHLO of the compiled program."""
        return self._lowered.as_text()

    def serialize(self) -> bytes:
        """The compiled kernel as bytes (``jax.export``): :func:`deserialize` runs it later
        without the model's Python code."""
        exported = jax.export.export(self._jitted)(*self.specs)
        return bytes(exported.serialize())


class DeserializedNTK:
    """A kernel restored by :func:`deserialize`: ``k(x1, x2, params)`` with the saved shapes."""

    def __init__(self, exported) -> None:
        self._exported = exported
        self.specs = jax.tree_util.tree_unflatten(exported.in_tree, exported.in_avals)[0]

    def __call__(self, x1: PyTree, x2: PyTree | None = None, params: PyTree = None) -> PyTree:
        for name, expected, got in zip(("x1", "x2", "params"), self.specs, (x1, x2, params)):
            check_argument(name, expected, got)
        return self._exported.call(x1, x2, params)


def deserialize(data: bytes) -> DeserializedNTK:
    """Restore a kernel saved by :meth:`CompiledNTK.serialize`."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"`data` must be the bytes from CompiledNTK.serialize(), got {type(data).__name__}.")
    return DeserializedNTK(jax.export.deserialize(bytearray(data)))


def compile(f: Callable, params: PyTree, x1: PyTree, x2: PyTree | None = None, *,
            trace_axes: Sequence[int] = (-1,), diagonal_axes: Sequence[int] = (), vmap_axes: Any = None,
            method: str | None = None, dims: Mapping[str, int] | None = None, memory_limit: int | None = None,
            tune: bool = True, implementation: Any = None, **kwargs) -> CompiledNTK:
    """Compile the NTK of ``f`` for the shapes of ``x1``, ``x2`` and ``params`` (arrays or
    ``jax.ShapeDtypeStruct``); ``kwargs`` are bound as constants. See :func:`ntkc.ntk_fn` for the
    axes and ``memory_limit``; ``dims`` names sizes in :meth:`CompiledNTK.cost_report`.

    ``tune`` (with ``method="auto"``): when methods are within 2× of the fewest predicted FLOPs
    (a tie FLOPs cannot decide), compile and time them on these shapes and this device and run
    the fastest; the measurement is kept with the plan and on disk, so later ``ntk_fn(...,
    method="auto")`` calls of the same problem use it (:mod:`ntkc.tuning`; ``NTKC_AUTOTUNE=0``
    turns measuring off, ``NTKC_CACHE_DIR`` moves the cache).

    ``method`` defaults to ``"auto"``; ``implementation`` is neural-tangents' spelling of it (an
    :class:`ntkc.NtkImplementation` or its int value), as in :func:`ntkc.ntk_fn`.

    Example:
      >>> import jax.numpy as jnp, ntkc
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": jnp.ones((3, 8)) / 3, "v": jnp.ones((8, 2)) / 8}
      >>> x1, x2 = jnp.ones((4, 3)), jnp.ones((5, 3))
      >>> c = ntkc.compile(f, params, x1, x2, vmap_axes=0, method="structured")
      >>> c(x1, x2, params).shape, c.method
      ((4, 5), 'structured')
    """
    method = resolve_method(method, implementation)
    options = PlanOptions(trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap_axes=vmap_axes,
                          memory_limit=memory_limit)
    check_options(f, method, options)
    plan = plan_for(f, params, x1, x2, kwargs, method, options)
    if method == "auto" and tune and plan.analysis is not None:
        plan.analysis.tune(kwargs)
        plan = plan_for(f, params, x1, x2, kwargs, method, options)
    emit_warnings(plan, stacklevel=2)
    specs = (plan.specs.x1, plan.specs.x2, plan.specs.params)
    jitted = jax.jit(lambda a, b, p: execute(plan, a, b, p, kwargs))
    lowered = jitted.lower(*specs)
    return CompiledNTK(method=plan.method, specs=specs, plan=plan, kwargs=dict(kwargs), dims=dims,
                       _executable=lowered.compile(), _lowered=lowered, _jitted=jitted)

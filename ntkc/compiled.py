"""Ahead-of-time compiled NTK functions: ``ntkc.compile(f, params, x1, ...)`` -> :class:`CompiledNTK`.

Compiling fixes the shapes and dtypes of ``x1``, ``x2`` and ``params``: the method is chosen
once (``method="auto"`` asks the cost model), the kernel is traced, lowered and compiled by XLA
once, and every call runs the compiled executable — ``f`` is never traced again. A call with
other shapes or dtypes raises an error naming the argument and both shapes.

>>> import jax, jax.numpy as jnp
>>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
>>> params = {"w": jnp.ones((3, 8)) / 3, "v": jnp.ones((8, 2)) / 8}
>>> c = compile(f, params, jnp.ones((4, 3)), jnp.ones((5, 3)), vmap_axes=0)
>>> c(jnp.ones((4, 3)), jnp.ones((5, 3)), params).shape
(4, 5)
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any, Callable, Mapping, Sequence

import jax

PyTree = Any


def _spec(tree: PyTree):
    return jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(jax.numpy.shape(v), jax.numpy.result_type(v)), tree)


def _check(name: str, expected: PyTree, got: PyTree) -> None:
    """Raise a ValueError naming ``name`` when ``got`` does not match the compiled ``expected``."""
    if (expected is None) != (got is None):
        raise ValueError(f"`{name}` was {'None' if expected is None else 'given'} at compile time, "
                         f"but is {'None' if got is None else 'given'} now.")
    if expected is None:
        return
    want, have = jax.tree_util.tree_structure(expected), jax.tree_util.tree_structure(got)
    if want != have:
        raise ValueError(f"`{name}` has structure {have}, but the kernel was compiled for {want}.")
    paths = jax.tree_util.tree_flatten_with_path(expected)[0]
    for (path, e), g in zip(paths, jax.tree_util.tree_leaves(got)):
        shape, dtype = tuple(jax.numpy.shape(g)), jax.numpy.result_type(g)
        where = f"`{name}{jax.tree_util.keystr(path)}`"
        if shape != tuple(e.shape):
            raise ValueError(f"{where} has shape {shape}, but the kernel was compiled for {tuple(e.shape)}.")
        if dtype != e.dtype:
            raise ValueError(f"{where} has dtype {dtype}, but the kernel was compiled for {e.dtype}.")


@dataclasses.dataclass(frozen=True, eq=False)
class CompiledNTK:
    """An NTK function compiled for fixed shapes: ``c(x1, x2, params)``.

    Attributes:
      method: the method it runs (``auto`` resolved at compile time).
      specs: the ``(x1, x2, params)`` shapes and dtypes it was compiled for.
    """

    method: str
    specs: tuple
    _executable: Any
    _lowered: Any
    _jitted: Callable
    _report: Callable[[], Any]
    _plan: Callable[[], str]
    _source: Callable[[], str]

    def __call__(self, x1: PyTree, x2: PyTree | None = None, params: PyTree = None) -> PyTree:
        for name, expected, got in zip(("x1", "x2", "params"), self.specs, (x1, x2, params)):
            _check(name, expected, got)
        return self._executable(x1, x2, params)

    def cost_report(self):
        """The symbolic cost report (:func:`ntkc.cost_report`) for the compiled shapes, with XLA's
        FLOP count of every method's program."""
        return self._report()

    @property
    def plan(self) -> str:
        """The structured plan as text (the IR printer), or what the method does otherwise."""
        return self._plan()

    def source(self) -> str:
        """This kernel as one standalone Python module that imports only jax and numpy
        (:mod:`ntkc.backends.python_source`): ``ntk(x1, x2, params)`` gives what this object
        gives. Deterministic: the same compilation yields byte-identical source."""
        return self._source()

    def export(self, path) -> str:
        """Write :meth:`source` to ``path`` (e.g. ``ntk_generated.py``); returns the source."""
        import pathlib

        text = self.source()
        pathlib.Path(path).write_text(text, encoding="utf-8")
        return text

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
            _check(name, expected, got)
        return self._exported.call(x1, x2, params)


def deserialize(data: bytes) -> DeserializedNTK:
    """Restore a kernel saved by :meth:`CompiledNTK.serialize`."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"`data` must be the bytes from CompiledNTK.serialize(), got {type(data).__name__}.")
    return DeserializedNTK(jax.export.deserialize(bytearray(data)))


def compile(f: Callable, params: PyTree, x1: PyTree, x2: PyTree | None = None, *,
            trace_axes: Sequence[int] = (-1,), diagonal_axes: Sequence[int] = (), vmap_axes: Any = None,
            method: str = "auto", dims: Mapping[str, int] | None = None, memory_limit: int | None = None,
            **kwargs) -> CompiledNTK:
    """Compile the NTK of ``f`` for the shapes of ``x1``, ``x2`` and ``params`` (arrays or
    ``jax.ShapeDtypeStruct``); ``kwargs`` are bound as constants. See :func:`ntkc.ntk_fn` for the
    axes and ``memory_limit``; ``dims`` names sizes in :meth:`CompiledNTK.cost_report`."""
    from ntkc.api import ntk_fn
    from ntkc.complex_models import real_problem
    from ntkc.passes.select import choose_method
    from ntkc.problem import build_problem, require_real
    from ntkc.report import cost_report

    axes = dict(trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap_axes=vmap_axes)
    ntk_fn(f, method=method, memory_limit=memory_limit, **axes)  # argument checks
    specs = (_spec(x1), None if x2 is None else _spec(x2), _spec(params))
    if method == "auto":
        build = lambda g, a, b, p, kw: build_problem(g, a, b, p, kw, **axes)
        problem, real, _ = real_problem(build, f, specs[0], specs[1], specs[2], kwargs)
        method = choose_method(problem, real, memory_limit)
    kernel = ntk_fn(f, method=method, memory_limit=memory_limit, **axes)
    jitted = jax.jit(lambda a, b, p: kernel(a, b, p, **kwargs))
    lowered = jitted.lower(*specs)
    executable = lowered.compile()

    def report():
        return cost_report(f, specs[2], specs[0], specs[1], dims=dims, memory_limit=memory_limit,
                           xla=True, **axes, **kwargs)

    def plan() -> str:
        if method != "structured":
            return f"method {method!r}: see ntkc.methods.{method}"
        from ntkc.ir.printer import render
        from ntkc.passes.pipeline import compile_plan
        problem = build_problem(f, specs[0], specs[1], specs[2], kwargs, **axes)
        require_real(problem, "the printed plan")
        return render(compile_plan(problem, specs[2], memory_limit=memory_limit))

    def source() -> str:
        from ntkc.backends.python_source import module_source

        summary = cost_summary(cost_report(f, specs[2], specs[0], specs[1], dims=dims, memory_limit=memory_limit,
                                           **axes, **kwargs), method)
        return module_source(f, specs, kwargs, axes, method, memory_limit, summary)

    return CompiledNTK(method=method, specs=specs, _executable=executable, _lowered=lowered,
                       _jitted=jitted, _report=report, _plan=plan, _source=source)


def cost_summary(report, method: str) -> list[str]:
    """The predicted-cost lines of an exported module's header."""
    lines = ["Predicted cost (ntkc cost model; * = cheapest):",
             f"    {'method':<14}{'FLOPs':>10}{'memory':>12}"]
    for row in report._rows():
        lines.append(f"    {row[0]:<14}{row[2]:>10}{row[5]:>12}")
    formula = str(report.costs[method].total_flops).replace("**", "^")
    return lines + textwrap.wrap(f"{method} FLOPs: {formula}", width=96, initial_indent="    ",
                                 subsequent_indent="        ", break_long_words=False)

"""One plan, held: the NTK of ``f`` for inputs of given shapes, built once and run many times.

:func:`plan` builds an :class:`NTKPlan` from shapes alone (arrays or ``jax.ShapeDtypeStruct``
s): it checks the arguments, lowers ``f`` once, runs the compiler when a method needs it,
chooses the method (``"auto"``: the cost model; a method that does not apply to ``f``: Jacobian
contraction, with a warning) and records the method's executor program. :func:`run_plan`
executes a plan on any inputs of those shapes, like opt_einsum's ``contract_expression``.

A plan holds ``f`` by reference and nothing derived from any call's arrays: array inputs —
``x``, keyword arguments made of arrays, inputs shared by all examples — are inputs of its
program; keyword arguments that hold no arrays (flags, Python numbers) are constants of ``f``
and part of the plan's identity. Plans are cached in a bounded cache keyed by ``f``, the
shapes, dtypes and tree structures of every input, those constants and the options, so a
kernel traced again with the same shapes (``jax.jit`` retracing) does not plan again
(``plan.cache_info()``, ``plan.cache_clear()``). Like ``jax.jit``, the cache assumes ``f`` is
a pure function.

>>> import jax, jax.numpy as jnp
>>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
>>> params = {"w": jnp.ones((3, 8)) / 3, "v": jnp.ones((8, 2)) / 8}
>>> x = jnp.ones((4, 3))
>>> p = plan(f, params, jax.ShapeDtypeStruct(x.shape, x.dtype), vmap_axes=0, method="structured")
>>> p.method, run_plan(p, x, None, params).shape
('structured', (4, 4))
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import warnings
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from ntkc.axes import canonicalize_axes
from ntkc.backends import program as programs
from ntkc.batching import Identity, is_array, partition_kwargs, shape_structs, split_kwargs
from ntkc.complex_models import complex_out, has_complex_params, real_problem, split_params
from ntkc.errors import DenseFallbackWarning, MethodFallbackWarning, StructureUnavailable
from ntkc.ir.from_jaxpr import holds_tracers
from ntkc.ir.printer import render
from ntkc import tuning
from ntkc.methods import METHODS
from ntkc.methods.calls import input_values
from ntkc.passes.cost import MethodCost, SizeNames
from ntkc.passes.pipeline import compile_plan, forward_blocker, lower_sides, reverse_blocker
from ntkc.passes.select import choose, examples_of
from ntkc.plan_cache import PlanCache, kwargs_key, spec_key, tree_key
from ntkc.problem import NTKProblem, build_problem

PyTree = Any


def valid_methods() -> tuple[str, ...]:
    """Valid values of ``method``: every registered method plus ``"auto"``.

    Example:
      >>> import ntkc
      >>> ntkc.valid_methods()
      ('jacobian', 'ntvp', 'structured', 'auto')
    """
    return (*METHODS, "auto")


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    """The options a plan was built with (``ntk_fn``'s keyword arguments)."""

    trace_axes: Any = (-1,)
    diagonal_axes: Any = ()
    vmap_axes: Any = None
    memory_limit: int | None = None

    def axes(self) -> dict:
        return dict(trace_axes=self.trace_axes, diagonal_axes=self.diagonal_axes, vmap_axes=self.vmap_axes)

    def key(self) -> tuple:
        def axes(a):
            return () if a is None else (a,) if isinstance(a, int) else tuple(a)
        return (axes(self.trace_axes), axes(self.diagonal_axes), tree_key(self.vmap_axes), self.memory_limit)


def check_options(f: Callable, method: str, options: PlanOptions) -> None:
    """Clear errors for bad arguments that do not need the inputs' shapes."""
    if not callable(f):
        raise TypeError(f"`f` must be callable as f(params, x, **kwargs), got {type(f).__name__}.")
    if not isinstance(method, str) or method not in valid_methods():
        raise ValueError(f"Unknown `method` {method!r}; valid methods are {list(valid_methods())}.")
    # Range checks need the output rank; types are checked now so mistakes surface early.
    canonicalize_axes(options.trace_axes, 10**6, argname="trace_axes")
    canonicalize_axes(options.diagonal_axes, 10**6, argname="diagonal_axes")
    limit = options.memory_limit
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"`memory_limit` must be a positive int (bytes) or None, got {limit!r}.")


# ---------------------------------------------------------------------------------------------
# What every method's plan shares: the analysis of one problem.


class Analysis:
    """Shape-only facts of one real NTK problem, shared by the plans of every method: the
    lowered graphs (always built: they tell whether reverse mode exists), and — when a method or
    a report needs it — the structured compilation and every method's predicted cost. Each is
    computed at most once. ``loops=False`` unrolls every linear scan (kept loops are the
    default; the unrolled program is the reference they are tested against)."""

    def __init__(self, problem: NTKProblem, params: PyTree, options: PlanOptions, specs: "Specs", loops: bool = True):
        self.problem, self.specs, self.options = problem, specs, options
        self.params = shape_structs(params)
        self.memory_limit = options.memory_limit
        self.lowered = lower_sides(problem, self.params, memory_limit=self.memory_limit, loops=loops)
        self.reverse = reverse_blocker(self.lowered)
        self.forward_blocker = forward_blocker(self.lowered)
        self._compiled = None
        self._costs: dict = {}
        self._plans: dict = {}
        self._lock = threading.Lock()
        self.measured = None  # a tuning.Measurement of auto's near tie, once measured or read

    @property
    def holds_tracers(self) -> bool:
        return any(holds_tracers(s.graph) for s in self.lowered.sides)

    def _compile(self):
        """(compilation or None, why the structured method does not apply or None, held warnings)."""
        if self._compiled is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DenseFallbackWarning)
                try:
                    comp, error = compile_plan(self.problem, self.params, memory_limit=self.memory_limit,
                                               lowered=self.lowered), None
                except StructureUnavailable as reason:
                    comp, error = None, reason
            held = tuple((str(w.message), w.category) for w in caught if issubclass(w.category, DenseFallbackWarning))
            for w in caught:
                if not issubclass(w.category, DenseFallbackWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            self._compiled = (comp, error, held)
        return self._compiled

    @property
    def compilation(self):
        """The structured compilation (the compiler's pipeline runs here, once)."""
        comp, error, _ = self._compile()
        if comp is None:
            raise error
        return comp

    @property
    def structure_error(self) -> StructureUnavailable | None:
        """Why the structured method does not apply to ``f`` (None when it does)."""
        return self._compile()[1]

    @property
    def dense_fallbacks(self) -> tuple:
        """``(message, category)`` of the dense-fallback warnings the structured plan carries."""
        return self._compile()[2]

    def costs(self, names: SizeNames | None = None) -> dict[str, MethodCost]:
        """Every registered method's predicted cost, from the structured compilation."""
        names = names or SizeNames.create({})
        key = (tuple(names.symbols.items()), names.factor)
        if key not in self._costs:
            comp = self.compilation
            _, examples = examples_of(self.problem)
            count = lambda side_ir: names.dim(examples(side_ir))
            self._costs[key] = {m: method.cost(comp, names, count) for m, method in METHODS.items()}
        return self._costs[key]

    def choose(self) -> tuple[str, str]:
        """(method, why) for ``method="auto"``."""
        if self.structure_error is not None:  # the method every model supports
            return "jacobian", f"jacobian: the structured method does not apply ({self.structure_error})"
        method = choose(self.applicable_costs(), self.memory_limit, self.itemsize)
        measured = self.measured
        if measured is None and not self.holds_tracers and len(tuning.candidates(self.applicable_flops())) > 1:
            measured = self.measured = tuning.lookup(self)
        if measured is not None and measured.choice in self.applicable_costs():
            return measured.choice, measured.why()
        return method, f"{method}: the fewest predicted FLOPs among the methods that fit"

    @property
    def itemsize(self) -> int:
        return max(np.dtype(p.dtype).itemsize for p in jax.tree_util.tree_leaves(self.params))

    def applicable_costs(self) -> dict[str, MethodCost]:
        """The predicted costs of the methods that apply to ``f`` and fit ``memory_limit`` (every
        applicable method when none fits)."""
        costs = {m: c for m, c in self.costs().items() if METHODS[m].fallback(self) is None}
        fits = {m: c for m, c in costs.items()
                if self.memory_limit is None or int(c.total_memory) * self.itemsize <= self.memory_limit}
        return fits or costs

    def applicable_flops(self) -> dict[str, int]:
        return {m: int(c.total_flops) for m, c in self.applicable_costs().items()}

    def tune(self, kwargs: dict) -> None:
        """Measure ``auto``'s near tie (:mod:`ntkc.tuning`) unless it is held or stored, and
        re-plan ``auto`` with the measured choice."""
        if self.structure_error is not None or self.holds_tracers:
            return
        measured = tuning.tune(self, kwargs, self.applicable_flops(), execute)
        if measured is not None:
            with self._lock:
                self.measured = measured
                self._plans.pop("auto", None)

    def plan(self, method: str) -> "NTKPlan":
        """The plan running ``method`` (``"auto"`` resolved) for this problem."""
        with self._lock:
            if method not in self._plans:
                self._plans[method] = self._new_plan(method)
            return self._plans[method]

    def _new_plan(self, requested: str) -> "NTKPlan":
        held: tuple = ()
        if requested == "auto":
            method, why = self.choose()
        else:
            reason = METHODS[requested].fallback(self)
            method, why = requested, f"{requested}: requested"
            if reason is not None:
                method, why = "jacobian", f"jacobian: {reason}"
                held = ((f"method={requested!r}: {reason}", MethodFallbackWarning),)
        if method == "structured":
            held = held + self.dense_fallbacks
        return NTKPlan(method=method, requested=requested, why=why, specs=self.specs, analysis=self, warnings=held)


# ---------------------------------------------------------------------------------------------
# The plan object.


@dataclasses.dataclass(frozen=True)
class Specs:
    """The shapes a plan is for: ``x1``, ``x2`` (None: x2 is x1) and ``params`` as
    ``jax.ShapeDtypeStruct`` trees, and each side's keyword arguments — arrays as specs, the
    others as they were given."""

    x1: PyTree
    x2: PyTree | None
    params: PyTree
    kwargs: Mapping[str, Any]

    @classmethod
    def of(cls, x1, x2, params, kwargs) -> "Specs":
        specs = lambda tree: jax.tree_util.tree_map(
            lambda v: v if isinstance(v, jax.ShapeDtypeStruct) else shape_structs(v), tree)
        kw = {k: jax.tree_util.tree_map(lambda v: specs(v) if is_array(v) else v, value)
              for k, value in kwargs.items()}
        return cls(x1=specs(x1), x2=None if x2 is None else specs(x2), params=specs(params), kwargs=kw)


@dataclasses.dataclass(frozen=True, eq=False)
class ComplexParts:
    """A model with complex parameters or outputs, reduced to real problems
    (:mod:`ntkc.complex_models`): the real kernels ``parts`` (one for real outputs; for complex
    ones K(u,u), K(v,v), K(v,u), K(u,v)) of the real parameters."""

    parts: tuple


#: Other ways to run a plan's kernel: ``strategy(plan)`` returns a function with
#: :meth:`NTKPlan.executable`'s signature and result, or None when it does not apply; modules
#: above this one register them (:mod:`ntkc.tiling.halves`: a symmetric kernel's pairs once).
STRATEGIES: list[Callable] = []


@dataclasses.dataclass(frozen=True, eq=False)
class NTKPlan:
    """The NTK of ``f`` for inputs of fixed shapes: which method runs, why, and its program.

    Attributes:
      method: the method that runs (``auto`` resolved; Jacobian contraction when the requested
        method does not apply to ``f``).
      requested: the ``method`` asked for.
      why: the reason for ``method``.
      specs: the input shapes and dtypes it runs on (:class:`Specs`).
      warnings: ``(message, category)`` pairs emitted each time the plan runs (dense fallbacks,
        a method fallback).

    ``str(plan)`` is the compiler's IR (uses, terms, contraction orders) for a structured plan.

    Example:
      >>> import jax, jax.numpy as jnp, ntkc
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": jnp.ones((3, 8)) / 3, "v": jnp.ones((8, 2)) / 8}
      >>> p = ntkc.plan(f, params, jax.ShapeDtypeStruct((4, 3), jnp.float32), vmap_axes=0, method="structured")
      >>> p.method, p.requested, p.why
      ('structured', 'structured', 'structured: requested')
      >>> "kernel 0" in str(p)          # the compiler's IR: uses, einsum terms, orders
      True
    """

    method: str
    requested: str
    why: str
    specs: Specs
    analysis: Analysis | None
    warnings: tuple = ()
    complex: ComplexParts | None = None

    # -- shape-only facts ---------------------------------------------------------------------

    def _real(self, what: str) -> Analysis:
        if self.analysis is None:
            raise TypeError(f"{what} describes real-valued models; this plan's model is complex "
                            "(it runs as real kernels, see ntkc.complex_models).")
        return self.analysis

    @property
    def problem(self) -> NTKProblem:
        return self._real("the plan's problem").problem

    @property
    def params(self) -> PyTree:
        """The parameters' specs (real: complex leaves split, for a complex model's parts)."""
        return self._real("the plan's parameters").params

    @property
    def memory_limit(self) -> int | None:
        return self.options.memory_limit

    @property
    def options(self) -> PlanOptions:
        """The options the plan was built with."""
        parts = self.complex.parts if self.complex is not None else None
        return parts[0].options if parts else self.analysis.options

    @property
    def forward(self) -> bool:
        """Whether Jacobians are built in forward mode (``f`` has no reverse mode)."""
        return self._real("the plan's mode").reverse is not None

    @property
    def compilation(self):
        """The structured compilation (built on first use when the method is not structured)."""
        return self._real("a compiled plan").compilation

    def costs(self, names: SizeNames | None = None) -> dict[str, MethodCost]:
        """Every method's predicted cost (sizes named by ``names``; numbers by default)."""
        return self._real("a cost model").costs(names)

    def with_method(self, method: str) -> "NTKPlan":
        """The plan of the same problem running ``method`` (sharing this plan's analysis)."""
        return self._real("a plan of another method").plan(method)

    @functools.cached_property
    def program(self) -> programs.Program:
        """The executor: this plan's method as named steps (:mod:`ntkc.backends.program`)."""
        return METHODS[self.method].program(self)

    def __str__(self) -> str:
        head = f"NTK plan: method {self.method!r} ({self.why})"
        if self.complex is not None:
            return head + "\n" + "\n".join(f"part {i}: {part}" for i, part in enumerate(self.complex.parts))
        if self.method != "structured":
            return head
        return head + "\n" + render(self.compilation)

    def __repr__(self) -> str:
        return f"NTKPlan(method={self.method!r}, requested={self.requested!r})"

    def __getattr__(self, name: str):
        # ``CompiledNTK.plan`` used to be the plan's text: str methods keep working, deprecated.
        if not name.startswith("_") and hasattr(str, name):
            warnings.warn("CompiledNTK.plan is now an NTKPlan; use str(plan) for its text.",
                          DeprecationWarning, stacklevel=2)
            return getattr(str(self), name)
        raise AttributeError(name)

    def __contains__(self, text: str) -> bool:
        warnings.warn("CompiledNTK.plan is now an NTKPlan; use str(plan) for its text.",
                      DeprecationWarning, stacklevel=2)
        return text in str(self)

    # -- execution ----------------------------------------------------------------------------

    def _execute(self, params: PyTree, x1: PyTree, x2: PyTree | None, kw1: dict, kw2: dict) -> PyTree:
        if self.complex is not None:
            return _run_complex(self, params, x1, x2, kw1, kw2)
        problem = self.problem
        program = self.program
        values = input_values(problem, params, x1, kw1, x2, kw2)
        kernels = programs.run(program, dict(zip(program.inputs, values, strict=True)))
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(problem.out1), kernels)

    @functools.cached_property
    def executable(self) -> Callable:
        """``(params, x1, x2, kw1, kw2) -> kernel``, jitted: one XLA program per plan, reused
        by every call (and inlined into an enclosing ``jax.jit``): the first of
        :data:`STRATEGIES` that takes the plan, else the plan's program."""
        for strategy in STRATEGIES:
            run = strategy(self)
            if run is not None:
                return jax.jit(run)
        return jax.jit(self._execute)


def _run_complex(plan: NTKPlan, params, x1, x2, kw1, kw2):
    real = split_params(params)[0]
    kernels = [part._execute(real, x1, x1 if x2 is None and part.problem.side2 is not None else x2, kw1, kw2)
               for part in plan.complex.parts]
    if len(kernels) == 1:
        return kernels[0]
    uu, vv, vu, uv = kernels
    return jax.tree_util.tree_map(lambda a, b, c, d: jax.lax.complex(a + b, c - d), uu, vv, vu, uv)


# ---------------------------------------------------------------------------------------------
# Building, caching and running plans.


_CACHE = PlanCache()


def plan(f: Callable, params: PyTree, x1: PyTree, x2: PyTree | None = None, *,
         trace_axes: Sequence[int] = (-1,), diagonal_axes: Sequence[int] = (), vmap_axes: Any = None,
         method: str = "auto", memory_limit: int | None = None, **kwargs) -> NTKPlan:
    """The :class:`NTKPlan` of ``f``'s NTK for inputs shaped like ``x1``, ``x2`` and ``params``
    (arrays or ``jax.ShapeDtypeStruct`` s) and keyword arguments ``kwargs``; cached.

    The arguments mean what they mean for :func:`ntkc.ntk_fn` (``x2=None``: x2 is x1). Nothing
    is computed beyond tracing ``f``; run the plan with :func:`run_plan`. Plans of one problem
    for different methods share its analysis (``f`` is lowered, and compiled, once).

    Example:
      >>> import jax, jax.numpy as jnp, ntkc
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": jnp.ones((3, 8)) / 3, "v": jnp.ones((8, 2)) / 8}
      >>> x = jnp.ones((4, 3))
      >>> p = ntkc.plan(f, params, jax.ShapeDtypeStruct(x.shape, x.dtype), vmap_axes=0)
      >>> p.method in ntkc.METHODS      # "auto" resolved by the cost model
      True
      >>> ntkc.run_plan(p, x, None, params).shape
      (4, 4)
    """
    options = PlanOptions(trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap_axes=vmap_axes,
                          memory_limit=memory_limit)
    check_options(f, method, options)
    return plan_for(f, params, x1, x2, kwargs, method, options)


def plan_for(f: Callable, params: PyTree, x1: PyTree, x2: PyTree | None, kwargs: dict, method: str,
             options: PlanOptions) -> NTKPlan:
    """:func:`plan` with the keyword arguments of ``f`` as a dict and checked options."""
    key = (Identity(f), options.key(), spec_key(x1), None if x2 is None else spec_key(x2),
           spec_key(params), kwargs_key(kwargs))
    analysis = _CACHE.get(key)
    if analysis is None:
        analysis = _analyse(f, params, x1, x2, kwargs, options)
        if not analysis.holds_tracers:  # a program of a trace is valid in that trace only
            _CACHE.put(key, analysis)
    return analysis.plan(method)


plan.cache_clear = _CACHE.clear
plan.cache_info = _CACHE.info


class ComplexAnalysis:
    """The analyses of the real problems a complex model reduces to (:class:`ComplexParts`)."""

    def __init__(self, parts: tuple[Analysis, ...], specs: Specs):
        self.parts, self.specs = parts, specs
        self._plans: dict = {}

    @property
    def holds_tracers(self) -> bool:
        return any(a.holds_tracers for a in self.parts)

    def plan(self, method: str) -> NTKPlan:
        if method not in self._plans:
            parts = tuple(a.plan(method) for a in self.parts)
            self._plans[method] = NTKPlan(
                method=parts[0].method, requested=method, why=parts[0].why, specs=self.specs, analysis=None,
                warnings=tuple(dict.fromkeys(w for part in parts for w in part.warnings)),
                complex=ComplexParts(parts=parts))
        return self._plans[method]


def _analyse(f, params, x1, x2, kwargs, options: PlanOptions):
    """The :class:`Analysis` (or :class:`ComplexAnalysis`) of one problem."""
    specs = Specs.of(x1, x2, params, kwargs)
    axes = options.axes()

    def build(g, a, b, p, kw):
        return build_problem(g, a, b, p, kw, **axes)

    if not has_complex_params(specs.params):
        problem = build(f, specs.x1, specs.x2, specs.params, specs.kwargs)
        if not complex_out(problem):
            return Analysis(problem, specs.params, options, specs)
    problem, real, fns = real_problem(build, f, specs.x1, specs.x2, specs.params, specs.kwargs)
    if fns is None:
        problems = [problem]
    else:
        cross = lambda p, q: dataclasses.replace(problem, side1=dataclasses.replace(problem.side1, f=p),
                                                 side2=dataclasses.replace(problem.side2, f=q))
        u, v = fns
        problems = [cross(u, u), cross(v, v), cross(v, u), cross(u, v)]
    return ComplexAnalysis(tuple(Analysis(p, real, options, specs) for p in problems), specs)


def check_inputs(p: NTKPlan, x1: PyTree, x2: PyTree | None, params: PyTree, kwargs: dict) -> None:
    """Raise a ValueError naming the argument whose shapes or dtypes differ from the plan's."""
    for name, expected, got in (("x1", p.specs.x1, x1), ("x2", p.specs.x2, x2), ("params", p.specs.params, params)):
        check_argument(name, expected, got)
    if kwargs_key(kwargs) != kwargs_key(p.specs.kwargs):
        raise ValueError(f"keyword arguments {sorted(kwargs)} differ from the plan's {sorted(p.specs.kwargs)} "
                         "(names, array shapes and dtypes, or the values of non-array arguments).")


def check_argument(name: str, expected: PyTree, got: PyTree) -> None:
    """Raise a ValueError naming ``name`` when ``got`` does not match ``expected`` (specs)."""
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


def emit_warnings(p: NTKPlan, stacklevel: int) -> None:
    """The plan's warnings (dense fallbacks, a method fallback), at the caller's line."""
    for message, category in p.warnings:
        warnings.warn(message, category, stacklevel=stacklevel + 1)


def execute(p: NTKPlan, x1: PyTree, x2: PyTree | None, params: PyTree, kwargs: dict) -> PyTree:
    """Run a plan on inputs already known to match it."""
    kw1, kw2 = (partition_kwargs(side)[0] for side in split_kwargs(kwargs))
    return p.executable(params, x1, x2, kw1, kw2)


def run_plan(p: NTKPlan, x1: PyTree, x2: PyTree | None, params: PyTree, **kwargs) -> PyTree:
    """Run ``p`` on ``x1``, ``x2`` (None: x2 is x1) and ``params`` of the plan's shapes and
    dtypes (any other shapes raise an error naming the argument); ``kwargs`` as planned.
    Returns the kernel (one array per output leaf of ``f``), as :func:`ntkc.ntk_fn` does.

    Example:
      >>> import jax.numpy as jnp, ntkc
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": jnp.ones((3, 8)) / 3, "v": jnp.ones((8, 2)) / 8}
      >>> p = ntkc.plan(f, params, jnp.ones((4, 3)), jnp.ones((5, 3)), vmap_axes=0)
      >>> ntkc.run_plan(p, jnp.zeros((4, 3)), jnp.ones((5, 3)), params).shape   # any inputs of these shapes
      (4, 5)
    """
    if not isinstance(p, NTKPlan):
        raise TypeError(f"`plan` must be an NTKPlan from ntkc.plan(...), got {type(p).__name__}.")
    check_inputs(p, x1, x2, params, kwargs)
    emit_warnings(p, stacklevel=2)
    return execute(p, x1, x2, params, kwargs)

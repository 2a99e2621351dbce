"""The cost report: what each method will cost for a model, symbolically and at its sizes.

``ntkc.cost_report(f, params, x1, ...)`` plans the kernel (:func:`ntkc.plan`: shapes only, no
kernel is run), prices every method from the plan's structured compilation
(:mod:`ntkc.passes.cost`), and returns a :class:`CostReport` that renders as text
(``str(report)``), Markdown (``report.markdown()``) and JSON (``report.json()``).
:func:`plan_report` reports on a plan already built (``CompiledNTK.cost_report`` does).

>>> import jax, jax.numpy as jnp
>>> N, W = jax.export.symbolic_shape("N, W")
>>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
>>> params = {"w": jax.ShapeDtypeStruct((3, W), jnp.float32), "v": jax.ShapeDtypeStruct((W, 10), jnp.float32)}
>>> report = cost_report(f, params, jax.ShapeDtypeStruct((N, 3), jnp.float32), vmap_axes=0, trace_axes=())
>>> report.costs["jacobian"].flops["contractions"]   # 2·N²·O²·P with P = 3W + WO
2*N**2*O**2*(O*W + 3*W)
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from ntkc.ir.compilation import Compilation
from ntkc.methods import METHODS
from ntkc.tiling.halves import halves
from ntkc.passes.cost import MethodCost, SizeNames, evaluate
from ntkc.passes.select import cheapest, examples_of
from ntkc.planning import NTKPlan, PlanOptions, check_options, execute, plan_for
from ntkc.problem import require_real
from ntkc.symbolic import concretize, probe_sizes, size_names

PyTree = Any
METHOD_ORDER = ("structured", "jacobian", "ntvp")


@dataclasses.dataclass(frozen=True)
class CostReport:
    """Predicted costs of every method (FLOPs and peak memory in elements, by part).

    Attributes:
      costs: method -> :class:`MethodCost` with sympy expressions (or ints).
      values: symbol name -> the size it stands for here (symbols without a value stay symbolic).
      chosen: the cheapest method by predicted FLOPs at ``values``, a tie going to
        jacobian (:func:`ntkc.passes.select.cheapest`; None if a symbol lacks a value).
      comp: the structured compilation the prices were read from.
      xla: method -> FLOPs of its lowered program by XLA's ``cost_analysis()`` (``xla=True``).
      itemsize: bytes per element of the kernel's dtype (memory is priced in elements).
      fallbacks: what falls back, and why: ``method -> reason`` for a method that does not apply
        to ``f`` (it runs Jacobian contraction instead, so it is never chosen), and
        ``"structured θk"`` for a parameter consumer whose Jacobian block is dense (no structure
        rule), each naming the primitive and the user's line.
      measured: the :class:`ntkc.tuning.Measurement` of ``auto``'s near tie (measured times of
        its candidates on this device), when one was made or read (:func:`ntkc.compile`).
      symmetric: with x2 = None, how the chosen plan runs when it computes each pair of
        examples once (:mod:`ntkc.tiling.halves`; the FLOPs above are the whole plan's), or "".

    ``str(report)`` is a text table (at most 100 columns), ``report.markdown()`` a Markdown one
    and ``report.json()`` everything, machine-readable.

    Example:
      >>> import jax, jax.numpy as jnp, ntkc
      >>> N, W = jax.export.symbolic_shape("N, W")
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": jax.ShapeDtypeStruct((3, W), jnp.float32), "v": jax.ShapeDtypeStruct((W, 10), jnp.float32)}
      >>> report = ntkc.cost_report(f, params, jax.ShapeDtypeStruct((N, 3), jnp.float32), vmap_axes=0,
      ...                           dims={"N": 100, "W": 1024})
      >>> sorted(report.costs), report.values["W"]
      (['jacobian', 'ntvp', 'structured'], 1024)
      >>> report.why()  # doctest: +ELLIPSIS
      'structured: ...x fewer predicted FLOPs than ...'
    """

    costs: Mapping[str, MethodCost]
    values: Mapping[str, int]
    names: SizeNames
    comp: Compilation
    chosen: str | None
    xla: Mapping[str, float] | None = None
    itemsize: int = 4
    fallbacks: Mapping[str, str] = dataclasses.field(default_factory=dict)
    measured: Any = None
    symmetric: str = ""

    def numeric(self, method: str) -> tuple[int | None, int | None]:
        """(FLOPs, memory elements) of a method at the actual sizes, None where unknown."""
        cost = self.costs[method]
        try:
            return evaluate(cost.total_flops, self.values), evaluate(cost.total_memory, self.values)
        except KeyError:
            return None, None

    def why(self) -> str:
        if self.measured is not None:
            return self.measured.why()
        if self.chosen is None:
            return "no choice: some sizes are symbolic without a value (pass dims=...)"
        flops = {m: self.numeric(m)[0] for m in self.costs if m not in self.fallbacks}
        ranked = sorted(flops, key=flops.get)
        if len(ranked) < 2 or not flops[ranked[0]]:
            return f"{self.chosen}: cheapest predicted FLOPs"
        if self.chosen != ranked[0]:
            return (f"{self.chosen}: a tie with {ranked[0]} ({flops[self.chosen] / flops[ranked[0]]:.3f}x its "
                    "predicted FLOPs) goes to jacobian, the program of fewer, larger operations")
        ratio = flops[ranked[1]] / flops[ranked[0]]
        if ratio < 1.05:
            return (f"{self.chosen}: a near tie with {ranked[1]} ({ratio:.3f}x) in predicted FLOPs; "
                    "memory traffic and per-op overheads decide such ties at run time")
        return f"{self.chosen}: {ratio:.1f}x fewer predicted FLOPs than {ranked[1]}"

    def consumers(self) -> list[dict]:
        """Per parameter leaf and consumer: primitive chain, structure kind, contraction order."""
        rows = []
        for side_ir in self.comp.sides[:1]:
            for use in side_ir.uses:
                terms = [t for k in self.comp.kernels for t in k.terms if t.leaf == use.leaf]
                rows.append({
                    "leaf": use.leaf, "shape": [str(self.names.dim(d)) for d in self.comp.theta_shapes[use.leaf]],
                    "consumer": use.primitives, "kind": use.form.kind,
                    "rule": use.has_rule,
                    "orders": [str(list(t.contraction.path or ())) for t in terms][:2],
                })
        return rows

    def as_dict(self) -> dict:
        methods = {}
        for m in self.costs:
            flops, memory = self.numeric(m)
            methods[m] = {
                "flops": str(self.costs[m].total_flops), "memory": str(self.costs[m].total_memory),
                "flops_parts": {k: str(v) for k, v in self.costs[m].flops.items()},
                "memory_parts": {k: str(v) for k, v in self.costs[m].memory.items()},
                "flops_value": flops, "memory_value": memory,
                "memory_bytes": None if memory is None else memory * self.itemsize,
                "xla_flops": None if self.xla is None else self.xla.get(m),
            }
        return {"values": dict(self.values), "chosen": self.chosen, "why": self.why(),
                "methods": methods, "consumers": self.consumers(), "fallbacks": dict(self.fallbacks),
                "measured_seconds": None if self.measured is None else dict(self.measured.seconds),
                "symmetric": self.symmetric}

    def json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    def _rows(self) -> list[tuple[str, ...]]:
        rows = []
        seconds = {} if self.measured is None else self.measured.seconds
        for m in self.costs:
            flops, memory = self.numeric(m)
            xla = "–" if not self.xla or self.xla.get(m) is None else _num(int(self.xla[m]))
            rows.append((m + (" *" if m == self.chosen else ""), _short(self.costs[m].total_flops),
                         _num(flops), xla, _short(self.costs[m].total_memory),
                         "–" if memory is None else _num(memory * self.itemsize) + "B",
                         f"{seconds[m] * 1e3:.3g} ms" if m in seconds else "–"))
        return rows

    def markdown(self) -> str:
        lines = ["| method | FLOPs | FLOPs here | XLA FLOPs | memory [elements] | memory here [bytes] | measured |",
                 "|---|---|---|---|---|---|---|"]
        lines += [f"| {' | '.join(r)} |" for r in self._rows()]
        lines += ["", f"Sizes: {_sizes(self.values)}. Chosen: {self.why()}."
                  + (f" x2 = None: {self.symmetric}." if self.symmetric else ""), "",
                  "| leaf | shape | consumer | structure | order |", "|---|---|---|---|---|"]
        lines += [f"| {c['leaf']} | {c['shape']} | {c['consumer']} | {c['kind']} | {c['orders'][0] if c['orders'] else '–'} |"
                  for c in self.consumers()]
        if self.fallbacks:
            lines += ["", "Fallbacks:", ""] + [f"- {k}: {v}" for k, v in self.fallbacks.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        width = 100
        wrap = lambda head, text: textwrap.wrap(text, width=width, initial_indent=head,
                                               subsequent_indent=" " * len(head), break_long_words=False)
        lines = [_clip(f"ntkc cost report   sizes: {_sizes(self.values)}", width), ""]
        lines.append(f"{'method':<14}{'FLOPs here':>12}{'XLA FLOPs':>12}{'memory here':>14}{'measured':>12}")
        for r in self._rows():
            lines.append(f"{r[0]:<14}{r[2]:>12}{r[3]:>12}{r[5]:>14}{r[6]:>12}")
        lines += ["", _clip(f"chosen: {self.why()}", width)]
        if self.symmetric:
            lines += wrap("x2 = None: ", self.symmetric)
        lines += ["", "FLOPs:"]
        for m in self.costs:
            lines += wrap(f"  {m:<12}", _short(self.costs[m].total_flops))
        lines.append("memory [elements]:")
        for m in self.costs:
            lines += wrap(f"  {m:<12}", _short(self.costs[m].total_memory))
        lines += ["", "parameters (structured plan):"]
        for c in self.consumers():
            shape = "(" + ", ".join(c["shape"]) + ")"
            order = f"  order {c['orders'][0]}" if c["orders"] else ""
            lines.append(_clip(f"  θ{c['leaf']} {shape}  {c['consumer']}  [{c['kind']}]{order}", width))
        if self.fallbacks:
            lines += ["", "fallbacks:"]
            for k, v in self.fallbacks.items():
                lines += wrap(f"  {k}: ", v)
        return "\n".join(lines)


def _short(expr) -> str:
    return str(expr).replace("**", "^")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(value) -> str:
    if value is None:
        return "–"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)


def _sizes(values: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "(none named)"


def cost_report(f, params: PyTree, x1: PyTree, x2: PyTree | None = None, *,
                trace_axes: Sequence[int] = (-1,), diagonal_axes: Sequence[int] = (),
                vmap_axes: Any = None, dims: Mapping[str, int] | None = None,
                memory_limit: int | None = None, xla: bool = False, **kwargs) -> CostReport:
    """Price every method for ``f`` at these shapes, symbolically; nothing is run.

    ``params``/``x1``/``x2`` may be arrays or ``jax.ShapeDtypeStruct`` (with
    ``jax.export.symbolic_shape`` dimensions to get costs in those symbols). ``dims`` names sizes:
    ``{"W": 512}`` names the concrete size 512 ``W``, or gives a symbolic dimension ``W`` its value.
    ``xla=True`` also lowers every method's program (concrete shapes only; nothing is compiled
    or run) and records XLA's FLOP count next to the prediction.

    Example:
      >>> import jax, jax.numpy as jnp, ntkc
      >>> f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
      >>> params = {"w": jnp.ones((3, 512)), "v": jnp.ones((512, 10))}
      >>> report = ntkc.cost_report(f, params, jnp.ones((8, 3)), vmap_axes=0, trace_axes=(), dims={"W": 512})
      >>> report.chosen
      'structured'
      >>> report.costs["jacobian"].flops["contractions"]    # 2·N²·O²·P, P = 3W + WO
      2*N**2*O**2*(O*W + 3*W)
    """
    options = PlanOptions(trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap_axes=vmap_axes,
                          memory_limit=memory_limit)
    check_options(f, "auto", options)
    probes = probe_sizes(params, x1, x2, kwargs)
    if xla and probes:
        raise ValueError("`xla=True` needs concrete shapes: XLA cannot count a symbolic program")
    params_c, x1_c, x2_c = (concretize(t, probes) for t in (params, x1, x2))
    _require_real_params(params_c)
    p = plan_for(f, params_c, x1_c, x2_c, kwargs, "auto", options)
    return plan_report(p, dims=dims, probes=probes, xla=xla, kwargs=kwargs)


def _require_real_params(params: PyTree) -> None:
    for keypath, leaf in jax.tree_util.tree_leaves_with_path(params):
        if jax.numpy.issubdtype(jax.numpy.result_type(leaf), jax.numpy.complexfloating):
            raise TypeError(
                f"`params` leaf {jax.tree_util.keystr(keypath)} is complex; a cost report needs real "
                "parameters. `ntk_fn` and `ntkc.compile` handle complex models (see ntkc.complex_models).")


def plan_report(plan: NTKPlan, *, dims: Mapping[str, int] | None = None, probes: Mapping[str, int] | None = None,
                xla: bool = False, kwargs: Mapping[str, Any] | None = None) -> CostReport:
    """The :class:`CostReport` of a plan: every method priced from the plan's one structured
    compilation (built now if the plan runs another method). ``probes``: symbol -> the probe
    size standing for it (plans of symbolic shapes); ``xla=True`` lowers every method's program
    on the plan's shapes with ``kwargs`` and records XLA's FLOP count."""
    dims, probes, kwargs = dict(dims or {}), dict(probes or {}), dict(kwargs or {})
    _require_real_params(plan.specs.params)
    problem = plan.problem
    require_real(problem, "a cost report")
    named = {**{k: v for k, v in dims.items() if k not in probes}, **probes}
    (n1, n2), _ = examples_of(problem)
    out = jax.tree_util.tree_leaves(problem.out1)[0]
    names = size_names(named, (n1, n2), math.prod(out.shape) // max(n1, 1), factor=bool(probes))
    costs = plan.costs(names)
    itemsize = max(np.dtype(p.dtype).itemsize for p in jax.tree_util.tree_leaves(plan.params))
    costs = {m: costs[m] for m in METHOD_ORDER}
    values = {s.name: v for v, s in names.symbols.items() if s.name not in probes}
    values.update({k: v for k, v in dims.items() if k in probes})
    report = CostReport(costs=costs, values=values, names=names, comp=plan.compilation, chosen=None, itemsize=itemsize,
                        fallbacks=fallbacks_of(plan))
    flops = {m: report.numeric(m)[0] for m in costs if m not in report.fallbacks}
    chosen = None if any(v is None for v in flops.values()) else cheapest(flops)
    measured = plan.analysis.measured
    if measured is not None and plan.requested == "auto" and not probes:
        chosen = measured.choice
        report = dataclasses.replace(report, measured=measured)
    xla_flops = {m: _xla_flops(plan.with_method(m), kwargs) for m in costs} if xla else None
    split = None if probes or chosen is None else halves(plan.with_method(chosen))
    symmetric = "" if split is None else (
        f"{chosen} runs in halves of {split.sizes[0]} and {split.sizes[1]} examples, each pair of examples once "
        f"({split.pair_flops_fraction:.0%} of the pairs' contraction FLOPs)")
    return dataclasses.replace(report, chosen=chosen, xla=xla_flops, symmetric=symmetric)


def fallbacks_of(plan: NTKPlan) -> dict[str, str]:
    """Methods that do not apply to the plan's ``f`` and dense consumers of its structured plan,
    each with its reason (see :attr:`CostReport.fallbacks`)."""
    analysis = plan.analysis
    out = {}
    for method in METHOD_ORDER:
        reason = METHODS[method].fallback(analysis)
        if reason is not None:
            out[method] = str(reason)
    if "structured" not in out:
        for side_ir in plan.compilation.sides[:1]:
            for use in side_ir.uses:
                if not use.has_rule:
                    out[f"structured θ{use.leaf}"] = (f"'{use.eqn.name}' (from {use.eqn.source}) has no structure rule: "
                                                      "its exact dense Jacobian block is used")
    return out


def _xla_flops(plan: NTKPlan, kwargs: Mapping[str, Any]) -> float | None:
    specs = plan.specs
    lowered = jax.jit(lambda a, b, p: execute(plan, a, b, p, dict(kwargs))).lower(specs.x1, specs.x2, specs.params)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return None if not cost or "flops" not in cost else float(cost["flops"])

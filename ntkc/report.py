"""The cost report: what each method will cost for a model, symbolically and at its sizes.

``ntkc.cost_report(f, params, x1, ...)`` compiles the structured plan (no kernel is run), prices
all three methods with :mod:`ntkc.passes.cost`, and returns a :class:`CostReport` that renders
as text (``str(report)``), Markdown (``report.markdown()``) and JSON (``report.json()``).

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

from ntkc.passes.cost import MethodCost, SizeNames, evaluate
from ntkc.passes.pipeline import Compilation
from ntkc.passes.select import cheapest, examples_of, price
from ntkc.problem import build_problem, require_real
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
    """

    costs: Mapping[str, MethodCost]
    values: Mapping[str, int]
    names: SizeNames
    comp: Compilation
    chosen: str | None
    xla: Mapping[str, float] | None = None
    itemsize: int = 4

    def numeric(self, method: str) -> tuple[int | None, int | None]:
        """(FLOPs, memory elements) of a method at the actual sizes, None where unknown."""
        cost = self.costs[method]
        try:
            return evaluate(cost.total_flops, self.values), evaluate(cost.total_memory, self.values)
        except KeyError:
            return None, None

    def why(self) -> str:
        if self.chosen is None:
            return "no choice: some sizes are symbolic without a value (pass dims=...)"
        flops = {m: self.numeric(m)[0] for m in self.costs}
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
                "methods": methods, "consumers": self.consumers()}

    def json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    def _rows(self) -> list[tuple[str, ...]]:
        rows = []
        for m in self.costs:
            flops, memory = self.numeric(m)
            xla = "–" if not self.xla or self.xla.get(m) is None else _num(int(self.xla[m]))
            rows.append((m + (" *" if m == self.chosen else ""), _short(self.costs[m].total_flops),
                         _num(flops), xla, _short(self.costs[m].total_memory),
                         "–" if memory is None else _num(memory * self.itemsize) + "B"))
        return rows

    def markdown(self) -> str:
        lines = ["| method | FLOPs | FLOPs here | XLA FLOPs | memory [elements] | memory here [bytes] |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {' | '.join(r)} |" for r in self._rows()]
        lines += ["", f"Sizes: {_sizes(self.values)}. Chosen: {self.why()}.", "",
                  "| leaf | shape | consumer | structure | order |", "|---|---|---|---|---|"]
        lines += [f"| {c['leaf']} | {c['shape']} | {c['consumer']} | {c['kind']} | {c['orders'][0] if c['orders'] else '–'} |"
                  for c in self.consumers()]
        return "\n".join(lines)

    def __str__(self) -> str:
        width = 100
        wrap = lambda head, text: textwrap.wrap(text, width=width, initial_indent=head,
                                               subsequent_indent=" " * len(head), break_long_words=False)
        lines = [_clip(f"ntkc cost report   sizes: {_sizes(self.values)}", width), ""]
        lines.append(f"{'method':<14}{'FLOPs here':>12}{'XLA FLOPs':>12}{'memory here':>14}")
        for r in self._rows():
            lines.append(f"{r[0]:<14}{r[2]:>12}{r[3]:>12}{r[5]:>14}")
        lines += ["", _clip(f"chosen: {self.why()}", width), "", "FLOPs:"]
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
    """
    dims = dict(dims or {})
    probes = probe_sizes(params, x1, x2, kwargs)
    params_c, x1_c, x2_c = (concretize(t, probes) for t in (params, x1, x2))
    named = {**{k: v for k, v in dims.items() if k not in probes}, **probes}
    problem = build_problem(f, x1_c, x2_c, params_c, kwargs, trace_axes=trace_axes,
                            diagonal_axes=diagonal_axes, vmap_axes=vmap_axes)
    require_real(problem, "a cost report")
    (n1, n2), _ = examples_of(problem)
    out = jax.tree_util.tree_leaves(problem.out1)[0]
    names = size_names(named, (n1, n2), math.prod(out.shape) // max(n1, 1), factor=bool(probes))
    comp, costs = price(problem, params_c, names, memory_limit)
    itemsize = max(np.dtype(jax.numpy.result_type(p)).itemsize for p in jax.tree_util.tree_leaves(params_c))
    costs = {m: costs[m] for m in METHOD_ORDER}
    values = {s.name: v for v, s in names.symbols.items() if s.name not in probes}
    values.update({k: v for k, v in dims.items() if k in probes})
    report = CostReport(costs=costs, values=values, names=names, comp=comp, chosen=None, itemsize=itemsize)
    flops = {m: report.numeric(m)[0] for m in costs}
    chosen = None if any(v is None for v in flops.values()) else cheapest(flops)
    xla_flops = None
    if xla:
        if probes:
            raise ValueError("`xla=True` needs concrete shapes: XLA cannot count a symbolic program")
        xla_flops = {m: _xla_flops(f, params, x1, x2, m, trace_axes, diagonal_axes, vmap_axes, kwargs)
                     for m in costs}
    return dataclasses.replace(report, chosen=chosen, xla=xla_flops)


def _xla_flops(f, params, x1, x2, method, trace_axes, diagonal_axes, vmap_axes, kwargs) -> float | None:
    from ntkc.api import ntk_fn

    kernel = ntk_fn(f, trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap_axes=vmap_axes, method=method)
    lowered = jax.jit(lambda a, b, p: kernel(a, b, p, **kwargs)).lower(x1, x2, params)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return None if not cost or "flops" not in cost else float(cost["flops"])

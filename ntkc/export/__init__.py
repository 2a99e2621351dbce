"""Exported source: a plan as a standalone Python module that imports only JAX and NumPy.

:func:`plan_source` writes it (:mod:`ntkc.export.module`, from the plan's program, with the one
equation printer of :mod:`ntkc.export.equations`, which writes each primitive as its public
``jax.lax`` / ``jax.numpy`` call: :mod:`ntkc.export.public_forms`) under a header with the
predicted costs and the JAX versions it runs on (:mod:`ntkc.export.versions`).
"""

from __future__ import annotations

import textwrap
from typing import Any, Mapping

from ntkc.errors import ExportError, StructureUnavailable
from ntkc.export.module import module_source
from ntkc.report import plan_report

__all__ = ["ExportError", "plan_source", "cost_summary"]


def cost_summary(report, method: str) -> list[str]:
    """The predicted-cost lines of an exported module's header."""
    lines = ["Predicted cost (ntkc cost model; * = cheapest):",
             f"    {'method':<14}{'FLOPs':>10}{'memory':>12}"]
    for row in report._rows():
        lines.append(f"    {row[0]:<14}{row[2]:>10}{row[5]:>12}")
    formula = str(report.costs[method].total_flops).replace("**", "^")
    return lines + textwrap.wrap(f"{method} FLOPs: {formula}", width=96, initial_indent="    ",
                                 subsequent_indent="        ", break_long_words=False)


def plan_source(plan, kwargs: Mapping[str, Any] | None = None, *, dims: Mapping[str, int] | None = None) -> str:
    """The standalone module of ``plan`` (keyword arguments ``kwargs`` bound as constants)."""
    kwargs = dict(kwargs or {})
    if plan.complex is not None:
        return module_source(plan, kwargs, [])  # raises: exported source needs a real model
    summary = _summary(plan, dims)
    name = getattr(plan.problem.side1.f, "__name__", "f")
    return module_source(plan, kwargs, summary, name=name)


def _summary(plan, dims) -> list[str]:
    try:
        return cost_summary(plan_report(plan, dims=dims), plan.method)
    except StructureUnavailable as reason:
        return [f"Predicted cost: none (the cost model prices from the structured plan: {reason})."]

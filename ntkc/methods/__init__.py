"""Registry of NTK methods: one :class:`Method` record per method.

A record says everything the rest of ntkc needs of a method — how it **runs** and is
**exported** (both from its ``program``: the executor steps of a plan, interpreted by
:func:`ntkc.backends.program.run` and printed by :mod:`ntkc.export`), how it is **priced**
(``cost``, from the structured compilation, so ``auto`` and the cost report compare methods),
and when it **falls back** (``fallback``: why it cannot compute a given ``f``'s kernel; Jacobian
contraction then runs, with a warning). :func:`register` refuses a record missing any of them,
and the tests loop over :data:`METHODS`, so a new method is run, priced, reported and exported
against the oracle by registering it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ntkc.methods.jacobian import jacobian_program
from ntkc.methods.ntvp import ntvp_program
from ntkc.methods.structured import structured_program
from ntkc.passes.cost import jacobian_cost, ntvp_cost, structured_cost


@dataclasses.dataclass(frozen=True)
class Method:
    """One NTK method.

    Attributes:
      name: the ``method=`` value.
      program: ``program(plan) -> Program``: the executor of a plan (runs and is exported).
      cost: ``cost(compilation, names, examples) -> MethodCost``: predicted FLOPs and memory.
      fallback: ``fallback(analysis) -> Exception | None``: why the method cannot compute the
        kernel of the analysed ``f`` (Jacobian contraction computes it instead), or None.
      summary: one line for reports.

    Example:
      >>> import ntkc
      >>> m = ntkc.METHODS["structured"]
      >>> isinstance(m, ntkc.Method), m.name
      (True, 'structured')
    """

    name: str
    program: Callable
    cost: Callable
    fallback: Callable
    summary: str


METHODS: dict[str, Method] = {}
"""Every registered method by its ``method=`` name, in registration order (``"auto"`` chooses
among them; see :func:`ntkc.valid_methods`).

Example:
  >>> import ntkc
  >>> list(ntkc.METHODS)
  ['jacobian', 'ntvp', 'structured']
  >>> print(ntkc.METHODS["ntvp"].summary)  # doctest: +ELLIPSIS
  NTK-vector products...
"""


def register(method: Method) -> None:
    """Add a method; registering a name twice, or a record missing a part, is an error."""
    if method.name in METHODS:
        raise ValueError(f"NTK method {method.name!r} is already registered.")
    missing = [f.name for f in dataclasses.fields(method)
               if f.name not in ("name", "summary") and not callable(getattr(method, f.name))]
    if missing or not method.summary:
        raise ValueError(f"NTK method {method.name!r} lacks {missing or ['summary']}.")
    METHODS[method.name] = method


register(Method(
    name="jacobian", program=jacobian_program, cost=jacobian_cost, fallback=lambda analysis: None,
    summary="both Jacobians, contracted leaf by leaf"))
register(Method(
    name="ntvp", program=ntvp_program, cost=ntvp_cost, fallback=lambda analysis: analysis.reverse or analysis.forward_blocker,
    summary="NTK-vector products: x1 linearized once, x2's VJP reused per column"))
register(Method(
    name="structured", program=structured_program, cost=structured_cost,
    fallback=lambda analysis: analysis.structure_error,
    summary="structured derivatives: a sum of einsum terms compiled from the linearized program"))

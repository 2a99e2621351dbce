"""Method choice for ``method="auto"``: the symbolic cost model, evaluated at the actual sizes.

No trial runs: the structured plan is compiled (shapes only), every registered method is priced
from it (each record's ``cost``), methods whose predicted peak memory exceeds ``memory_limit``
(bytes) are excluded, and the fewest predicted FLOPs wins (:func:`cheapest`: a tie with
Jacobian contraction goes to it). Inside the
structured plan each parameter leaf is already priced both ways (its structured terms, or
Jacobian contraction of its materialised per-leaf Jacobian, see :mod:`ntkc.passes.sharing`), so
``auto`` mixes methods per parameter when that is cheaper.
"""

from __future__ import annotations

from typing import Mapping

import jax

#: Jacobian contraction predicted within this factor of the fewest FLOPs is a tie, and a tie goes
#: to it: its program is fewer, larger operations, and FLOPs do not count per-operation overhead.
#: At the ties of the full preset's 32 px Flax grid structured ran slower than jacobian at 8 of 10
#: points (ViT, O = 10, N = 4: 100.8 against 51.2 ms; docs/benchmarks.md), its terms being many
#: small contractions; between ntvp and structured the same grid shows no consistent winner.
TIE = 1.01


def cheapest(flops: Mapping[str, int]) -> str:
    """The method with the fewest predicted FLOPs, or jacobian where it is within :data:`TIE`.

    >>> cheapest({"jacobian": 1000, "ntvp": 5000, "structured": 995})
    'jacobian'
    >>> cheapest({"jacobian": 1000, "ntvp": 5000, "structured": 900})
    'structured'
    """
    best = min(flops.values())
    if "jacobian" in flops and flops["jacobian"] <= best * TIE:
        return "jacobian"
    return min(flops, key=flops.get)


def examples_of(problem):
    """``side_ir -> batch size`` of a problem's sides (1 without ``vmap_axes``)."""
    def size(out, side):
        leaf = jax.tree_util.tree_leaves(out)[0]
        axis = 0 if side.vmap is None else jax.tree_util.tree_leaves(side.vmap.out)[0]
        return leaf.shape[axis]

    n1 = size(problem.out1, problem.side1)
    n2 = n1 if problem.side2 is None else size(problem.out2, problem.side2)
    return (n1, None if problem.side2 is None else n2), \
        (lambda side_ir: (n1 if side_ir.side is problem.side1 else n2) if side_ir.vmapped else 1)


def choose(costs: Mapping, memory_limit: int | None, itemsize: int) -> str:
    """The method with the fewest predicted FLOPs (:func:`cheapest`) among those whose predicted
    peak memory (``itemsize`` bytes per element) fits ``memory_limit``; when none fits, the one
    with the least memory. ``costs``: method -> :class:`~ntkc.passes.cost.MethodCost` at
    concrete sizes."""
    fits = {m: c for m, c in costs.items()
            if memory_limit is None or int(c.total_memory) * itemsize <= memory_limit}
    if not fits:
        return min(costs, key=lambda m: int(costs[m].total_memory))
    return cheapest({m: int(c.total_flops) for m, c in fits.items()})

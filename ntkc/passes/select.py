"""Method choice for ``method="auto"``: the symbolic cost model, evaluated at the actual sizes.

No trial runs: the structured plan is compiled (shapes only), every method is priced from it by
:func:`ntkc.passes.cost.method_costs`, methods whose predicted peak memory exceeds
``memory_limit`` (bytes) are excluded, and the fewest predicted FLOPs wins (:func:`cheapest`:
a tie with Jacobian contraction goes to it). Inside the
structured plan each parameter leaf is already priced both ways (its structured terms, or
Jacobian contraction of its materialised per-leaf Jacobian, see :mod:`ntkc.passes.sharing`), so
``auto`` mixes methods per parameter when that is cheaper.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import jax
import numpy as np

PyTree = Any

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


def price(problem, params: PyTree, names=None, memory_limit: int | None = None):
    """(structured compilation, method -> :class:`~ntkc.passes.cost.MethodCost`). Dense-fallback
    warnings are held back (pricing is not running); :func:`choose` hands them on."""
    return _price(problem, params, names, memory_limit)[:2]


def _price(problem, params, names, memory_limit):
    from ntkc.passes.consumers import DenseFallbackWarning
    from ntkc.passes.cost import SizeNames, method_costs
    from ntkc.passes.pipeline import compile_plan

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DenseFallbackWarning)
        comp = compile_plan(problem, params, memory_limit=memory_limit)
    held = [w for w in caught if issubclass(w.category, DenseFallbackWarning)]
    for w in caught:
        if w not in held:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    _, examples = examples_of(problem)
    names = names or SizeNames.create({})
    return comp, method_costs(comp, names, lambda s: names.dim(examples(s))), held


def choose(problem, params: PyTree, memory_limit: int | None = None):
    """(method, structured compilation, held dense-fallback warnings): the registered method
    with the fewest predicted FLOPs (:func:`cheapest`) among those predicted to fit. The compilation is returned so
    that running ``structured`` does not compile the plan a second time."""
    from ntkc.methods import METHODS

    from ntkc.passes.pipeline import StructureUnavailable

    try:
        comp, costs, held = _price(problem, params, None, memory_limit)
    except StructureUnavailable:
        return "jacobian", None, []  # the method every model supports (forward mode if need be)
    itemsize = max(np.dtype(jax.numpy.result_type(p)).itemsize for p in jax.tree_util.tree_leaves(params))
    costs = {m: c for m, c in costs.items() if m in METHODS}
    fits = {m: c for m, c in costs.items()
            if memory_limit is None or int(c.total_memory) * itemsize <= memory_limit}
    if not fits:  # nothing fits: the least memory
        return min(costs, key=lambda m: int(costs[m].total_memory)), comp, held
    return cheapest({m: int(c.total_flops) for m, c in fits.items()}), comp, held


def choose_method(problem, params: PyTree, memory_limit: int | None = None) -> str:
    """The method :func:`choose` picks."""
    return choose(problem, params, memory_limit)[0]

"""Method choice for ``method="auto"``: the symbolic cost model, evaluated at the actual sizes.

No trial runs: the structured plan is compiled (shapes only), every method is priced from it by
:func:`ntkc.passes.cost.method_costs`, methods whose predicted peak memory exceeds
``memory_limit`` (bytes) are excluded, and the fewest predicted FLOPs wins. Inside the
structured plan each parameter leaf is already priced both ways (its structured terms, or
Jacobian contraction of its materialised per-leaf Jacobian, see :mod:`ntkc.passes.sharing`), so
``auto`` mixes methods per parameter when that is cheaper.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import numpy as np

PyTree = Any


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
    """(structured compilation, method -> :class:`~ntkc.passes.cost.MethodCost`)."""
    from ntkc.passes.consumers import DenseFallbackWarning
    from ntkc.passes.cost import SizeNames, method_costs
    from ntkc.passes.pipeline import compile_plan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DenseFallbackWarning)
        comp = compile_plan(problem, params, memory_limit=memory_limit)
    _, examples = examples_of(problem)
    names = names or SizeNames.create({})
    return comp, method_costs(comp, names, lambda s: names.dim(examples(s)))


def choose_method(problem, params: PyTree, memory_limit: int | None = None) -> str:
    """The registered method with the fewest predicted FLOPs among those predicted to fit."""
    from ntkc.methods import METHODS

    _, costs = price(problem, params, memory_limit=memory_limit)
    itemsize = max(np.dtype(jax.numpy.result_type(p)).itemsize for p in jax.tree_util.tree_leaves(params))
    costs = {m: c for m, c in costs.items() if m in METHODS}
    fits = {m: c for m, c in costs.items()
            if memory_limit is None or int(c.total_memory) * itemsize <= memory_limit}
    pool = fits or costs
    key = (lambda m: int(pool[m].total_flops)) if fits else (lambda m: int(pool[m].total_memory))
    return min(pool, key=key)

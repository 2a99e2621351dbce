"""Method choice for ``method="auto"``.

Until the symbolic cost model lands, the choice uses the paper's asymptotic costs (Table 1)
with the forward-pass cost FP of one example measured by XLA's ``cost_analysis()`` of the
lowered (not compiled) forward pass:

* Jacobian contraction: ``(N1 + N2)·O·3·FP + N1·N2·O²·P·2``
* NTK-vector products:  ``N2·O·(N1 + N2)·3·FP``
* structured derivatives: the same backward passes as Jacobian contraction (for the
  cotangents), plus the compiled plan's contraction FLOPs (opt_einsum's count of the chosen
  orders) and the cost of forming any dense-fallback factor.
"""

from __future__ import annotations

import math
from typing import Any

import jax

from ntkc.batching import shape_structs

PyTree = Any


def forward_flops(side, params: PyTree) -> float:
    """FLOPs of one batched forward pass of ``side``, from XLA's cost analysis (lowered only)."""
    try:
        lowered = jax.jit(side.apply).lower(shape_structs(params))
        flops = float((lowered.cost_analysis() or {}).get("flops", 0.0))
    except Exception:  # cost analysis is best effort: fall back to a dense-layer estimate
        flops = 0.0
    if flops <= 0:
        n_params = sum(math.prod(jax.numpy.shape(v)) for v in jax.tree_util.tree_leaves(params))
        flops = 2.0 * n_params
    return flops


def estimated_costs(problem, params: PyTree) -> dict[str, float]:
    """Estimated FLOPs of each method for this problem."""
    side2 = problem.other_side()
    n_params = sum(math.prod(jax.numpy.shape(v)) for v in jax.tree_util.tree_leaves(params))
    fp1, fp2 = forward_flops(problem.side1, params), forward_flops(side2, params)
    out1 = sum(math.prod(o.shape) for o in jax.tree_util.tree_leaves(problem.out1))
    out2 = sum(math.prod(o.shape) for o in jax.tree_util.tree_leaves(problem.out2))
    if problem.vmapped:
        # One backward pass per output entry, each over a single example.
        n1 = jax.tree_util.tree_leaves(problem.out1)[0].shape[jax.tree_util.tree_leaves(problem.side1.vmap.out)[0]]
        n2 = jax.tree_util.tree_leaves(problem.out2)[0].shape[jax.tree_util.tree_leaves(side2.vmap.out)[0]]
        jac_passes = out1 * fp1 / max(n1, 1) + out2 * fp2 / max(n2, 1)
    else:
        # One backward pass per output entry, each over the whole batch.
        jac_passes = out1 * fp1 + out2 * fp2
    return {
        "jacobian": 3 * jac_passes + 2 * out1 * out2 * n_params,
        "ntvp": out2 * 3 * (fp1 + fp2),
        "structured": 3 * jac_passes + structured_plan_flops(problem, params),
    }


def structured_plan_flops(problem, params: PyTree) -> float:
    """Contraction FLOPs of the structured plan plus the work of forming dense factors."""
    import warnings

    from ntkc.passes.consumers import DenseFallbackWarning
    from ntkc.passes.pipeline import compile_plan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DenseFallbackWarning)
        comp = compile_plan(problem, params)
    n_examples = 1
    if problem.vmapped:
        out, axis = jax.tree_util.tree_leaves(problem.out1)[0], jax.tree_util.tree_leaves(problem.side1.vmap.out)[0]
        n_examples = out.shape[axis]
    dense = sum(
        2 * math.prod(u.output.shape) * math.prod(comp.theta_shapes[u.leaf]) * n_examples
        for side in comp.sides for u in side.uses if not u.has_rule
    )
    return float(sum(k.flops or 0 for k in comp.kernels) + dense)


def choose_method(problem, params: PyTree) -> str:
    """The registered method with the lowest estimated cost."""
    from ntkc.methods import METHODS

    costs = {k: v for k, v in estimated_costs(problem, params).items() if k in METHODS}
    return min(costs, key=costs.get)

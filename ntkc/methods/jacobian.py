"""Jacobian contraction (paper §3.1): Θ = Σ_leaves J1_l · J2_lᵀ.

Each side's Jacobian is built once — reverse mode (one VJP per output entry) when the outputs
are fewer than the parameters, forward mode otherwise; under ``vmap_axes`` per example and
vmapped. The kernel is accumulated leaf by leaf, so at most one leaf's contraction is live
besides the running sum. Cost: ``N·O·[FP] + N1·N2·O²·P`` time, ``N·O·P`` memory.
"""

from __future__ import annotations

import math
from typing import Any

import jax

from ntkc.batching import Side, move_batch_axis
from ntkc.methods.contract import contract_leaf
from ntkc.problem import NTKProblem

PyTree = Any


def _size(tree: PyTree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def side_jacobian(side: Side, params: PyTree, out_shapes: PyTree) -> PyTree:
    """Jacobian of ``params -> side.apply(params)``: tree ``outputs -> params``, leaves ``out + param``."""
    n_params = _size(params)
    if side.vmap is None:
        transform = jax.jacrev if _size(out_shapes) <= n_params else jax.jacfwd
        return transform(side.apply)(params)

    def one(x_i, kw_i):
        g = lambda p: side.example(p, x_i, kw_i)
        per_example = _size(jax.eval_shape(g, params))
        transform = jax.jacrev if per_example <= n_params else jax.jacfwd
        return transform(g)(params)

    return move_batch_axis(side.map_examples(one), side.vmap.out)


def jacobian_kernel(problem: NTKProblem, params: PyTree, *, memory_limit: int | None = None) -> PyTree:
    """The NTK by Jacobian contraction; one kernel per output leaf."""
    jac1 = side_jacobian(problem.side1, params, problem.out1)
    jac2 = jac1 if problem.side2 is None else side_jacobian(problem.side2, params, problem.out2)

    def per_output(kernel_axes, out1, j1, j2):
        total = None
        for l1, l2 in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)):
            term = contract_leaf(l1, l2, kernel_axes)
            total = term if total is None else total + term
        return total / kernel_axes.trace_size(out1.shape)

    is_axes = lambda a: hasattr(a, "trace_size")
    return jax.tree_util.tree_map(per_output, problem.axes, problem.out1, jac1, jac2, is_leaf=is_axes)

"""Jacobian contraction (paper §3.1): Θ = Σ_leaves J1_l · J2_lᵀ.

Each side's Jacobian is built once — reverse mode (one VJP per output entry) when the outputs
are fewer than the parameters, forward mode otherwise or when ``f`` cannot run in reverse (a
``while`` with a data-dependent trip count); under ``vmap_axes`` per example and vmapped. The kernel is accumulated leaf by leaf, so at most one leaf's contraction is live
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


def side_jacobian(side: Side, params: PyTree, out_shapes: PyTree, forward: bool = False) -> PyTree:
    """Jacobian of ``params -> side.apply(params)``: tree ``outputs -> params``, leaves ``out + param``.
    ``forward`` forces forward mode."""
    n_params = _size(params)
    if side.vmap is None:
        transform = jax.jacrev if _size(out_shapes) <= n_params and not forward else jax.jacfwd
        return transform(side.apply)(params)

    def one(x_i, kw_i):
        g = lambda p: side.example(p, x_i, kw_i)
        per_example = _size(jax.eval_shape(g, params))
        transform = jax.jacrev if per_example <= n_params and not forward else jax.jacfwd
        return transform(g)(params)

    return move_batch_axis(side.map_examples(one), side.vmap.out)


def jacobian_kernel(problem: NTKProblem, params: PyTree, *, memory_limit: int | None = None) -> PyTree:
    """The NTK by Jacobian contraction; one kernel per output leaf."""
    from ntkc.passes.pipeline import reverse_mode_blocker

    return contract_jacobians(problem, params, forward=reverse_mode_blocker(problem, params) is not None)


def fallback(problem: NTKProblem, params: PyTree, reason, method: str) -> PyTree:
    """The kernel by Jacobian contraction, with a warning saying why ``method`` was not used.
    ``reason`` already tells whether reverse mode is available (lowering checks reverse blockers
    before anything else), so ``f`` is not lowered again to find out."""
    import warnings

    from ntkc.passes.pipeline import MethodFallbackWarning, ReverseModeUnavailable

    warnings.warn(f"method={method!r}: {reason}", MethodFallbackWarning, stacklevel=3)
    return contract_jacobians(problem, params, forward=isinstance(reason, ReverseModeUnavailable))


def contract_jacobians(problem: NTKProblem, params: PyTree, *, forward: bool) -> PyTree:
    """Θ = Σ_leaves J1_l · J2_lᵀ from both sides' Jacobians (forward mode when ``forward``)."""
    jac1 = side_jacobian(problem.side1, params, problem.out1, forward)
    jac2 = jac1 if problem.side2 is None else side_jacobian(problem.side2, params, problem.out2, forward)

    def per_output(kernel_axes, out1, j1, j2):
        total = None
        for l1, l2 in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)):
            term = contract_leaf(l1, l2, kernel_axes)
            total = term if total is None else total + term
        # In f's output dtype, as every method returns it (a Jacobian w.r.t. float32
        # parameters is float32 even when float64 inputs make the outputs float64).
        return (total / kernel_axes.trace_size(out1.shape)).astype(out1.dtype)

    is_axes = lambda a: hasattr(a, "trace_size")
    return jax.tree_util.tree_map(per_output, problem.axes, problem.out1, jac1, jac2, is_leaf=is_axes)

"""Structured derivatives (paper §3.3): the NTK as a compiled sum of einsum terms.

``structured_kernel`` runs the compiler pipeline (:mod:`ntkc.passes.pipeline`) on the problem's
shapes and evaluates the resulting plan with the JAX backend. Under ``jax.jit`` the pipeline
runs once, at trace time.
"""

from __future__ import annotations

from typing import Any

from ntkc.backends.jax_program import run_plan
from ntkc.passes.pipeline import StructureUnavailable, compile_plan
from ntkc.problem import NTKProblem

PyTree = Any


def structured_kernel(problem: NTKProblem, params: PyTree, *, memory_limit: int | None = None) -> PyTree:
    """The NTK by structured derivatives; one kernel per output leaf. A model JAX cannot run in
    reverse, or one computing with complex values, gets Jacobian contraction, with a warning."""
    from ntkc.methods.jacobian import fallback

    try:
        comp = compile_plan(problem, params, memory_limit=memory_limit)
    except StructureUnavailable as reason:
        return fallback(problem, params, reason, "structured")
    return run_plan(comp, params)

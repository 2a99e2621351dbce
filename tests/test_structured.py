"""The structured method's own behaviour: its dense fallback, the zoo without fallbacks, and
both sides' examples fused into one batch exactly when that is the same computation.

Its values on every zoo model are checked in ``test_oracle_grid.py``.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.backends.program import Concat
from ntkc.passes.pipeline import compile_plan
from ntkc.problem import build_problem
from ntkc.testing import ZOO
from reference import oracle_ntk
from zoo_cases import assert_equal_to_oracle


def _triangular_model(p, x):
    lower = jnp.tril(jnp.ones((4, 4))) + 3 * jnp.eye(4)
    return jnp.tanh(x @ jax.lax.linalg.triangular_solve(lower, p["w"], left_side=True, lower=True))


def test_dense_fallback_warns_with_primitive_and_source():
    """triangular_solve has no structure rule: its consumer gets the exact dense fallback, the
    warning names the primitive and this file, and the kernel still equals the oracle."""
    params = {"w": jax.random.normal(jax.random.PRNGKey(0), (4, 2), jnp.float64)}
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 4), jnp.float64)
    kernel = ntkc.ntk_fn(_triangular_model, vmap_axes=0, method="structured")
    with pytest.warns(ntkc.DenseFallbackWarning,
                      match=r"no structure rule for primitive 'triangular_solve' \(from .*test_structured.py"):
        got = kernel(x, None, params)
    with pytest.warns(ntkc.DenseFallbackWarning):  # the held plan warns again each time it runs
        kernel(x, None, params)
    ref = oracle_ntk(_triangular_model, x, None, params, trace_axes=(-1,), diagonal_axes=(), vmap_axis=(0, 0))
    assert_equal_to_oracle(got, ref, jnp.float64)


#: Zoo models with a documented dense block: a parameter read inside a custom_vjp's backward rule
#: (its structure is the user's code; the block is built from the rule's transpose).
DOCUMENTED_DENSE = {"custom_vjp_fused": {"custom_lin"}}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_needs_no_fallback(name):
    """Every primitive the zoo's models produce has a structure rule (but the documented ones)."""
    inst = ZOO[name].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = build_problem(inst.f, inst.x1, None, inst.params, dict(inst.kwargs), trace_axes=(),
                                diagonal_axes=(), vmap_axes=0)
        comp = compile_plan(problem, inst.params)
    allowed = DOCUMENTED_DENSE.get(name, set())
    dense = [str(w.message) for w in caught if issubclass(w.category, ntkc.DenseFallbackWarning)]
    assert [m for m in dense if not any(f"'{p}'" in m for p in allowed)] == []
    uses = [u for side in comp.sides for u in side.uses]
    assert uses and all(u.has_rule or u.eqn.name in allowed for u in uses)
    assert {u.eqn.name for u in uses if not u.has_rule} == allowed


def _shared_leaf_model(p, x, *, mask, scale):
    h = jnp.tanh(x["a"] @ p["w"] + x["s"]) * mask * scale
    return h @ p["v"]


@pytest.mark.parametrize("case", ["batched", "same_shared", "different_shared", "split_scale"])
def test_sides_fused_into_one_batch_only_when_exact(case):
    """Both sides' examples run as one batch when they share a graph and every input is batched;
    an input shared by all examples (it may differ between the sides, whatever its spec) or a
    keyword argument split between the sides keeps them apart. The kernel is exact either way."""
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 4))), "v": jnp.asarray(rng.normal(size=(4, 2)))}
    s = jnp.asarray(rng.normal(size=(4,)))
    x1 = {"a": jnp.asarray(rng.normal(size=(3, 3))), "s": s}
    x2 = {"a": jnp.asarray(rng.normal(size=(2, 3))), "s": s + 1.0 if case == "different_shared" else s}
    masks = (jnp.asarray(rng.normal(size=(3, 4))), jnp.asarray(rng.normal(size=(2, 4))))
    s_axis = 0 if case == "batched" else None
    if case == "batched":
        x1["s"], x2["s"] = jnp.tile(s, (3, 1)), jnp.tile(s, (2, 1))
    vmap_axes = ({"a": 0, "s": s_axis}, 0, {"mask": 0})
    kwargs = {"mask": masks, "scale": (1.5, -0.5) if case == "split_scale" else 1.5}
    plan = ntkc.plan(_shared_leaf_model, params, x1, x2, trace_axes=(), vmap_axes=vmap_axes, method="structured",
                     **kwargs)
    fused = any(isinstance(step, Concat) for step in plan.program.steps)
    assert fused == (case == "batched")
    got = ntkc.run_plan(plan, x1, x2, params, **kwargs)
    # f is batch independent, so the whole-batch oracle is the per-example kernel.
    ref = oracle_ntk(_shared_leaf_model, x1, x2, params, trace_axes=(), diagonal_axes=(), **kwargs)
    assert_equal_to_oracle(got, ref, jnp.float64)

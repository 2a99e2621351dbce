"""The structured-derivatives compiler path in float64, and its dense fallback.

The float32 grid over every method lives in ``test_oracle_grid.py``; here every zoo model, with
and without ``vmap_axes``, full and traced/diagonal kernels, is checked in float64 at 1e-10.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkc.methods.structured import structured_kernel
from ntkc.passes.consumers import DenseFallbackWarning
from ntkc.passes.pipeline import compile_plan
from ntkc.problem import build_problem
from ntkc.testing import ZOO
from reference import oracle_ntk

SETTINGS = {
    "full": ((), ()),
    "trace_batch_diag": ((-1,), (0,)),
}


def _out_ndim(name):
    inst = ZOO[name].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    out = jax.eval_shape(lambda p, x: inst.f(p, x, **inst.kwargs), inst.params, inst.x1)
    return min(leaf.ndim for leaf in jax.tree_util.tree_leaves(out))


#: Eager (un-jitted) coverage on a few models with different primitive families; the jitted
#: float64 grid over the whole zoo is in ``test_oracle_grid.py``.
EAGER_MODELS = ("mlp", "conv_same_nhwc", "embedding")


def _cases():
    for name in EAGER_MODELS:
        ndim = _out_ndim(name)
        for setting, (trace_axes, diagonal_axes) in SETTINGS.items():
            if len({a % ndim for a in (*trace_axes, *diagonal_axes)}) < len(trace_axes) + len(diagonal_axes):
                continue  # names one axis twice at this output rank: invalid, see test_errors
            for vmap in (False, True):
                yield pytest.param(name, setting, vmap, id=f"{name}-{setting}-{'vmap' if vmap else 'batch'}",
                                   marks=pytest.mark.xdist_group(f"structured-{name}"))


@pytest.mark.parametrize("name, setting, vmap", list(_cases()))
def test_structured_matches_oracle(name, setting, vmap):
    trace_axes, diagonal_axes = SETTINGS[setting]
    inst = ZOO[name].make(jax.random.PRNGKey(0), dtype=jnp.float64)
    ndim = _out_ndim(name)
    same = 0 in {a % ndim for a in (*trace_axes, *diagonal_axes)}
    x2 = None if same else inst.x2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DenseFallbackWarning)
        problem = build_problem(inst.f, inst.x1, x2, inst.params, dict(inst.kwargs),
                                trace_axes=trace_axes, diagonal_axes=diagonal_axes,
                                vmap_axes=0 if vmap else None)
        got = structured_kernel(problem, inst.params)
    ref = oracle_ntk(inst.f, inst.x1, x2, inst.params, trace_axes=trace_axes,
                     diagonal_axes=diagonal_axes, vmap_axis=(0, 0) if vmap else None, **inst.kwargs)
    for g, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)):
        assert g.shape == r.shape
        np.testing.assert_allclose(np.asarray(g), r, rtol=1e-10, atol=1e-10)


def _triangular_model(p, x):
    lower = jnp.tril(jnp.ones((4, 4))) + 3 * jnp.eye(4)
    return jnp.tanh(x @ jax.lax.linalg.triangular_solve(lower, p["w"], left_side=True, lower=True))


def test_dense_fallback_warns_with_primitive_and_source():
    """triangular_solve has no structure rule: its consumer gets the exact dense fallback, the
    warning names the primitive and this file, and the kernel still equals the oracle."""
    params = {"w": jax.random.normal(jax.random.PRNGKey(0), (4, 2), jnp.float64)}
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 4), jnp.float64)
    problem = build_problem(_triangular_model, x, None, params, {}, trace_axes=(-1,),
                            diagonal_axes=(), vmap_axes=0)
    with pytest.warns(DenseFallbackWarning,
                      match=r"no structure rule for primitive 'triangular_solve' \(from .*test_structured.py"):
        got = structured_kernel(problem, params)
    ref = oracle_ntk(_triangular_model, x, None, params, trace_axes=(-1,), diagonal_axes=(), vmap_axis=(0, 0))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_needs_no_fallback(name):
    """Every primitive the zoo's models produce has a structure rule."""
    inst = ZOO[name].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = build_problem(inst.f, inst.x1, None, inst.params, dict(inst.kwargs), trace_axes=(),
                                diagonal_axes=(), vmap_axes=0)
        comp = compile_plan(problem, inst.params)
    assert [str(w.message) for w in caught if issubclass(w.category, DenseFallbackWarning)] == []
    uses = [u for side in comp.sides for u in side.uses]
    assert uses and all(u.has_rule for u in uses)


def test_mlp_needs_no_fallback():
    inst = ZOO["mlp"].make(jax.random.PRNGKey(0), dtype=jnp.float64)
    problem = build_problem(inst.f, inst.x1, inst.x2, inst.params, {}, trace_axes=(-1,),
                            diagonal_axes=(), vmap_axes=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = structured_kernel(problem, inst.params)
    assert not [w for w in caught if issubclass(w.category, DenseFallbackWarning)]
    assert got.shape == (inst.x1.shape[0], inst.x2.shape[0])


def _shared_leaf_model(p, x, *, mask, scale):
    h = jnp.tanh(x["a"] @ p["w"] + x["s"]) * mask * scale
    return h @ p["v"]


@pytest.mark.parametrize("shared_x, scale", [("same", 1.5), ("differs", 1.5), ("same", (1.5, -0.5))])
def test_sides_fused_into_one_batch_only_when_exact(shared_x, scale):
    """With ``vmap_axes`` and equal example shapes both sides run as one batch; an unbatched
    input leaf or a shared keyword that differs between the sides must not be fused."""
    from ntkc.backends.jax_program import fused_sides

    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 4))), "v": jnp.asarray(rng.normal(size=(4, 2)))}
    s = jnp.asarray(rng.normal(size=(4,)))
    x1 = {"a": jnp.asarray(rng.normal(size=(3, 3))), "s": s}
    x2 = {"a": jnp.asarray(rng.normal(size=(2, 3))), "s": s if shared_x == "same" else s + 1.0}
    masks = (jnp.asarray(rng.normal(size=(3, 4))), jnp.asarray(rng.normal(size=(2, 4))))
    vmap_axes = ({"a": 0, "s": None}, 0, {"mask": 0})
    kwargs = {"mask": masks, "scale": scale}
    problem = build_problem(_shared_leaf_model, x1, x2, params, kwargs, trace_axes=(),
                            diagonal_axes=(), vmap_axes=vmap_axes)
    assert fused_sides(compile_plan(problem, params)) == (shared_x == "same" and scale == 1.5)
    got = structured_kernel(problem, params)
    # f is batch independent, so the whole-batch oracle is the per-example kernel.
    ref = oracle_ntk(_shared_leaf_model, x1, x2, params, trace_axes=(), diagonal_axes=(), **kwargs)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10, atol=1e-10)

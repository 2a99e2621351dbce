"""Linear scans kept whole (``Loop``): exact against the oracle on scan shapes the zoo does not
cover, the plan's size independent of the scan's length, and unrolling as the fallback."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.passes.pipeline import MethodFallbackWarning, ReverseModeUnavailable, compile_plan
from ntkc.problem import build_problem
from reference import oracle_ntk

jax.config.update("jax_enable_x64", True)


def _layer(h, wb):
    return jnp.tanh(h @ wb[0] + wb[1])


def stacked_reverse(p, x):
    """Scan over layers backwards, stacked params, ys used too."""
    h, ys = jax.lax.scan(lambda h, wb: (_layer(h, wb), jnp.sin(h)), x @ p["inp"], (p["w"], p["b"]), reverse=True)
    return jnp.concatenate([h, ys.sum(0)], -1) @ p["head"]


def shared_and_stacked(p, x):
    """A shared matrix and a stacked bias read by the same body; the stacked slice is also a y."""
    def step(h, b):
        return jnp.tanh(h @ p["shared"] + b), b

    h, bs = jax.lax.scan(step, x @ p["inp"], p["b"])
    return (h + bs.mean(0)) @ p["head"]


def nested(p, x):
    """A scan inside a scan body (the inner one is unrolled within the kept loop)."""
    def outer(h, w):
        inner = jax.lax.scan(lambda g, _: (jnp.sin(g @ w), None), h, None, length=2)[0]
        return inner + h @ p["shared"], None

    return jax.lax.scan(outer, x @ p["inp"], p["w"])[0] @ p["head"]


def param_carry(p, x):
    """A parameter as the carry's initial value: unrolled, not kept."""
    h = jax.lax.scan(lambda h, s: (jnp.tanh(h * s), None), p["h0"], jnp.arange(1.0, 4.0))[0]
    return (h + jnp.tanh(x @ p["inp"])) @ p["head"]


MODELS = {"stacked_reverse": stacked_reverse, "shared_and_stacked": shared_and_stacked,
          "nested": nested, "param_carry": param_carry}


def _params(depth=3, width=4, out=2, head_in=None):
    """float64 parameters; ``head_in`` is the head's input size (``width`` unless given)."""
    rng = np.random.default_rng(0)
    n = lambda *s: rng.normal(size=s) / np.sqrt(s[-2] if len(s) > 1 else 1)
    return {"inp": n(3, width), "w": n(depth, width, width), "b": n(depth, width),
            "shared": n(width, width), "head": n(head_in or width, out), "h0": n(width)}


@pytest.mark.parametrize("vmap", [None, 0])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_loop_models_match_the_oracle(name, vmap):
    f, params = MODELS[name], _params(head_in=8 if name == "stacked_reverse" else None)
    x1 = np.random.default_rng(2).normal(size=(3, 3))
    x2 = np.random.default_rng(3).normal(size=(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = jax.jit(ntkc.ntk_fn(f, trace_axes=(), vmap_axes=vmap, method="structured"))(x1, x2, params)
    want = oracle_ntk(f, x1, x2, params, trace_axes=(), vmap_axis=None if vmap is None else (0, 0))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def _plan(f, params, x, loops=True):
    problem = build_problem(f, x, None, params, {}, trace_axes=(), diagonal_axes=(), vmap_axes=0)
    return compile_plan(problem, params, check=True, loops=loops)


def _deep(depth):
    params = _params(depth=depth)
    return lambda p, x: jax.lax.scan(lambda h, wb: (_layer(h, wb), None), x @ p["inp"], (p["w"], p["b"]))[0] @ p["head"], params


def test_plan_size_does_not_grow_with_depth():
    x = np.ones((2, 3))
    sizes = []
    for depth in (4, 32):
        f, params = _deep(depth)
        comp = _plan(f, params, x)
        side = comp.sides[0]
        sizes.append((len(side.graph.eqns), len(side.uses), sum(len(k.terms) for k in comp.kernels)))
        stacked = [u for u in side.uses if u.loop is not None]
        leaves = sorted(params)
        assert {u.leaf for u in stacked} == {leaves.index("w"), leaves.index("b")}
        assert all(u.loop.stacked for u in stacked)
    assert sizes[0] == sizes[1]


def test_unrolled_plan_grows_and_agrees():
    from ntkc.planning import Analysis, PlanOptions, Specs

    x = np.random.default_rng(4).normal(size=(2, 3))
    f, params = _deep(6)
    kept, unrolled = _plan(f, params, x), _plan(f, params, x, loops=False)
    assert len(unrolled.sides[0].graph.eqns) > 6 * len(kept.sides[0].graph.eqns) // 2
    assert not any(u.loop for u in unrolled.sides[0].uses)
    specs = Specs.of(x, None, params, {})
    problem = build_problem(f, x, None, params, {}, trace_axes=(), diagonal_axes=(), vmap_axes=0)
    run = lambda loops: ntkc.run_plan(Analysis(problem, params, PlanOptions(trace_axes=(), vmap_axes=0), specs,
                                               loops=loops).plan("structured"), x, None, params)
    np.testing.assert_allclose(run(True), run(False), rtol=1e-12, atol=1e-13)


def test_shared_weight_in_a_loop_is_one_use_with_its_own_iteration_labels():
    x = np.ones((2, 3))
    comp = _plan(shared_and_stacked, _params(), x)
    uses = {(u.leaf, u.loop.stacked) for u in comp.sides[0].uses if u.loop is not None}
    leaves = sorted(_params())  # params leaves in key order: b, h0, head, inp, shared, w
    assert uses == {(leaves.index("shared"), False), (leaves.index("b"), True)}


def test_parameter_as_initial_carry_is_unrolled():
    x = np.ones((2, 3))
    comp = _plan(param_carry, _params(), x)
    assert not any(e.loop for e in comp.sides[0].graph.eqns)


def while_model(p, x):
    """A ``while`` whose trip count depends on the data: forward mode only."""
    def body(carry):
        h, n = carry
        return h * 1.5 + jnp.tanh(h @ p["shared"]), n + 1

    h = jax.lax.while_loop(lambda c: jnp.sum(c[0] ** 2) < 10.0, body, (jnp.tanh(x @ p["inp"]), 0))[0]
    return h @ p["head"]


@pytest.mark.parametrize("method", ["jacobian", "ntvp", "structured", "auto"])
def test_data_dependent_while_falls_back_to_forward_mode(method):
    params = _params()
    x1 = np.random.default_rng(5).normal(size=(3, 3))
    x2 = np.random.default_rng(6).normal(size=(2, 3))
    want = oracle_ntk(while_model, x1, x2, params, trace_axes=(), vmap_axis=(0, 0), forward=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = jax.jit(ntkc.ntk_fn(while_model, trace_axes=(), vmap_axes=0, method=method))(x1, x2, params)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    fallback = [w for w in caught if issubclass(w.category, MethodFallbackWarning)]
    if method in ("ntvp", "structured"):
        assert len(fallback) == 1 and "'while'" in str(fallback[0].message) and "test_loops.py" in str(fallback[0].message)
    else:
        assert not fallback


def test_reverse_only_entry_points_say_why():
    problem = build_problem(while_model, np.ones((2, 3)), None, _params(), {}, trace_axes=(),
                            diagonal_axes=(), vmap_axes=0)
    with pytest.raises(ReverseModeUnavailable, match="data-dependent trip count"):
        compile_plan(problem, _params())


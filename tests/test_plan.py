"""One plan, held: built once from shapes, run on any inputs of those shapes, reused by every
surface (calls, reports, exported source, serialization), cached across calls and retraces."""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
import ntkc.planning as plan_module
from reference import oracle_ntk
from zoo_cases import assert_equal_to_oracle

PACKAGE = pathlib.Path(ntkc.__file__).parent


def _mlp(p, x):
    return jnp.tanh(x @ p["w"] + p["b"]) @ p["v"]


def _inputs(n1=4, n2=3, seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(size=(3, 8)) / 2, "b": rng.normal(size=(8,)), "v": rng.normal(size=(8, 2)) / 3}
    return params, rng.normal(size=(n1, 3)), rng.normal(size=(n2, 3))


def _count(monkeypatch, name: str) -> list:
    """Count calls of ``ntkc.planning.<name>`` (the pipeline's entry point, or lowering)."""
    calls, original = [], getattr(plan_module, name)
    monkeypatch.setattr(plan_module, name, lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def test_compile_report_source_and_calls_run_the_pipeline_once(monkeypatch):
    ntkc.plan.cache_clear()
    compiled, lowered = _count(monkeypatch, "compile_plan"), _count(monkeypatch, "lower_sides")
    params, x1, x2 = _inputs()
    c = ntkc.compile(_mlp, params, x1, x2, vmap_axes=0, trace_axes=())
    c.cost_report()
    c.source()
    c.serialize()
    str(c.plan)
    for i in range(10):
        c(x1 + i, x2, params)
    assert len(compiled) == 1 and len(lowered) == 1
    assert_equal_to_oracle(c(x1, x2, params), oracle_ntk(_mlp, x1, x2, params, trace_axes=(), vmap_axis=(0, 0)),
                           jnp.float64)


def test_jit_retracing_with_the_same_shapes_does_not_plan_again(monkeypatch):
    ntkc.plan.cache_clear()
    lowered = _count(monkeypatch, "lower_sides")
    params, x1, x2 = _inputs()
    kernel = ntkc.ntk_fn(_mlp, vmap_axes=0, method="auto")
    first = jax.jit(kernel)(x1, x2, params)
    again = jax.jit(lambda a, b, p: kernel(a, b, p))(x1 * 2, x2, params)  # a new trace, same shapes
    kernel(x1, x2, params)
    assert len(lowered) == 1 and ntkc.plan.cache_info()["hits"] >= 2
    assert not np.allclose(first, again)
    kernel(np.ones((5, 3)), x2, params)  # other shapes: a new plan
    assert len(lowered) == 2


def test_plans_of_every_method_share_one_analysis(monkeypatch):
    ntkc.plan.cache_clear()
    lowered = _count(monkeypatch, "lower_sides")
    params, x1, x2 = _inputs()
    plans = {m: ntkc.plan(_mlp, params, x1, x2, vmap_axes=0, method=m) for m in ntkc.valid_methods()}
    assert len(lowered) == 1
    assert plans["structured"].compilation is plans["jacobian"].compilation
    assert plans["auto"].method in ntkc.METHODS


def test_a_plan_from_shapes_runs_on_any_inputs_of_those_shapes():
    params, x1, x2 = _inputs()
    spec = lambda tree: jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)
    plan = ntkc.plan(_mlp, spec(params), spec(x1), spec(x2), vmap_axes=0, trace_axes=(), method="structured")
    for seed in (1, 2):
        p, a, b = _inputs(seed=seed)
        want = oracle_ntk(_mlp, a, b, p, trace_axes=(), vmap_axis=(0, 0))
        assert_equal_to_oracle(ntkc.run_plan(plan, a, b, p), want, jnp.float64, f"seed {seed}")
    assert "kernel 0" in str(plan) and "dot_general" in str(plan)


def test_run_plan_names_the_argument_that_does_not_match():
    params, x1, x2 = _inputs()
    plan = ntkc.plan(_mlp, params, x1, x2, vmap_axes=0)
    with pytest.raises(ValueError, match=r"`x1` has shape \(5, 3\), but the kernel was compiled for \(4, 3\)"):
        ntkc.run_plan(plan, np.ones((5, 3)), x2, params)
    with pytest.raises(ValueError, match=r"`params\['v'\]` has dtype float32"):
        ntkc.run_plan(plan, x1, x2, {**params, "v": params["v"].astype(np.float32)})
    with pytest.raises(ValueError, match="`x2` was given at compile time, but is None now"):
        ntkc.run_plan(plan, x1, None, params)
    with pytest.raises(ValueError, match=r"keyword arguments \['scale'\] differ"):
        ntkc.run_plan(plan, x1, x2, params, scale=2.0)
    with pytest.raises(TypeError, match="`plan` must be an NTKPlan"):
        ntkc.run_plan("plan", x1, x2, params)


def _masked(p, x, *, mask, train):
    h = jnp.tanh(x @ p["w"] + p["b"]) * mask
    return (h if train else 2 * h) @ p["v"]


def test_array_keywords_are_inputs_and_other_keywords_constants():
    """A mask shared by all examples is an input of the plan (new values, same plan); a flag is
    a constant of f (another value, another plan)."""
    params, x1, x2 = _inputs()
    rng = np.random.default_rng(3)
    masks = [rng.normal(size=(8,)) for _ in range(2)]
    plans = set()
    for mask in masks:
        for train in (True, False):
            kwargs = dict(mask=mask, train=train)
            plan = ntkc.plan(_masked, params, x1, x2, trace_axes=(), vmap_axes=0, **kwargs)
            plans.add(plan)
            got = ntkc.run_plan(plan, x1, x2, params, **kwargs)
            want = oracle_ntk(_masked, x1, x2, params, trace_axes=(), vmap_axis=(0, 0), **kwargs)
            assert_equal_to_oracle(got, want, jnp.float64, f"train={train}")
    assert len(plans) == 2
    graph = next(iter(plans)).compilation.sides[0].graph
    assert not any(np.shape(v) == (8,) for v in graph.consts.values())  # the mask is not baked in


def test_sides_share_a_graph_when_their_example_specs_are_equal():
    params, x1, x2 = _inputs()
    same = ntkc.plan(_mlp, params, x1, x2.copy(), vmap_axes=0, method="structured")
    assert same.compilation.shared_graph
    other = ntkc.plan(_mlp, params, x1, x2.astype(np.float32), vmap_axes=0, method="structured")
    assert not other.compilation.shared_graph


def test_the_cache_is_bounded_and_clearable():
    cache = plan_module.PlanCache(maxsize=2)
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") is None and cache.get("c") == "C" and cache.info()["size"] == 2
    cache.clear()
    assert cache.info() == {"hits": 0, "misses": 0, "size": 0, "maxsize": 2}


def test_a_plan_of_a_trace_is_not_cached():
    """f closing over a value of an enclosing jax.jit: its program holds that trace's value, so
    the plan is built for that trace only and the next trace gets its own."""
    params, x1, _ = _inputs()

    @jax.jit
    def outer(scale, x):
        g = lambda p, xx: _mlp(p, xx) * scale
        return ntkc.ntk_fn(g, vmap_axes=0, method="structured")(x, None, params)

    np.testing.assert_allclose(outer(2.0, x1), 4 * outer(1.0, x1), rtol=1e-12)


def test_auto_running_structured_emits_the_held_dense_fallback_warnings(monkeypatch):
    def fallback(p, x):
        lower = jnp.tril(jnp.ones((4, 4))) + 3 * jnp.eye(4)
        return jnp.tanh(x @ jax.lax.linalg.triangular_solve(lower, p["w"], left_side=True, lower=True)) @ p["v"]

    monkeypatch.setattr(plan_module, "choose", lambda *a, **k: "structured")
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(4, 6)), "v": rng.normal(size=(6, 3))}
    x = rng.normal(size=(2, 4))
    with pytest.warns(ntkc.DenseFallbackWarning, match="triangular_solve"):
        got = ntkc.ntk_fn(fallback, trace_axes=(), vmap_axes=0, method="auto")(x, None, params)
    assert_equal_to_oracle(got, oracle_ntk(fallback, x, None, params, trace_axes=(), vmap_axis=(0, 0)), jnp.float64)


# ---------------------------------------------------------------------------------------------
# The method registry and the layering.


def test_every_registered_method_runs_prices_and_exports():
    params, x1, x2 = _inputs()
    want = oracle_ntk(_mlp, x1, x2, params, trace_axes=(), vmap_axis=(0, 0))
    for name, method in ntkc.METHODS.items():
        assert all(callable(getattr(method, part)) for part in ("program", "cost", "fallback")) and method.summary
        plan = ntkc.plan(_mlp, params, x1, x2, trace_axes=(), vmap_axes=0, method=name)
        assert plan.method == name
        assert_equal_to_oracle(ntkc.run_plan(plan, x1, x2, params), want, jnp.float64, name)
        cost = plan.costs()[name]
        assert int(cost.total_flops) > 0 and int(cost.total_memory) > 0
        namespace = {}
        exec(ntkc.compile(_mlp, params, x1, x2, trace_axes=(), vmap_axes=0, method=name).source(), namespace)
        assert_equal_to_oracle(namespace["ntk"](x1, x2, params), want, jnp.float64, f"{name}: exported")


def test_a_method_record_lacking_a_part_is_refused():
    from ntkc.methods import register

    complete = ntkc.METHODS["jacobian"]
    with pytest.raises(ValueError, match="lacks \\['cost'\\]"):
        register(dataclasses.replace(complete, name="broken", cost=None))
    with pytest.raises(ValueError, match="already registered"):
        register(complete)
    assert "broken" not in ntkc.METHODS


def _imports(path: pathlib.Path, name: str, modules: set) -> set:
    """Modules of ntkc that ``path`` imports, at module level or inside functions."""
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                deps.add(full if full in modules else node.module)
    return (deps & modules) - {name}


def test_no_import_cycles_between_ntkc_modules():
    files = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("ntkc",) + path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        files[name] = path
    graph = {name: _imports(path, name, set(files)) for name, path in files.items()}
    state: dict = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_moved_modules_keep_aliases_that_warn():
    import ntkc.passes.structure_rules as old_rules

    with pytest.warns(DeprecationWarning, match="moved to ntkc.rules"):
        assert old_rules.RULES is ntkc.rules.RULES
    with pytest.warns(DeprecationWarning):
        from ntkc.backends.source_eqns import ExportError
    assert ExportError is ntkc.ExportError
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from ntkc.passes.pipeline import MethodFallbackWarning  # the old home re-exports it
    assert MethodFallbackWarning is ntkc.MethodFallbackWarning

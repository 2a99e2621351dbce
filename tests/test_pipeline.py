"""The compiler pipeline: the dump works, propagation moves cuts, weight sharing goes outside-in
when cheaper, and ntkc uses public JAX API only (the verifier: ``test_verify.py``)."""

from __future__ import annotations

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np

from ntkc.passes.pipeline import compile_plan
from ntkc.problem import build_problem
from ntkc.testing import ZOO

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "ntkc"


def _problem(inst, vmap, x2=True, trace_axes=(-1,), diagonal_axes=()):
    return build_problem(inst.f, inst.x1, inst.x2 if x2 else None, inst.params, dict(inst.kwargs),
                         trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap_axes=0 if vmap else None)


def test_dump_prints_every_pass(monkeypatch, capsys):
    monkeypatch.setenv("NTKC_DUMP", "1")
    inst = ZOO["mlp"].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    compile_plan(_problem(inst, True), inst.params)
    err = capsys.readouterr().err
    for name in ("lower", "structure", "propagate", "cotangents", "terms", "weight_sharing", "order", "share"):
        assert f"after pass '{name}'" in err
    assert "einsum(" in err and "dot_general" in err


def test_propagation_moves_the_cut_past_scaling_and_casts():
    """NTK parameterization ``x @ (W * c)`` and a cast: the cut lands on dot_general, so the
    cotangent is activation-sized, not W-sized."""
    def f(p, x):
        w = (p["w"] * 0.5).astype(jnp.float32).T
        return jnp.tanh(x @ w) @ p["v"]

    params = {"w": jnp.ones((16, 8)) / 4, "v": jnp.ones((16, 3)) / 4}
    x = jnp.arange(10.0).reshape(5, 2, 1) * jnp.ones((5, 2, 8)) / 10
    problem = build_problem(f, x, None, params, {}, trace_axes=(), diagonal_axes=(), vmap_axes=0)
    comp = compile_plan(problem, params, check=True)
    (use_w,) = [u for u in comp.sides[0].uses if u.leaf == 1]
    assert use_w.eqns[-1].name == "dot_general"
    assert use_w.output.shape == (1, 2, 16)  # one example: a batch of one, as in neural-tangents
    assert use_w.form.scale == 0.5


def test_weight_sharing_goes_outside_in_when_cheaper():
    """One small matrix applied 12 times: 144 pairwise terms cost more than two Jacobians."""
    def f(p, x):
        h = x
        for _ in range(12):
            h = jnp.tanh(h @ p["w"])
        return h

    params = {"w": jnp.eye(4) * 0.9}
    x = jnp.linspace(-1, 1, 12).reshape(3, 4)
    problem = build_problem(f, x, None, params, {}, trace_axes=(), diagonal_axes=(), vmap_axes=0)
    comp = compile_plan(problem, params, check=True)
    (kernel,) = comp.kernels
    assert [t.uses for t in kernel.terms] == [None]
    assert len(kernel.jacobians) == 1 and len(kernel.jacobians[0].parts) == 12


def test_memory_limit_changes_nothing_but_the_order():
    import ntkc

    inst = ZOO["conv_valid_strided_dilated"].make(jax.random.PRNGKey(0), dtype=jnp.float64)
    free, tight = (ntkc.plan(inst.f, inst.params, inst.x1, inst.x2, trace_axes=(), vmap_axes=0, method="structured",
                             memory_limit=limit) for limit in (None, 8 * 64))
    largest = lambda plan: max(c.largest for k in plan.compilation.kernels for c in k.contractions())
    assert largest(tight) <= largest(free)
    run = lambda plan: ntkc.run_plan(plan, inst.x1, inst.x2, inst.params)
    np.testing.assert_allclose(run(tight), run(free), rtol=1e-12)


def test_no_private_jax_imports():
    pattern = re.compile(r"^\s*(from|import)\s+jax\.(_src|interpreters)\b", re.M)
    offenders = [str(p) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_only_the_adapter_module_traces():
    """Jaxprs (make_jaxpr, jax.extend.core) are read in ir/from_jaxpr.py only."""
    pattern = re.compile(r"make_jaxpr|jax\.extend\.core|import jax\.extend")
    offenders = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if pattern.search(p.read_text()))
    assert offenders == ["ir/from_jaxpr.py"]


def test_parameter_returned_unchanged_still_counts():
    """``f`` returning a parameter as is: its tangent is a graph output with no consumer
    equation; lowering gives it an explicit copy so its NTK contribution is not lost."""
    from ntkc import ntk_fn
    f = lambda p, x: x * p["s"] + p["b"]
    params = {"s": jnp.full((2, 3), 0.5), "b": jnp.ones((2, 3))}
    x = jnp.arange(6.0).reshape(2, 3)
    expected = ntk_fn(f, trace_axes=(), method="jacobian")(x, None, params)
    got = ntk_fn(f, trace_axes=(), method="structured")(x, None, params)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert float(jnp.abs(expected).sum()) > 0


def test_a_weight_and_its_bias_read_one_cotangent():
    """``relu(x @ W + b)``: both cuts move through the sum (an identity), so both uses read
    ∂f/∂(x @ W + b), one cotangent; the bias does not move on into the ReLU's select_n (the
    cotangent would keep its size and gain a mask factor)."""
    def f(p, x):
        return jax.nn.relu(x @ p["w"] + p["b"]) @ p["v"]

    params = {"w": jnp.ones((3, 8)) / 3, "b": jnp.full((8,), 0.1), "v": jnp.ones((8, 2)) / 8}
    x = jnp.linspace(-1, 1, 12).reshape(4, 3)
    problem = build_problem(f, x, None, params, {}, trace_axes=(), diagonal_axes=(), vmap_axes=0)
    comp = compile_plan(problem, params, check=True)
    uses = {u.leaf: u for u in comp.sides[0].uses}  # leaves in key order: b, v, w
    assert uses[2].primitives == "dot_general→add" and uses[0].primitives == "broadcast_in_dim→add"
    assert uses[2].output is uses[0].output
    assert len(comp.sides[0].targets) == 2  # the sum before the ReLU, and the head's output


def _without_share(problem, params, **options):
    from ntkc.passes import pipeline
    kept = [(name, run) for name, run in pipeline.PASSES if name != "share"]
    original, pipeline.PASSES[:] = list(pipeline.PASSES), kept
    try:
        return compile_plan(problem, params, check=True, **options)
    finally:
        pipeline.PASSES[:] = original


def test_a_weight_and_its_bias_share_their_cotangent_product():
    """``x @ W + b`` per example: the bias's term ``Σ cot1·cot2`` is the first step of the
    weight's ``Σ (cot1·cot2)(x1·x2)``; the share pass computes it once, the kernel is unchanged.
    (The head's bias reads the squeezed output, a different array from its weight's.)"""
    def f(p, x):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        return h @ p["w2"] + p["b2"]

    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    params = {"w1": jax.random.normal(keys[0], (5, 16), jnp.float64), "b1": jax.random.normal(keys[1], (16,), jnp.float64),
              "w2": jax.random.normal(keys[2], (16, 3), jnp.float64), "b2": jax.random.normal(keys[3], (3,), jnp.float64)}
    x = jax.random.normal(keys[4], (6, 5), jnp.float64)
    problem = build_problem(f, x, x[:4], params, {}, trace_axes=(-1,), diagonal_axes=(), vmap_axes=0)
    shared, plain = compile_plan(problem, params, check=True), _without_share(problem, params)
    (kernel,), (before,) = shared.kernels, plain.kernels
    assert len(kernel.shared) == 1 and not before.shared
    readers = [t.leaf for t in kernel.terms if any(op.kind == "shared" for op in t.contraction.operands)]
    assert readers == [0, 2]  # leaves in key order: b1, b2, w1, w2
    assert kernel.flops < before.flops
    import ntkc
    from reference import oracle_ntk
    got = ntkc.ntk_fn(f, trace_axes=(-1,), vmap_axes=0, method="structured")(x, x[:4], params)
    np.testing.assert_allclose(got, oracle_ntk(f, x, x[:4], params, trace_axes=(-1,), vmap_axis=(0, 0)), rtol=1e-10,
                               atol=1e-10 * float(jnp.abs(got).max()))


def test_a_weight_term_is_repathed_to_share_its_bias_cotangent_product():
    """Narrow layers and many outputs (full kernel, W = 8, O = 64): alone, the weight's term
    ``Σ (cot1·cot2)(x1·x2)`` is cheapest contracting the inputs first, so its path never forms
    the bias's ``Σ cot1·cot2``; beginning with it costs the weight little beyond that shared
    step, so the share pass re-paths it and computes the product once."""
    def f(p, x):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        h = jnp.tanh(h @ p["w2"] + p["b2"])
        return h @ p["w3"]

    keys = jax.random.split(jax.random.PRNGKey(1), 6)
    params = {"w1": jax.random.normal(keys[0], (8, 8), jnp.float64), "b1": jax.random.normal(keys[1], (8,), jnp.float64),
              "w2": jax.random.normal(keys[2], (8, 8), jnp.float64), "b2": jax.random.normal(keys[3], (8,), jnp.float64),
              "w3": jax.random.normal(keys[4], (8, 64), jnp.float64)}
    x = jax.random.normal(keys[5], (6, 8), jnp.float64)
    problem = build_problem(f, x, None, params, {}, trace_axes=(), diagonal_axes=(), vmap_axes=0)
    shared, plain = compile_plan(problem, params, check=True), _without_share(problem, params)
    (kernel,), (before,) = shared.kernels, plain.kernels
    first_steps = [t.contraction.path[0] for t in before.terms if t.leaf in (2, 3)]  # w1, w2
    assert first_steps == [(1, 3), (1, 3)]  # alone: the inputs' product first
    assert len(kernel.shared) == 2  # each hidden layer's cotangent product, once
    readers = sorted(t.leaf for t in kernel.terms if any(op.kind == "shared" for op in t.contraction.operands))
    assert readers == [0, 1, 2, 3]  # b1, b2, w1, w2 (leaves in key order)
    hidden = lambda k: sum(t.contraction.flops for t in k.terms if t.leaf < 4) + sum(c.flops for c in k.shared)
    assert hidden(kernel) < 0.6 * hidden(before)  # the bias terms' products were about half of it
    import ntkc
    from reference import oracle_ntk
    got = ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method="structured")(x, None, params)
    np.testing.assert_allclose(got, oracle_ntk(f, x, None, params, trace_axes=(), vmap_axis=(0, 0)), rtol=1e-10,
                               atol=1e-10 * float(jnp.abs(got).max()))


def test_shared_intermediate_keeps_what_any_reader_keeps():
    """Examples of shape (1, d): the weight's first step keeps the size-1 row axis for its
    factors, the bias sums it; one intermediate keeps it and the bias sums it out."""
    inst = ZOO["mlp"].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    comp = compile_plan(_problem(inst, True, trace_axes=()), inst.params, check=True)
    (kernel,) = comp.kernels
    for i, c in enumerate(kernel.shared):
        reads = [op for t in kernel.terms for op in t.contraction.operands if op.kind == "shared" and op.index == i]
        assert len(reads) == 2
        assert all(len(op.labels) == len(c.output) for op in reads)
        assert any(not set(op.labels) <= set(kernel.result) | {l for o in t.contraction.operands if o is not op
                                                                for l in o.labels}
                   for t in kernel.terms for op in t.contraction.operands if op in reads)


def test_a_memory_limit_bounds_the_shared_intermediates():
    inst = ZOO["deep_mlp"].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    problem = _problem(inst, True, trace_axes=())
    free = compile_plan(problem, inst.params, check=True)
    limit = 4 * 16  # bytes: 16 float32 elements, a quarter of them for shared intermediates
    tight = compile_plan(problem, inst.params, check=True, memory_limit=limit)
    size = lambda kernel: sum(int(np.prod([kernel.label_sizes()[l] for l in c.output])) for c in kernel.shared)
    assert size(free.kernels[0]) > 4
    assert size(tight.kernels[0]) <= 4

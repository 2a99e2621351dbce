"""The symbolic cost model and the cost report."""

from __future__ import annotations

import json
import random
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import opt_einsum
import pytest
import sympy
from jax import lax

import ntkc
from ntkc.passes.cost import SizeNames, evaluate, path_cost
from ntkc.passes.pipeline import compile_plan
from ntkc.problem import build_problem
from ntkc.report import cost_report
from ntkc.testing import ZOO

S = jax.ShapeDtypeStruct


def _monomials(expr) -> set:
    """The monomials of an expanded polynomial, coefficients dropped."""
    return {sympy.Mul(*[b ** e for b, e in term.as_powers_dict().items() if b.is_Symbol])
            for term in sympy.Add.make_args(sympy.expand(expr))}


@pytest.mark.parametrize("seed", range(20))
def test_symbolic_path_cost_equals_opt_einsum(seed):
    """Random contractions: the symbolic FLOPs of opt_einsum's own path, evaluated at the
    sizes, equal opt_einsum's integer count; the largest intermediate too."""
    rng = random.Random(seed)
    labels = "abcdefg"
    sizes = {l: rng.randint(2, 9) for l in labels}
    operands = ["".join(rng.sample(labels, rng.randint(1, 4))) for _ in range(rng.randint(2, 5))]
    present = sorted(set("".join(operands)))
    output = "".join(rng.sample(present, rng.randint(0, min(3, len(present)))))
    spec = ",".join(operands) + "->" + output
    path, info = opt_einsum.contract_path(spec, *[tuple(sizes[l] for l in op) for op in operands],
                                          shapes=True, optimize="optimal")
    symbols = {l: sympy.Symbol(l.upper(), positive=True, integer=True) for l in labels}
    flops, largest = path_cost(operands, output, path, symbols)
    values = {l.upper(): v for l, v in sizes.items()}
    assert evaluate(flops, values) == info.opt_cost
    assert evaluate(largest, values) == info.largest_intermediate
    assert path_cost(operands, output, path, sizes) == (info.opt_cost, info.largest_intermediate)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_plan_costs_equal_the_recorded_opt_einsum_counts(name):
    """Every contraction of every zoo plan, priced symbolically (each size its own symbol) and
    evaluated, equals the FLOP count opt_einsum recorded for its path."""
    inst = ZOO[name].make(jax.random.PRNGKey(0))
    problem = build_problem(inst.f, inst.x1, inst.x2, inst.params, dict(inst.kwargs), trace_axes=(),
                            diagonal_axes=(), vmap_axes=0)
    comp = compile_plan(problem, inst.params)
    for kernel in comp.kernels:
        sizes = kernel.label_sizes()
        for jac in kernel.jacobians:
            sizes.update(zip(jac.labels, jac.shape))
        symbolic = {l: sympy.Symbol(f"s{v}", positive=True) for l, v in sizes.items()}
        values = {f"s{v}": v for v in sizes.values()}
        for c in kernel.contractions():
            flops, _ = path_cost([op.labels for op in c.operands], c.output, c.path, symbolic)
            assert evaluate(flops, values) == c.flops


def _mlp(p, x):
    for w, b in p[:-1]:
        x = jax.nn.relu(x @ w + b)
    return x @ p[-1][0] + p[-1][1]


def test_mlp_costs_have_the_terms_of_table_2():
    """10-layer ReLU MLP traced with symbolic N, O, W (paper Table 2, full kernel)."""
    N, O, W = jax.export.symbolic_shape("N, O, W")
    sizes = [3] + [W] * 9 + [O]
    params = [(S((a, b), jnp.float32), S((b,), jnp.float32)) for a, b in zip(sizes[:-1], sizes[1:])]
    report = cost_report(_mlp, params, S((N, 3), jnp.float32), vmap_axes=0, trace_axes=())
    N, O, W = sympy.symbols("N O W", positive=True, integer=True)
    structured = _monomials(report.costs["structured"].total_flops)
    assert {N * O * W**2, N**2 * O**2 * W, N**2 * O**3} <= structured
    assert N**2 * O**2 * W**2 not in structured and N**2 * O * W**2 not in structured
    assert N**2 * O**2 * W**2 in _monomials(report.costs["jacobian"].total_flops)
    assert N**2 * O * W**2 in _monomials(report.costs["ntvp"].total_flops)


def _cnn(p, x):
    for k in p["convs"]:
        x = jax.nn.relu(lax.conv_general_dilated(x, k, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC")))
    return x.reshape(x.shape[0], -1) @ p["head"]


def test_cnn_costs_have_the_terms_of_table_3():
    """A 1-D CNN with D pixels, filter size F and W channels (paper Table 3)."""
    N, O, W, D, F = jax.export.symbolic_shape("N, O, W, D, F")
    params = {"convs": [S((F, 3, W), jnp.float32)] + [S((F, W, W), jnp.float32)] * 3,
              "head": S((D * W, O), jnp.float32)}
    report = cost_report(_cnn, params, S((N, D, 3), jnp.float32), vmap_axes=0, trace_axes=())
    N, O, W, D, F = sympy.symbols("N O W D F", positive=True, integer=True)
    structured = _monomials(report.costs["structured"].total_flops)
    assert {N * O * D * F * W**2, N**2 * O**2 * D * W, N**2 * O**3} <= structured
    assert N**2 * O**2 * F * W**2 not in structured
    jacobian = _monomials(report.costs["jacobian"].total_flops)
    assert {N**2 * O**2 * F * W**2, N * O * D * F * W**2} <= jacobian
    assert N**2 * O * D * F * W**2 in _monomials(report.costs["ntvp"].total_flops)


@pytest.mark.parametrize("name", ["mlp", "attention", "residual_block", "conv_same_nhwc"])
@pytest.mark.parametrize("method", ["structured", "jacobian", "ntvp"])
def test_predicted_flops_match_xla_within_2x(name, method):
    inst = ZOO[name].make(jax.random.PRNGKey(0))
    report = cost_report(inst.f, inst.params, inst.x1, inst.x2, vmap_axes=0, trace_axes=(), **inst.kwargs)
    kernel = jax.jit(ntkc.ntk_fn(inst.f, trace_axes=(), vmap_axes=0, method=method))
    cost = kernel.lower(inst.x1, inst.x2, inst.params, **inst.kwargs).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    ratio = report.numeric(method)[0] / cost["flops"]
    assert 0.5 <= ratio <= 2.0, f"predicted / XLA FLOPs = {ratio:.2f}"


def test_dims_name_concrete_sizes_and_reject_collisions():
    params = [(jnp.ones((3, 12)), jnp.ones(12)), (jnp.ones((12, 5)), jnp.ones(5))]
    x = jnp.ones((4, 3))
    report = cost_report(_mlp, params, x, vmap_axes=0, trace_axes=(), dims={"W": 12})
    N, O, W = sympy.symbols("N O W", positive=True, integer=True)
    assert report.values == {"W": 12, "N": 4, "O": 5}
    assert N * O * W in _monomials(report.costs["structured"].total_flops)
    assert report.chosen in ("structured", "jacobian", "ntvp")
    flops, memory = report.numeric(report.chosen)
    assert flops == min(report.numeric(m)[0] for m in report.costs) and memory > 0
    with pytest.raises(ValueError, match="sizes 'W' and 'N' are both 4"):
        cost_report(_mlp, params, x, vmap_axes=0, dims={"W": 4, "N": 4})
    with pytest.raises(ValueError, match=r"`dims\['W'\]` must be a positive int"):
        SizeNames.create({"W": 0})


def test_report_renders_text_markdown_json():
    inst = ZOO["conv_same_nhwc"].make(jax.random.PRNGKey(0))
    report = cost_report(inst.f, inst.params, inst.x1, inst.x2, vmap_axes=0, trace_axes=(-1,))
    text = str(report)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "structured" in text and "conv_general_dilated" in text and "chosen:" in text
    md = report.markdown()
    assert md.startswith("| method |") and md.count("\n| ") >= 5
    data = json.loads(report.json())
    assert set(data["methods"]) == {"structured", "jacobian", "ntvp"}
    assert data["chosen"] == report.chosen
    assert all(isinstance(m["flops_value"], int) for m in data["methods"].values())
    assert [c["kind"] for c in data["consumers"]][0] != ""


def test_symbolic_report_without_values_makes_no_choice():
    N, W = jax.export.symbolic_shape("N, W")
    params = {"w": S((3, W), jnp.float32), "v": S((W, 2), jnp.float32)}
    f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
    report = cost_report(f, params, S((N, 3), jnp.float32), vmap_axes=0)
    assert report.chosen is None and "dims" in report.why()
    valued = cost_report(f, params, S((N, 3), jnp.float32), vmap_axes=0, dims={"N": 8, "W": 64})
    assert valued.chosen is not None and valued.values == {"N": 8, "W": 64, "O": 2}
    concrete = cost_report(f, {"w": jnp.ones((3, 64)), "v": jnp.ones((64, 2))}, jnp.ones((8, 3)), vmap_axes=0)
    assert [concrete.numeric(m)[0] for m in concrete.costs] == [valued.numeric(m)[0] for m in valued.costs]
    assert np.isfinite(valued.numeric("structured")[1])


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_cli_report_prints_each_format(fmt, capsys):
    from ntkc.cli import main

    model = str(__import__("pathlib").Path(__file__).parents[1] / "examples" / "mlp_model.py")
    assert main(["report", model, "--dims", "W=256,O=10", "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        data = json.loads(out)
        assert data["values"] == {"N": 8, "O": 10, "W": 256}
        predicted, xla = data["methods"]["structured"]["flops_value"], data["methods"]["structured"]["xla_flops"]
        assert 0.5 <= predicted / xla <= 2.0
    elif fmt == "markdown":
        assert out.startswith("| method |") and "| structured" in out
    else:
        assert max(len(line) for line in out.splitlines()) <= 100 and "chosen: structured" in out


def test_cli_report_symbolic_and_bad_arguments(capsys):
    from ntkc.cli import main

    model = str(__import__("pathlib").Path(__file__).parents[1] / "examples" / "mlp_model.py")
    assert main(["report", model + ":symbolic", "--trace-axes="]) == 0
    assert "16*N*O*W^2" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="defines no callable 'nope'"):
        main(["report", model + ":nope"])
    with pytest.raises(SystemExit, match="--dims entries look like W=512"):
        main(["report", model, "--dims", "W:512"])


def _fallback_model(p, x):
    lower = jnp.tril(jnp.ones((4, 4))) + 3 * jnp.eye(4)
    h = jnp.tanh(x @ jax.lax.linalg.triangular_solve(lower, p["w"], left_side=True, lower=True))
    return h @ p["v"] + p["b"]


def test_auto_mixes_methods_per_parameter():
    """The leaf behind a dense fallback is cheaper by Jacobian contraction of its own Jacobian,
    the others by structured terms: one plan holds both, and equals the oracle."""
    from reference import oracle_ntk

    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(4, 6))), "v": jnp.asarray(rng.normal(size=(6, 3))),
              "b": jnp.asarray(rng.normal(size=(3,)))}
    x = jnp.asarray(rng.normal(size=(2, 4)))
    with pytest.warns(ntkc.passes.consumers.DenseFallbackWarning):
        problem = build_problem(_fallback_model, x, None, params, {}, trace_axes=(), diagonal_axes=(), vmap_axes=0)
        comp = compile_plan(problem, params)
    notes = {t.leaf: t.note for k in comp.kernels for t in k.terms}
    w_leaf = 2  # leaves in key order: b, v, w
    assert notes[w_leaf].startswith("outside-in")
    assert not all(n.startswith("outside-in") for n in notes.values())
    ref = oracle_ntk(_fallback_model, x, None, params, trace_axes=(), diagonal_axes=(), vmap_axis=(0, 0))
    with pytest.warns(ntkc.passes.consumers.DenseFallbackWarning):
        got = ntkc.ntk_fn(_fallback_model, trace_axes=(), vmap_axes=0, method="structured")(x, None, params)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10, atol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ntkc.passes.consumers.DenseFallbackWarning)
        auto = ntkc.ntk_fn(_fallback_model, trace_axes=(), vmap_axes=0, method="auto")(x, None, params)
    np.testing.assert_allclose(np.asarray(auto), ref, rtol=1e-10, atol=1e-10)


def test_a_predicted_tie_with_jacobian_goes_to_jacobian():
    """Weights shared by 64 tokens of 3 features: structured saves 0.05 % of jacobian's FLOPs, a
    tie, which auto and the cost report give to jacobian (at such ties structured measured up to
    2x slower: docs/benchmarks.md)."""
    from ntkc.passes.select import TIE

    def tokens(p, x):
        return jnp.mean(jnp.tanh(x @ p["w"]), axis=1) @ p["v"]

    params = {"w": jnp.ones((3, 3)), "v": jnp.ones((3, 1))}
    x = jnp.ones((2, 64, 3))
    report = ntkc.cost_report(tokens, params, x, x, trace_axes=(), vmap_axes=0)
    flops = {m: report.numeric(m)[0] for m in report.costs}
    assert flops["structured"] < flops["jacobian"] <= flops["structured"] * TIE
    assert report.chosen == "jacobian" and "a tie with structured" in report.why()
    assert ntkc.plan(tokens, params, x, x, trace_axes=(), vmap_axes=0).method == "jacobian"


def test_auto_excludes_methods_that_do_not_fit_the_memory_limit():
    from ntkc.passes.select import cheapest

    params = [(jnp.ones((3, 32)), jnp.ones(32)), (jnp.ones((32, 4)), jnp.ones(4))]
    x = jnp.ones((8, 3))
    priced = lambda plan: ({m: int(c.total_flops) for m, c in plan.costs().items()},
                           {m: int(c.total_memory) * 8 for m, c in plan.costs().items()})  # float64 parameters
    free = ntkc.plan(_mlp, params, x, trace_axes=(), vmap_axes=0)
    flops, memory = priced(free)
    best = cheapest(flops)
    assert free.method == best
    limit = memory[best] - 1
    limited = ntkc.plan(_mlp, params, x, trace_axes=(), vmap_axes=0, memory_limit=limit)
    flops, memory = priced(limited)
    fitting = {m: f for m, f in flops.items() if memory[m] <= limit}
    expected = cheapest(fitting) if fitting else min(memory, key=memory.get)
    assert limited.method == expected != best

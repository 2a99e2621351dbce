"""A symmetric kernel (x2 = None) computed in halves — each pair of examples' terms once — equals
the float64 oracle on every zoo model it applies to, and is what ``ntk_fn`` runs when it pays."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.testing import ZOO
from ntkc.tiling.halves import halves
from zoo_cases import assert_equal_to_oracle, instance, oracle, out_ndim

CASES = sorted(n for n in ZOO if ZOO[n].batch_independent and not instance(n, jnp.float32).kwargs)
#: (model, method) whose plans do not halve: side 2's work in the column program is not a
#: mapped call mirroring one of side 1's (the loop of a scan, a broadcast parameter's terms).
NOT_HALVED = {("rnn_scan", "structured"), ("broadcast_bias", "structured")}


#: Models whose traced kernels are checked too (every model's full kernel is).
TRACED = {"mlp", "pytree_out", "conv_image_out", "attention", "pytree_input"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in CASES])
def test_halves_equal_the_oracle(name):
    """Three examples: halves of 2 and 1 (the second padded, then cropped); full kernels, and
    traced ones for models of every output kind."""
    inst = instance(name, jnp.float64)
    for method in ("structured", "jacobian"):
        for trace_axes in ((), (-1,)) if name in TRACED else ((),):
            plan = ntkc.plan(inst.f, inst.params, inst.x1, None, trace_axes=trace_axes, vmap_axes=0, method=method)
            split = halves(plan, priced=False)
            pairs = len(trace_axes) < out_ndim(name)  # else the example axis itself is traced
            assert (split is None) == ((name, method) in NOT_HALVED or not pairs), (method, trace_axes)
            if split is None:
                continue
            assert split.sizes == (2, 1)
            got = jax.jit(split)(inst.params, inst.x1, None, {}, {})
            assert_equal_to_oracle(got, oracle(name, trace_axes=trace_axes, vmap=True, same=True), jnp.float64,
                                   f"{name}-{method}-trace{trace_axes}")


def _wide_mlp(outputs=64, n=10):
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(5, 128)) / 2, "b": rng.normal(size=128),
              "v": rng.normal(size=(128, 128)) / 11, "u": rng.normal(size=(128, outputs)) / 11}

    def f(p, x):
        h = jnp.tanh(x @ p["w"] + p["b"])
        return jnp.tanh(h @ p["v"]) @ p["u"]
    return f, params, rng.normal(size=(n, 5))


def test_ntk_fn_runs_halves_when_they_pay_and_the_whole_program_otherwise():
    f, params, x = _wide_mlp()
    plan = ntkc.plan(f, params, x, None, trace_axes=(), vmap_axes=0, method="structured")
    split = halves(plan)
    assert split is not None and split.sizes == (5, 5) and split.pair_flops_fraction == pytest.approx(0.75, abs=0.01)
    got = ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method="structured")(x, None, params)
    whole = jax.jit(plan._execute)(params, x, None, {}, {})
    assert_equal_to_oracle(got, np.asarray(whole), jnp.float64, "halves against the whole program")
    report = ntkc.cost_report(f, params, x, None, trace_axes=(), vmap_axes=0)
    assert report.chosen == "structured" and "halves of 5 and 5 examples" in str(report)
    assert "halves of 5 and 5" in report.markdown() and report.as_dict()["symmetric"] == report.symmetric
    # one output: the pairs' contractions are a sliver of the work, halves would not pay
    f1, params1, x1 = _wide_mlp(outputs=1)
    assert halves(ntkc.plan(f1, params1, x1, None, trace_axes=(), vmap_axes=0, method="structured")) is None
    assert ntkc.cost_report(f1, params1, x1, None, trace_axes=(), vmap_axes=0).symmetric == ""
    # x2 given, or an example axis not a pair: nothing to halve
    given = ntkc.plan(f, params, x, x[:4], trace_axes=(), vmap_axes=0, method="structured")
    diagonal = ntkc.plan(f, params, x, None, trace_axes=(), diagonal_axes=(0,), vmap_axes=0, method="structured")
    assert halves(given, priced=False) is None and halves(diagonal, priced=False) is None

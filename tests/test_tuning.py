"""``method="auto"`` that measures: a near tie in predicted FLOPs is timed by ``ntkc.compile``,
kept with the plan and on disk (keyed by the model's linearized program, shapes, options,
device and versions), read back by later plans without measuring again, shown in the cost
report; ``tune=False`` and ``NTKC_AUTOTUNE=0`` keep the cost model's choice."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import pytest

import ntkc
from ntkc import tuning
from ntkc.testing import ZOO


@pytest.fixture
def tuned(monkeypatch, tmp_path):
    """Tuning on, with a cache of the test's own; plans planned afresh."""
    monkeypatch.setenv(tuning.ENV_TUNE, "1")
    monkeypatch.setenv(tuning.ENV_DIR, str(tmp_path))
    ntkc.plan.cache_clear()
    yield tmp_path / "autotune"
    ntkc.plan.cache_clear()


def model(name="cond_model"):
    inst = ZOO[name].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    return inst.f, inst.params, inst.x1


def options():
    return {"trace_axes": (), "vmap_axes": 0}


def test_a_tie_is_measured_once_kept_and_read_back(tuned, monkeypatch):
    f, params, x = model()
    compiled = ntkc.compile(f, params, x, **options())
    (entry,) = tuned.glob("*.json")
    stored = json.loads(entry.read_text())
    assert set(stored["seconds"]) == {"structured", "jacobian", "ntvp"}
    assert compiled.method == stored["choice"] and "measured fastest" in compiled.plan.why
    report = compiled.cost_report()
    assert report.measured is not None and report.chosen == stored["choice"]
    assert "ms" in str(report) and report.as_dict()["measured_seconds"] == stored["seconds"]

    def refuse(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(tuning, "measure", refuse)
    assert ntkc.compile(f, params, x, **options()).method == stored["choice"]  # held by the plan
    ntkc.plan.cache_clear()
    assert ntkc.plan(f, params, x, **options()).method == stored["choice"]     # read from disk
    kernel = jax.jit(ntkc.ntk_fn(f, **options()))
    assert kernel(x, None, params).shape == ntkc.compile(f, params, x, **options())(x, None, params).shape


def test_a_stored_choice_decides_auto(tuned):
    """Whatever the cost model prefers, a stored measurement of the problem decides."""
    f, params, x = model()
    analysis = ntkc.plan(f, params, x, **options()).analysis
    flops = analysis.applicable_flops()
    slowest = max(tuning.candidates(flops), key=flops.get)
    fake = tuning.Measurement(choice=slowest, seconds={m: 1.0 + (m != slowest) for m in tuning.candidates(flops)},
                              flops=flops, device=tuning.device_kind())
    tuned.mkdir(parents=True)
    (tuned / f"{tuning.fingerprint(analysis)}.json").write_text(json.dumps(dataclasses.asdict(fake)))
    ntkc.plan.cache_clear()
    assert ntkc.plan(f, params, x, **options()).method == slowest


def test_models_of_equal_shapes_do_not_share_an_entry(tuned):
    f, params, x = model()
    g = lambda p, xx: f(p, jnp.sin(xx))
    keys = {tuning.fingerprint(ntkc.plan(h, params, x, **options()).analysis) for h in (f, g)}
    assert len(keys) == 2


def test_tuning_off_keeps_the_cost_models_choice(tuned, monkeypatch):
    f, params, x = model()
    expected = ntkc.plan(f, params, x, **options()).method
    assert ntkc.compile(f, params, x, tune=False, **options()).method == expected
    monkeypatch.setenv(tuning.ENV_TUNE, "0")
    assert ntkc.compile(f, params, x, **options()).method == expected
    assert not tuned.exists()


def test_no_tie_no_measurement(tuned):
    f, params, x = model("mlp_nobias")  # structured alone within 2x of the fewest FLOPs
    assert ntkc.compile(f, params, x, **options()).method == "structured"
    assert not tuned.exists()

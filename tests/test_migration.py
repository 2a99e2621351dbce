"""Switching from neural-tangents: ``implementation=`` (neural-tangents' spelling of ``method=``)
in ``ntk_fn`` and ``compile``, ``ntkc.NtkImplementation``, and the migration page's side-by-side
example (``examples/from_neural_tangents.py``), run without neural-tangents installed."""

from __future__ import annotations

import pathlib
import runpy

import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
import ntkc.api

ROOT = pathlib.Path(__file__).resolve().parent.parent


def f(p, x):
    return jnp.tanh(x @ p["w"]) @ p["v"]


PARAMS = {"w": jnp.ones((3, 8)) / 3, "v": jnp.linspace(-1, 1, 16).reshape(8, 2)}
X1, X2 = jnp.linspace(0, 1, 12).reshape(4, 3), jnp.linspace(-1, 1, 15).reshape(5, 3)


def test_enum_has_neural_tangents_names_and_values():
    assert {m.name: int(m) for m in ntkc.NtkImplementation} == {
        "AUTO": 0, "JACOBIAN_CONTRACTION": 1, "NTK_VECTOR_PRODUCTS": 2, "STRUCTURED_DERIVATIVES": 3}
    assert [m.method for m in ntkc.NtkImplementation] == ["auto", "jacobian", "ntvp", "structured"]
    assert "NtkImplementation" in ntkc.__all__


@pytest.mark.parametrize("implementation, method", [
    (1, "jacobian"), (2, "ntvp"), (3, "structured"), (0, "auto"),
    (ntkc.NtkImplementation.STRUCTURED_DERIVATIVES, "structured"),
    (ntkc.NtkImplementation.JACOBIAN_CONTRACTION, "jacobian"),
    ("ntvp", "ntvp"),
])
def test_ntk_fn_implementation_is_method(monkeypatch, implementation, method):
    requested = []
    plan_for = ntkc.api.plan_for

    def spy(f, params, x1, x2, kwargs, method, options):
        requested.append(method)
        return plan_for(f, params, x1, x2, kwargs, method, options)

    monkeypatch.setattr(ntkc.api, "plan_for", spy)
    got = ntkc.ntk_fn(f, vmap_axes=0, implementation=implementation)(X1, X2, PARAMS)
    assert requested == [method]
    want = ntkc.ntk_fn(f, vmap_axes=0, method="jacobian")(X1, X2, PARAMS)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_compile_implementation_is_method():
    c = ntkc.compile(f, PARAMS, X1, X2, vmap_axes=0, implementation=ntkc.NtkImplementation.NTK_VECTOR_PRODUCTS)
    assert c.method == "ntvp" and c.plan.requested == "ntvp"
    c = ntkc.compile(f, PARAMS, X1, X2, vmap_axes=0, implementation=3, method="structured")  # the same method
    assert c.method == "structured"
    assert "implementation" not in c.kwargs  # consumed, not passed to f as a constant


def test_method_and_a_different_implementation_is_an_error():
    with pytest.raises(ValueError, match=r"method='jacobian'.*implementation=.*method='structured'.*disagree"):
        ntkc.ntk_fn(f, method="jacobian", implementation=ntkc.NtkImplementation.STRUCTURED_DERIVATIVES)
    with pytest.raises(ValueError, match="disagree"):
        ntkc.compile(f, PARAMS, X1, X2, method="auto", implementation=1)


@pytest.mark.parametrize("bad", [4, -1, True, 1.0, "fast"])
def test_unknown_implementation_is_an_error(bad):
    with pytest.raises(ValueError, match="Unknown `implementation`"):
        ntkc.ntk_fn(f, implementation=bad)


def test_default_is_auto():
    assert ntkc.api.resolve_method(None, None) == "auto"
    assert ntkc.compile(f, PARAMS, X1, X2, vmap_axes=0, tune=False).plan.requested == "auto"


def test_migration_example_runs(capsys):
    """The side-by-side example the migration page includes runs as written (ntkc only)."""
    runpy.run_path(str(ROOT / "examples" / "from_neural_tangents.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "agree with the oracle: True" in out

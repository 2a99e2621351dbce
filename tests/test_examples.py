"""Every script in ``examples/`` runs, at the small sizes its ``--small`` flag gives, and computes
what it says (the docs site includes these files as they are)."""

from __future__ import annotations

import pathlib
import runpy

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def example(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")


def test_flax_resnet(capsys):
    pytest.importorskip("flax")
    kernels = example("flax_resnet")["main"](small=True)
    assert kernels["structured"].shape == (2, 2, 10, 10)
    assert "structured and jacobian agree: True" in capsys.readouterr().out


def test_kernel_regression(capsys):
    results = example("kernel_regression")["main"](small=True)
    assert results["dense"].shape == (50, 10)
    np.testing.assert_allclose(results["dense"], results["matrix_free"], rtol=1e-2, atol=1e-2)
    assert np.all(np.diff(results["eigenvalues"]) <= 0) or np.all(np.diff(results["eigenvalues"]) >= 0)
    assert "dense and matrix-free predictions agree: True" in capsys.readouterr().out


def test_large_kernel(capsys, tmp_path):
    k = example("large_kernel")["main"](small=True, folder=str(tmp_path))
    assert k.shape == (300, 300) and np.allclose(k, k.T, rtol=1e-5, atol=1e-5)
    assert (tmp_path / "K.npy").is_file()
    out = capsys.readouterr().out
    assert "a block equals ntk_fn's: True" in out and "resumed" in out


def test_model_file_for_the_cli():
    f, params, x = example("mlp_model")["model"](width=16, outputs=3, batch=2)
    assert f(params, x).shape == (2, 3)


def test_every_example_is_tested_and_on_the_site():
    """A new example needs a test here and a place on the examples page."""
    tested = {"flax_resnet", "kernel_regression", "large_kernel", "mlp_model", "from_neural_tangents"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested
    page = (EXAMPLES.parent / "docs" / "examples.md").read_text(encoding="utf-8")
    for name in tested - {"from_neural_tangents"}:  # that one is on the migration page
        assert f"examples/{name}.py" in page, name

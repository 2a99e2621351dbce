"""``ntkc.predict.gradient_descent_mse``: equal to neural-tangents' on its recorded outputs
(``fixtures/nt_predict.npz``, made by ``fixtures/make_nt_predict.py`` in neural-tangents' own
environment), to a closed form by hand, and — from NTK operators, matrix-free — to the dense
predictions."""

from __future__ import annotations

import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from reference import oracle_ntk

FIXTURE = np.load(pathlib.Path(__file__).parent / "fixtures" / "nt_predict.npz")
CASES = sorted({key.split("/")[0] for key in FIXTURE.files if key.startswith("case")})


def assert_close(got, ref, tol):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * max(float(np.abs(ref).max()), 1e-30))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("when", ["finite", "inf"])
def test_equals_neural_tangents(case, when):
    data = {key.split("/", 1)[1]: FIXTURE[key] for key in FIXTURE.files if key.startswith(case + "/")}
    options = json.loads(str(data["params"]))
    predict = ntkc.predict.gradient_descent_mse(
        data["k_train_train"], data["y_train"], options["learning_rate"], options["diag_reg"],
        options["diag_reg_absolute_scale"], tuple(options["trace_axes"]))
    t = data["t"] if when == "finite" else None
    k, f0, g0 = data["k_test_train"], data["fx_train_0"], data["fx_test_0"]
    train, test = predict(t, f0, g0, k)
    assert_close(train, data[f"{when}/train"], 1e-10)
    assert_close(test, data[f"{when}/test"], 1e-10)
    assert_close(predict(t, f0, None, k), data[f"{when}/train_only"], 1e-10)
    assert_close(predict(t, None, g0, k), data[f"{when}/test_only"], 1e-10)


def test_closed_form_by_hand():
    """A diagonal kernel: each output relaxes to its target at its own rate η·k/n."""
    k = np.diag([2.0, 0.5])
    y = np.array([[1.0], [3.0]])
    f0 = np.array([[0.0], [1.0]])
    predict = ntkc.predict.gradient_descent_mse(k, y, learning_rate=0.5)
    t = np.array([0.0, 1.0, 4.0])
    rates = 0.5 * np.array([2.0, 0.5]) / y.size
    expected = y[None] + np.exp(-np.multiply.outer(t, rates))[..., None] * (f0 - y)[None]
    assert_close(predict(t, f0), expected, 1e-12)
    # a test input equal to the first training input follows it; at t = ∞ it reaches its target
    train, test = predict(t, f0, f0[:1], k[:1])
    assert_close(test, expected[:, :1], 1e-12)
    assert_close(predict(None, f0, f0[:1], k[:1])[1], y[:1], 1e-12)


def model(n, n_test, out=3, width=48):
    rng = np.random.default_rng(11)
    params = {"w": rng.standard_normal((4, width)) / 2, "v": rng.standard_normal((width, out)) / np.sqrt(width)}
    f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
    x, x_test = rng.standard_normal((n, 4)), rng.standard_normal((n_test, 4))
    y = rng.standard_normal((n, out))
    return f, params, x, x_test, y


@pytest.mark.parametrize("trace_axes", [(-1,), ()])
@pytest.mark.parametrize("diag_reg", [0.0, 1e-3])
def test_matrix_free_equals_dense(trace_axes, diag_reg):
    """Operators instead of arrays (test kernel as an operator and as an array): the same
    predictions to 1e-4 relative at finite times and at t = ∞."""
    f, params, x, x_test, y = model(30, 7)
    k = oracle_ntk(f, x, None, params, trace_axes=trace_axes, vmap_axis=(0, 0))
    k_test = oracle_ntk(f, x_test, x, params, trace_axes=trace_axes, vmap_axis=(0, 0))
    f0, g0 = f(params, x), f(params, x_test)
    dense = ntkc.predict.gradient_descent_mse(k, y, 0.7, diag_reg, False, trace_axes)
    op = ntkc.ntk_operator(f, params, x, trace_axes=trace_axes, mode="matrix_free")
    op_test = ntkc.ntk_operator(f, params, x_test, x, trace_axes=trace_axes, mode="matrix_free")
    free = ntkc.predict.gradient_descent_mse(op, y, 0.7, diag_reg, False, trace_axes)
    for t in (np.array([0.0, 3.0, 300.0, 3e4]), None):
        expected = dense(t, f0, g0, k_test)
        for kernel in (op_test, k_test):
            got = free(t, f0, g0, kernel)
            assert_close(got[0], expected[0], 1e-4)
            assert_close(got[1], expected[1], 1e-4)


def test_bad_input_is_named():
    f, params, x, x_test, y = model(6, 2)
    k = oracle_ntk(f, x, None, params, trace_axes=(-1,), vmap_axis=(0, 0))
    with pytest.raises(ValueError, match="`k_train_train` has shape"):
        ntkc.predict.gradient_descent_mse(k, y, trace_axes=())
    predict = ntkc.predict.gradient_descent_mse(k, y)
    with pytest.raises(ValueError, match="both None"):
        predict(1.0, None, None)
    with pytest.raises(ValueError, match="`k_test_train` is None"):
        predict(1.0, 0.0, np.zeros((2, 3)))
    op = ntkc.ntk_operator(f, params, x, trace_axes=(), mode="matrix_free")
    with pytest.raises(ValueError, match="trace the same output axes"):
        ntkc.predict.gradient_descent_mse(op, y, trace_axes=(-1,))
    with pytest.raises(ValueError, match="pairs two sets"):
        ntkc.predict.gradient_descent_mse(ntkc.ntk_operator(f, params, x_test, x, trace_axes=()), y, trace_axes=())


def test_lanczos_budget_warns():
    f, params, x, x_test, y = model(30, 2)
    op = ntkc.ntk_operator(f, params, x, trace_axes=(), mode="matrix_free")
    predict = ntkc.predict.gradient_descent_mse(op, y, trace_axes=(), maxiter=4)
    with pytest.warns(ntkc.ConvergenceWarning, match="Lanczos"):
        predict(np.array([1e3]), f(params, x))

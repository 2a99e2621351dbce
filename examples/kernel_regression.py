"""Kernel regression with the NTK: the kernel as an operator (``ntkc.ntk_operator``), the
predictions of gradient-descent training on the MSE loss (``ntkc.predict.gradient_descent_mse``,
neural-tangents' semantics) at finite and infinite time, and the kernel's spectrum — dense and
matrix-free side by side.

    python examples/kernel_regression.py            # 4,000 training examples
    python examples/kernel_regression.py --small    # 200 (what the tests run)
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import ntkc


def f(params, x):  # a two-layer MLP with 10 logits
    return jnp.tanh(x @ params["w"]) @ params["v"]


def main(small: bool = False) -> dict:
    n_train, n_test = (200, 50) if small else (4000, 500)
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(8, 256)) / np.sqrt(8), jnp.float32),
              "v": jnp.asarray(rng.normal(size=(256, 10)) / 16, jnp.float32)}
    x_train = rng.normal(size=(n_train, 8)).astype(np.float32)
    x_test = rng.normal(size=(n_test, 8)).astype(np.float32)
    teacher = (rng.normal(size=(8, 10)) / np.sqrt(8)).astype(np.float32)
    y_train, y_test = jnp.sin(x_train @ teacher), jnp.sin(x_test @ teacher)  # a smooth target

    results = {}
    for mode in ("dense", "matrix_free"):
        start = time.perf_counter()
        k_train = ntkc.ntk_operator(f, params, x_train, mode=mode)              # (N,) vectors: logits traced
        k_test = ntkc.ntk_operator(f, params, x_test, x_train, mode=mode)       # test <- train
        predict = ntkc.predict.gradient_descent_mse(k_train, y_train, diag_reg=1e-3, rtol=1e-5)  # float32
        fx_train_0, fx_test_0 = f(params, x_train), f(params, x_test)
        _, fx_test = predict(None, fx_train_0, fx_test_0, k_test)              # t = infinity
        _, fx_test_t = predict(100.0, fx_train_0, fx_test_0, k_test)           # after training time 100
        results[mode] = np.asarray(fx_test)
        mse = lambda fx: float(jnp.mean((fx - y_test) ** 2))  # noqa: E731
        print(f"{mode:<12} test MSE: initial {mse(fx_test_0):.4f}, t=100 {mse(fx_test_t):.4f}, "
              f"t=inf {mse(fx_test):.4f}   ({time.perf_counter() - start:.1f} s)")

    # The spectrum: top eigenvalues (Lanczos; never the matrix when matrix-free), exact trace.
    op = ntkc.ntk_operator(f, params, x_train)
    print("auto chose:", op.choice)
    top = np.asarray(op.eigvalsh(5))
    print("top 5 eigenvalues:", np.round(top, 2), " trace:", round(float(op.trace()), 2))
    print("dense and matrix-free predictions agree:",
          np.allclose(results["dense"], results["matrix_free"], rtol=1e-2, atol=1e-2))
    results["eigenvalues"] = top
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="200 training examples")
    main(parser.parse_args().small)

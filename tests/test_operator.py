"""NTK operators (``ntkc.ntk_operator``): products equal the oracle kernel times the vectors in every
mode over the zoo, traced and untraced, pytree inputs, other batch axes and under ``jax.jit``;
the diagonal, solves, eigenvalues, condition number, Frobenius norm and alignment against dense
linear algebra on the oracle; clear errors for bad input."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.testing import ZOO
from reference import oracle_ntk
from zoo_cases import instance, oracle, out_ndim


def as_matrix(kernel: np.ndarray) -> np.ndarray:
    """A kernel in zip layout (N1, N2, A1, A2, ...) as the operator's matrix (N1·A…, N2·A…)."""
    first, second = tuple(range(0, kernel.ndim, 2)), tuple(range(1, kernel.ndim, 2))
    rows = int(np.prod([kernel.shape[a] for a in first]))
    return np.transpose(kernel, first + second).reshape(rows, -1)


def assert_close(got, ref, tol=1e-10):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * max(float(np.abs(ref).max()), 1e-30))


#: Zoo models covering what the operator's bookkeeping depends on: outputs of rank 1 to 4, pytree
#: and integer inputs, control flow, custom derivatives, convolutions, shared weights (the layers
#: themselves are the methods' business, tested over the whole zoo elsewhere).
OPERATOR_MODELS = ("scalar_output", "mlp", "attention", "conv_image_out", "conv_same_nhwc", "pytree_input",
                   "embedding", "token_transformer", "scan_mlp", "cond_model", "remat_block", "custom_jvp_mlp",
                   "custom_vjp_ste", "custom_vjp_fused", "weight_sharing")


def operator_cases():
    """Each model with one trace setting — the full kernel and the logits traced in rotation —
    and one mode in rotation (a pytree output or keyword arguments are errors, tested below)."""
    names = list(OPERATOR_MODELS)
    cases = []
    for i, name in enumerate(names):
        traced = (-1,) if i % 2 and name != "scalar_output" else ()
        mode = ("matrix_free", "dense")[(i // 2) % 2]
        cases.append(pytest.param(name, traced, mode, marks=pytest.mark.xdist_group(name), id=f"{name}-{mode}-{traced}"))
    return cases


@pytest.mark.parametrize("name,trace_axes,mode", operator_cases())
def test_zoo_products_equal_the_oracle(name, trace_axes, mode):
    """``op @ V`` (two vectors) and the dense operator's matrix against the float64 oracle (one
    vector and a matrix-free operator's ``to_dense`` are tested below)."""
    inst = instance(name, jnp.float64)
    op = ntkc.ntk_operator(inst.f, inst.params, inst.x1, trace_axes=trace_axes, mode=mode)
    matrix = as_matrix(oracle(name, trace_axes=trace_axes, vmap=True, same=True))
    vectors = np.random.default_rng(0).standard_normal(op.vector_shape + (2,))
    assert op.shape == matrix.shape
    assert_close(op @ vectors, (matrix @ vectors.reshape(matrix.shape[1], 2)).reshape(vectors.shape))
    if mode == "dense":
        assert_close(op.to_dense(), matrix)


@pytest.mark.parametrize("mode", ["matrix_free", "dense"])
def test_cross_operator_and_image_outputs(mode):
    """x2 given (test ← train) and an image-shaped output with its channels traced: rows
    ``(N, H, W)``."""
    name = "conv_image_out"
    inst = instance(name, jnp.float64)
    op = ntkc.ntk_operator(inst.f, inst.params, inst.x1, inst.x2, trace_axes=(-1,), mode=mode)
    kernel = oracle(name, trace_axes=(-1,), vmap=True, same=False)
    matrix = as_matrix(kernel)
    v = np.random.default_rng(1).standard_normal(op.vector_shape + (3,))
    assert op.vector_shape == (inst.x2.shape[0], 2, 2) and op.output_shape == (inst.x1.shape[0], 2, 2)
    assert_close(op @ v, (matrix @ v.reshape(matrix.shape[1], 3)).reshape(op.output_shape + (3,)))


def shared_leaf_model():
    def f(p, x):
        return jnp.tanh(x["a"] @ p["w"] + x["bias"]) @ p["v"]

    rng = np.random.default_rng(2)
    params = {"w": rng.standard_normal((3, 8)), "v": rng.standard_normal((8, 2))}
    x = {"a": rng.standard_normal((10, 3)), "bias": rng.standard_normal(8)}
    return f, params, x, ({"a": 0, "bias": None}, 0, {})


@pytest.mark.parametrize("mode", ["matrix_free", "dense"])
def test_pytree_inputs_with_a_shared_leaf_in_small_chunks(mode):
    """A pytree input with a leaf every example shares (batch axis None), and a memory budget
    that cuts the matrix-free product into chunks (the last one overlapping the one before)."""
    f, params, x, axes = shared_leaf_model()
    probe = ntkc.ntk_operator(f, params, x, trace_axes=(), vmap_axes=axes, mode="matrix_free")
    probe._held.measure()
    held = probe._held  # 4 examples a chunk for 2 vectors: 0-3, 4-7, 6-9
    limit = 2 * held.vector_bytes + 4 * 2 * held.per_example_bytes
    op = ntkc.ntk_operator(f, params, x, trace_axes=(), vmap_axes=axes, mode=mode,
                           memory_limit=limit if mode == "matrix_free" else None)
    if mode == "matrix_free":
        assert op._held.chunk(2) == 4
    closed = lambda p, a: f(p, {"a": a, "bias": x["bias"]})
    matrix = as_matrix(oracle_ntk(closed, x["a"], None, params, trace_axes=(), vmap_axis=(0, 0)))
    v = np.random.default_rng(3).standard_normal((10, 2, 2))
    expected = (matrix @ v.reshape(20, 2)).reshape(10, 2, 2)
    assert_close(op @ v, expected)  # chunk by chunk from Python
    assert_close(jax.jit(lambda o, u: o @ u)(op, v), expected)  # one program: chunks in a loop


def test_vectors_in_groups_when_their_pulls_fill_the_budget():
    """A budget for the parameter-shaped pulls of 2 vectors at a time: 5 vectors run as 3 groups
    (under ``jax.jit`` the last padded with zero vectors), equal to all at once."""
    f, params, x = wide_model(n=9)
    probe = ntkc.ntk_operator(f, params, x, trace_axes=(-1,), mode="matrix_free")
    probe._held.measure()
    held = probe._held
    op = ntkc.ntk_operator(f, params, x, trace_axes=(-1,), mode="matrix_free",
                           memory_limit=4 * held.vector_bytes + 10 * held.per_example_bytes)
    assert op._held.group(5) == 2
    v = np.random.default_rng(9).standard_normal((9, 5))
    matrix = as_matrix(oracle_ntk(f, x, None, params, trace_axes=(-1,), vmap_axis=(0, 0)))
    assert_close(op @ v, matrix @ v)
    assert_close(jax.jit(lambda o, u: o @ u)(op, v), matrix @ v)


def test_examples_on_another_axis():
    """Inputs ``(D, N)`` and outputs ``(O, N)``: vectors are still ``(N, O)``."""
    rng = np.random.default_rng(4)
    params = {"w": rng.standard_normal((4, 3))}
    f = lambda p, x: jnp.sin(p["w"].T @ x)  # (3, N)
    x = rng.standard_normal((4, 7))
    op = ntkc.ntk_operator(f, params, x, trace_axes=(), vmap_axes=(1, 1, {}), mode="matrix_free")
    ref = oracle_ntk(lambda p, xx: f(p, xx.T).T, x.T, None, params, trace_axes=(), vmap_axis=(0, 0))
    assert op.vector_shape == (7, 3)
    assert_close(op.to_dense(), as_matrix(ref))
    v = rng.standard_normal((7, 3))
    assert_close(op @ v, (as_matrix(ref) @ v.ravel()).reshape(7, 3))


@pytest.mark.parametrize("mode", ["matrix_free", "dense"])
def test_operators_pass_through_jit_with_their_shift(mode):
    inst = instance("mlp", jnp.float64)
    op = ntkc.ntk_operator(inst.f, inst.params, inst.x1, trace_axes=(), mode=mode) + 0.5 * ntkc.identity
    matrix = as_matrix(oracle("mlp", trace_axes=(), vmap=True, same=True)) + 0.5 * np.eye(op.shape[0])
    v = np.random.default_rng(5).standard_normal(op.vector_shape)
    product = jax.jit(lambda o, u: o @ u)
    assert_close(product(op, v), (matrix @ v.ravel()).reshape(v.shape))
    assert_close(op.to_dense(), matrix)
    solution, _ = jax.scipy.sparse.linalg.cg(op, jnp.asarray(v), tol=1e-12, maxiter=200)
    assert_close(solution, np.linalg.solve(matrix, v.ravel()).reshape(v.shape), tol=1e-8)


def test_as_lineax_is_a_psd_operator():
    import lineax

    inst = instance("mlp", jnp.float64)
    op = ntkc.ntk_operator(inst.f, inst.params, inst.x1, trace_axes=(), mode="matrix_free") + 1.0 * ntkc.identity
    linear = op.as_lineax()
    assert lineax.is_positive_semidefinite(linear) and lineax.is_symmetric(linear)
    b = np.random.default_rng(6).standard_normal(op.vector_shape)
    solution = lineax.linear_solve(linear, jnp.asarray(b), lineax.CG(rtol=1e-12, atol=1e-12)).value
    assert_close(solution, np.linalg.solve(op.to_dense(), b.ravel()).reshape(b.shape), tol=1e-8)


@pytest.mark.parametrize("mode", ["matrix_free", "dense"])
def test_diagonal_and_trace_are_exact(mode):
    name = "conv_image_out"
    inst = instance(name, jnp.float64)
    op = ntkc.ntk_operator(inst.f, inst.params, inst.x1, trace_axes=(1,), mode=mode) + 0.25 * ntkc.identity
    matrix = as_matrix(oracle(name, trace_axes=(1,), vmap=True, same=True))
    assert_close(op.diagonal(), np.diagonal(matrix).reshape(op.vector_shape) + 0.25)
    assert abs(op.trace() - (np.trace(matrix) + 0.25 * op.shape[0])) <= 1e-10 * np.trace(matrix)


def wide_model(n=24, width=64):
    """More parameters than kernel rows: a non-singular kernel."""
    rng = np.random.default_rng(7)
    params = {"w": rng.standard_normal((3, width)) / np.sqrt(3), "v": rng.standard_normal((width, 2)) / np.sqrt(width)}
    f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
    return f, params, rng.standard_normal((n, 3))


@pytest.mark.parametrize("mode", ["matrix_free", "dense"])
@pytest.mark.parametrize("trace_axes", [(), (-1,)])
def test_solve_top_eigenvalues_condition_number(mode, trace_axes):
    f, params, x = wide_model()
    op = ntkc.ntk_operator(f, params, x, trace_axes=trace_axes, mode=mode)
    matrix = as_matrix(oracle_ntk(f, x, None, params, trace_axes=trace_axes, vmap_axis=(0, 0)))
    exact = np.linalg.eigvalsh(matrix)[::-1]
    b = np.random.default_rng(8).standard_normal(op.vector_shape + (3,))
    regularized = op + 1e-3 * ntkc.identity
    solution = regularized.solve(b, rtol=1e-10)
    reference = np.linalg.solve(matrix + 1e-3 * np.eye(len(matrix)), b.reshape(len(matrix), 3))
    assert_close(solution.reshape(reference.shape), reference, tol=1e-7)
    values, bounds = op.eigvalsh(5, return_bounds=True)
    assert np.all(np.abs(values - exact[:5]) <= bounds + 1e-10 * exact[0])
    assert np.all(np.diff(values) <= 0)
    assert op.condition_number() == pytest.approx(exact[0] / exact[-1], rel=1e-6)
    assert regularized.condition_number() == pytest.approx((exact[0] + 1e-3) / (exact[-1] + 1e-3), rel=1e-6)


def test_singular_kernel_condition_number_warns():
    """More rows than parameters: the kernel has rank at most P."""
    f, params, x = wide_model(n=40, width=4)
    op = ntkc.ntk_operator(f, params, x, trace_axes=(), mode="matrix_free")
    with pytest.warns(UserWarning, match="singular"):
        assert op.condition_number() == float("inf")


def test_unconverged_solve_warns_with_its_residual():
    f, params, x = wide_model()
    op = ntkc.ntk_operator(f, params, x, trace_axes=(), mode="matrix_free")
    with pytest.warns(ntkc.ConvergenceWarning, match=r"relative residual \d"):
        op.solve(np.ones(op.vector_shape), maxiter=2, preconditioner_rank=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frobenius_norm_and_alignment_within_their_error(seed):
    f, params, x = wide_model(n=60)
    op = ntkc.ntk_operator(f, params, x, trace_axes=(), mode="matrix_free")
    matrix = op.to_dense()
    norm, error = op.frobenius_norm(samples=30, seed=seed)
    assert 0 < error < 0.1 * norm
    assert abs(norm - np.linalg.norm(matrix)) <= error
    y = np.random.default_rng(seed).standard_normal(op.vector_shape)
    value, spread = op.alignment(y, samples=30, seed=seed)
    exact = y.ravel() @ matrix @ y.ravel() / (np.linalg.norm(matrix) * np.linalg.norm(np.outer(y, y)))
    assert abs(value - exact) <= spread
    dense = ntkc.ntk_operator(f, params, x, trace_axes=(), mode="dense")
    assert dense.frobenius_norm() == (pytest.approx(np.linalg.norm(matrix), rel=1e-12), 0.0)


def test_auto_prices_the_modes():
    f, params, x = wide_model(n=30)
    few = ntkc.ntk_operator(f, params, x, expected_products=1)
    many = ntkc.ntk_operator(f, params, x, expected_products=10**7)
    tight = ntkc.ntk_operator(f, params, x, expected_products=10**7, memory_limit=1000)
    assert few.choice.mode == "matrix_free" and many.choice.mode == "dense"
    assert many.choice.dense_seconds < many.choice.matrix_free_seconds
    assert tight.mode == "matrix_free" and "does not fit" in tight.choice.reason
    v = np.ones(few.vector_shape)
    assert_close(few @ v, many @ v)


def test_bad_input_is_named():
    f, params, x = wide_model(n=5)
    op = ntkc.ntk_operator(f, params, x)
    with pytest.raises(ValueError, match=r"vectors of shape \(5,\)"):
        op @ np.ones((5, 2, 3))
    with pytest.raises(ValueError, match="`mode`"):
        ntkc.ntk_operator(f, params, x, mode="fast")
    with pytest.raises(ValueError, match="vmap_axes=None"):
        ntkc.ntk_operator(f, params, x, vmap_axes=None)
    with pytest.raises(ValueError, match="examples' axis"):
        ntkc.ntk_operator(f, params, x, trace_axes=(0,))
    with pytest.raises(TypeError, match="pytree"):
        ntkc.ntk_operator(lambda p, xx: {"a": f(p, xx)}, params, x)
    with pytest.raises(TypeError, match=r"lam \* ntkc.identity|ntkc.identity"):
        op + 3.0
    with pytest.raises(ValueError, match="`k`"):
        op.eigvalsh(0)
    cross = ntkc.ntk_operator(f, params, x, x[:2])
    with pytest.raises(ValueError, match="square operator"):
        cross.solve(np.ones(2))
    widen = lambda p, xx: (xx[..., None] * p["s"]).reshape(xx.shape[0], -1)
    with pytest.raises(ValueError, match="untraced shape"):
        ntkc.ntk_operator(widen, {"s": np.ones(2)}, np.ones((5, 3)), np.ones((2, 4)), trace_axes=())

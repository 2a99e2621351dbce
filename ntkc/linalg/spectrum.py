"""Spectrum and norms of an NTK operator: top eigenvalues, condition number, Frobenius norm,
kernel-target alignment.

Top eigenvalues use ARPACK's implicitly restarted Lanczos (``scipy.sparse.linalg.eigsh``, with
full reorthogonalization) on a matrix-free operator and LAPACK's partial ``eigh`` on a dense one;
each value comes with the residual bound ``‖K u − λ u‖`` of its unit Ritz vector u, which bounds
``|λ − λ_true|`` for a symmetric K. The Frobenius norm of a matrix-free operator is estimated by
Hutch++ (Meyer, Musco, Musco and Woodruff 2021) applied to ``tr(K²) = ‖K‖_F²``.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from ntkc.errors import ConvergenceWarning
from ntkc.linalg.krylov import lanczos_smallest
from ntkc.linalg.solve import host_product, precision


def _ncv(k: int, n: int) -> int:
    return min(n, max(2 * k + 1, 20))


def _dense_top(op, k: int) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.asarray(op.to_dense(), np.float64)
    n = matrix.shape[0]
    values, vectors = scipy.linalg.eigh(matrix, subset_by_index=[n - k, n - 1])
    values, vectors = values[::-1], vectors[:, ::-1]
    return values, np.linalg.norm(matrix @ vectors - vectors * values, axis=0)


def _arpack(op, k: int, which: str, tol: float) -> tuple[np.ndarray, np.ndarray]:
    n = op.shape[0]
    product = host_product(op)
    linear = scipy.sparse.linalg.LinearOperator((n, n), matvec=lambda v: product(v.reshape(n, 1))[:, 0],
                                                matmat=product, dtype=np.float64)
    start = np.random.default_rng(0).standard_normal(n)
    try:
        values, vectors = scipy.sparse.linalg.eigsh(linear, k=k, which=which, tol=tol, ncv=_ncv(k, n), v0=start)
    except scipy.sparse.linalg.ArpackNoConvergence as e:
        values, vectors = e.eigenvalues, e.eigenvectors
        warnings.warn(f"Lanczos (ARPACK) converged {len(values)} of {k} eigenvalues within its iteration budget; "
                      "those are returned — raise `tol`", ConvergenceWarning, stacklevel=4)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    bounds = np.linalg.norm(product(vectors) - vectors * values, axis=0) if len(values) else values
    return values, bounds


def top_eigenvalues(op, k: int, *, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """``(values, bounds)``: the ``k`` largest eigenvalues, largest first, and their residual
    bounds."""
    n = op.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"`k` must be an int in 1 .. {n} (the operator's size), got {k!r}")
    op._held.decide(4 * _ncv(k, n))
    if op.mode == "dense" or k >= n - 1:
        return _dense_top(op, k)
    return _arpack(op, k, "LA", tol)


def parameter_count(op) -> int:
    return sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(op._held.params))


def condition_number(op, *, tol: float = 1e-6) -> float:
    """``λ_max / λ_min``, ``inf`` with a warning for a singular kernel."""
    n = op.shape[0]
    count = parameter_count(op)
    if n > count and not op.shift:
        warnings.warn(f"the kernel is singular: its {n} rows are Jacobian products of rank at most the model's "
                      f"{count} parameters; the condition number is inf", UserWarning, stacklevel=3)
        return float("inf")
    op._held.decide(8 * _ncv(1, n))
    if op.mode == "dense" or n <= 2:
        values = np.linalg.eigvalsh(np.asarray(op.to_dense(), np.float64))
        largest, smallest = values[-1], values[0]
    else:
        largest = _arpack(op, 1, "LA", tol)[0][0]
        smallest = lanczos_smallest(host_product(op), n, rtol=tol)[0]
    if smallest <= n * precision(op) * largest:
        warnings.warn(f"the kernel is singular to working precision (λ_min = {smallest:.3g}, λ_max = {largest:.3g}); "
                      "the condition number is inf", UserWarning, stacklevel=3)
        return float("inf")
    return float(largest / smallest)


def frobenius_norm(op, *, samples: int = 60, seed: int = 0) -> tuple[float, float]:
    """``(estimate, error)`` of ``‖K‖_F`` (exact for a dense operator)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 3:
        raise ValueError(f"`samples` must be an int ≥ 3, got {samples!r}")
    n = op.shape[0]
    third = max(1, samples // 3)
    op._held.decide(4 * third)
    if op.mode == "dense" or third >= n:
        return float(np.linalg.norm(np.asarray(op.to_dense(), np.float64))), 0.0
    product = host_product(op)
    rng = np.random.default_rng(seed)
    sketch, probes = rng.standard_normal((n, third)), rng.standard_normal((n, third))
    basis, _ = np.linalg.qr(product(product(sketch)))
    low_rank = float(np.sum(product(basis) ** 2))
    rest = probes - basis @ (basis.T @ probes)
    per_probe = np.sum(product(rest) ** 2, axis=0)
    square = low_rank + per_probe.mean()
    spread = 3 * per_probe.std(ddof=1) / np.sqrt(third) if third > 1 else abs(per_probe[0])
    norm = float(np.sqrt(max(square, 0.0)))
    return norm, float(spread / (2 * norm)) if norm else 0.0


def alignment(op, y, *, samples: int = 60, seed: int = 0) -> tuple[float, float]:
    """``(estimate, error)`` of ``⟨K, Y Yᵀ⟩_F / (‖K‖_F ‖Y Yᵀ‖_F)``."""
    vectors, _ = op._vectors(y)
    targets = np.asarray(vectors, np.float64).reshape(op.shape[0], -1)
    inner = float(np.sum(targets * host_product(op)(targets)))
    gram = float(np.linalg.norm(targets.T @ targets))
    if gram == 0:
        raise ValueError("`y` is zero: the alignment with a zero target is undefined")
    norm, error = frobenius_norm(op, samples=samples, seed=seed)
    value = inner / (norm * gram)
    return value, abs(value) * error / norm if norm else 0.0

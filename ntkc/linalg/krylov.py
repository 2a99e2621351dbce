"""Krylov methods over a batched product: conjugate gradients and Lanczos for ``f(A) b``.

Both run on the host in float64 and call ``matvec(V)`` (``V`` of shape ``(n, k)``: k vectors at
once) for the products, so a matrix-free NTK product runs one VJP/JVP sweep for every right-hand
side together. Both treat the k columns as k independent problems (their own step sizes, their
own convergence), which a library CG solving the stacked system as one vector does not.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable, Sequence

import numpy as np

from ntkc.errors import ConvergenceWarning


@dataclasses.dataclass(frozen=True)
class KrylovInfo:
    """How a Krylov run ended.

    Attributes:
      iterations: products taken (each of up to k vectors).
      residuals: each column's relative residual ``‖b − A x‖ / ‖b‖`` (CG: recomputed from a
        final product) or relative change of its last update (Lanczos).
      converged: every column reached the tolerance.
    """

    iterations: int
    residuals: np.ndarray
    converged: bool


def cg(matvec: Callable, b: np.ndarray, *, precondition: Callable | None = None, rtol: float = 1e-6,
       maxiter: int = 500, what: str = "conjugate gradients") -> tuple[np.ndarray, KrylovInfo]:
    """Solve ``A x = b`` for symmetric positive (semi-)definite ``A``, columnwise, by
    preconditioned conjugate gradients; ``precondition(R)`` applies ``P⁻¹ ≈ A⁻¹``.

    A column stops when its recurrence residual is below ``rtol·‖b‖``; a run that does not get
    every column there within ``maxiter`` products warns (:class:`ntkc.ConvergenceWarning`)
    with the residual reached.

    >>> A = np.diag([1.0, 2.0, 4.0])
    >>> x, info = cg(lambda v: A @ v, np.ones((3, 1)))
    >>> np.round(x.ravel(), 6).tolist(), info.converged
    ([1.0, 0.5, 0.25], True)
    """
    b = np.asarray(b, np.float64)
    precondition = precondition or (lambda r: r)
    norms = np.linalg.norm(b, axis=0)
    norms[norms == 0] = 1.0
    x = np.zeros_like(b)
    r = b.copy()
    z = precondition(r)
    p = z.copy()
    rz = np.sum(r * z, axis=0)
    active = np.linalg.norm(r, axis=0) > rtol * norms
    iterations = 0
    while active.any() and iterations < maxiter:
        cols = np.flatnonzero(active)
        ap = np.asarray(matvec(p[:, cols]), np.float64)
        iterations += 1
        curvature = np.sum(p[:, cols] * ap, axis=0)
        alpha = np.where(curvature > 0, rz[cols] / np.where(curvature > 0, curvature, 1.0), 0.0)
        x[:, cols] += alpha * p[:, cols]
        r[:, cols] -= alpha * ap
        z_cols = precondition(r[:, cols])
        rz_new = np.sum(r[:, cols] * z_cols, axis=0)
        beta = np.where(rz[cols] > 0, rz_new / np.where(rz[cols] > 0, rz[cols], 1.0), 0.0)
        p[:, cols] = z_cols + beta * p[:, cols]
        rz[cols] = rz_new
        done = (np.linalg.norm(r[:, cols], axis=0) <= rtol * norms[cols]) | (curvature <= 0)
        active[cols[done]] = False
    true = np.linalg.norm(b - np.asarray(matvec(x), np.float64), axis=0) / norms
    info = KrylovInfo(iterations, true, bool(np.all(true <= max(rtol, 1e-15) * 10)))
    if not info.converged:
        warnings.warn(f"{what} did not converge in {iterations} iterations (maxiter {maxiter}): relative "
                      f"residual {true.max():.3g} against rtol {rtol:g}; raise `maxiter`, the preconditioner's "
                      "rank, or the regularization", ConvergenceWarning, stacklevel=3)
    return x, info


@dataclasses.dataclass(frozen=True)
class Lanczos:
    """A Lanczos decomposition ``A Q ≈ Q T`` per column of a starting block ``b``.

    ``apply(fn)`` gives ``f(A) b ≈ ‖b‖ Q f(T) e₁`` for a function ``fn`` of eigenvalues (vectorized),
    from the eigendecomposition ``T = V diag(λ) Vᵀ`` of each column's tridiagonal matrix.

    Attributes:
      basis: ``(k, m, n)`` orthonormal Krylov bases.
      values: ``(k, m)`` eigenvalues of the tridiagonal matrices (Ritz values).
      vectors: ``(k, m, m)`` their eigenvectors (columns).
      norms: ``(k,)`` the starting columns' norms.
    """

    basis: np.ndarray
    values: np.ndarray
    vectors: np.ndarray
    norms: np.ndarray

    def apply(self, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        weights = fn(self.values) * self.vectors[:, 0, :]  # f(λ_j) (Vᵀ e₁)_j
        coefficients = np.einsum("kij,kj->ki", self.vectors, weights) * self.norms[:, None]
        return np.einsum("ki,kin->nk", coefficients, self.basis)


def _tridiagonal(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    m = alpha.shape[-1]
    t = np.zeros(alpha.shape[:-1] + (m, m))
    idx = np.arange(m)
    t[..., idx, idx] = alpha
    t[..., idx[:-1], idx[1:]] = beta[..., : m - 1]
    t[..., idx[1:], idx[:-1]] = beta[..., : m - 1]
    return t


def _decomposition(basis, alpha, beta, norms) -> Lanczos:
    values, vectors = np.linalg.eigh(_tridiagonal(alpha, beta))
    return Lanczos(basis, values, vectors, norms)


def _lanczos_steps(matvec: Callable, b: np.ndarray, limit: int):
    """Lanczos with full reorthogonalization on each column of ``b``; yields
    ``(m, basis, alpha, beta, exhausted)`` after each step (``beta[:, m-1]`` couples step m to
    the next; ``exhausted``: the column's Krylov space is invariant, its decomposition exact)."""
    n, k = b.shape
    norms = np.linalg.norm(b, axis=0)
    basis = np.zeros((k, limit, n))
    alpha = np.zeros((k, limit))
    beta = np.zeros((k, limit))
    basis[:, 0] = (b / np.where(norms > 0, norms, 1.0)).T
    exhausted = norms == 0
    for j in range(limit):
        w = np.array(matvec(basis[:, j].T), np.float64).T  # (k, n)
        alpha[:, j] = np.einsum("kn,kn->k", w, basis[:, j])
        for _ in range(2):  # full reorthogonalization, twice is enough
            w -= np.einsum("kmn,km->kn", basis[:, : j + 1], np.einsum("kmn,kn->km", basis[:, : j + 1], w))
        beta[:, j] = np.where(exhausted, 0.0, np.linalg.norm(w, axis=1))
        exhausted = exhausted | (beta[:, j] <= 1e-12 * np.maximum(np.abs(alpha[:, : j + 1]).max(axis=1), 1e-300))
        beta[:, j] = np.where(exhausted, 0.0, beta[:, j])
        if j + 1 < limit:
            basis[:, j + 1] = w / np.where(beta[:, j] > 0, beta[:, j], 1.0)[:, None]
        yield j + 1, basis, alpha, beta, exhausted


def lanczos_functions(matvec: Callable, b: np.ndarray, functions: Sequence[Callable], *, rtol: float = 1e-8,
                      maxiter: int = 300, check_every: int = 4,
                      what: str = "Lanczos") -> tuple[list[np.ndarray], KrylovInfo]:
    """``[f(A) b for f in functions]`` for symmetric ``A`` (columns of b independently), by Lanczos
    with full reorthogonalization, grown until every ``f(A) b`` changes by less than
    ``rtol`` (relative) between checks, or the Krylov space is exhausted (then exact).

    >>> A = np.diag([0.0, 1.0, 3.0])
    >>> (y,), info = lanczos_functions(lambda v: A @ v, np.ones((3, 1)), [np.exp])
    >>> np.allclose(y.ravel(), np.exp([0.0, 1.0, 3.0])), info.converged
    (True, True)
    """
    b = np.asarray(b, np.float64)
    n, k = b.shape
    norms = np.linalg.norm(b, axis=0)
    limit = min(maxiter, n)
    previous, change, m, exhausted = None, np.full(k, np.inf), 0, np.zeros(k, bool)
    for m, basis, alpha, beta, exhausted in _lanczos_steps(matvec, b, limit):
        if m % check_every and not exhausted.all() and m < limit:
            continue
        decomposition = _decomposition(basis[:, :m], alpha[:, :m], beta[:, :m], norms)
        current = [decomposition.apply(fn) for fn in functions]
        if previous is not None:
            change = np.max([np.linalg.norm(c - p, axis=0) / np.maximum(np.linalg.norm(c, axis=0), 1e-300)
                             for c, p in zip(current, previous)], axis=0)
            change = np.where(exhausted, 0.0, change)
        previous = current
        if exhausted.all() or np.all(change <= rtol):
            break
    converged = bool(exhausted.all() or np.all(change <= rtol))
    info = KrylovInfo(m, np.where(exhausted, 0.0, change), converged)
    if not converged:
        warnings.warn(f"{what} did not converge in {m} iterations (maxiter {maxiter}): last relative change "
                      f"{np.max(change):.3g} against rtol {rtol:g}; raise `maxiter`", ConvergenceWarning,
                      stacklevel=3)
    return previous, info


def lanczos_smallest(matvec: Callable, n: int, *, rtol: float = 1e-6, maxiter: int = 1000,
                     seed: int = 0) -> tuple[float, float, KrylovInfo]:
    """``(λ_min estimate, bound, info)`` of a symmetric ``A``: the smallest Ritz value of a
    Lanczos run from a random start, grown until its residual bound ``β_m |s_m|`` (which bounds
    its distance to an eigenvalue of A) is below ``rtol`` times the value (or the space is
    exhausted: with full reorthogonalization, n steps are exact).

    >>> value, bound, info = lanczos_smallest(lambda v: np.diag([5.0, 2.0, 0.5]) @ v, 3)
    >>> round(value, 9), info.converged
    (0.5, True)
    """
    start = np.random.default_rng(seed).standard_normal((n, 1))
    limit = min(maxiter, n)
    value, bound, m, exhausted = np.inf, np.inf, 0, np.zeros(1, bool)
    for m, basis, alpha, beta, exhausted in _lanczos_steps(matvec, start, limit):
        if m % 5 and not exhausted.all() and m < limit:
            continue
        values, vectors = np.linalg.eigh(_tridiagonal(alpha[:, :m], beta[:, :m])[0])
        value, bound = values[0], 0.0 if exhausted[0] else abs(beta[0, m - 1] * vectors[-1, 0])
        if bound <= rtol * max(abs(value), 1e-300 * abs(values[-1])):
            break
    converged = bool(exhausted[0] or bound <= rtol * max(abs(value), 1e-300) or m == n)
    info = KrylovInfo(m, np.array([bound]), converged)
    if not converged:
        warnings.warn(f"Lanczos for the smallest eigenvalue stopped at {m} iterations (maxiter {maxiter}) with "
                      f"residual bound {bound:.3g} on λ_min ≈ {value:.3g}", ConvergenceWarning, stacklevel=3)
    return float(value), float(bound), info

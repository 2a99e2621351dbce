"""``op.solve(b)``: ``(K + μI) x = b`` by a kept Cholesky factor (dense) or preconditioned
conjugate gradients (matrix-free)."""

from __future__ import annotations

import warnings
from typing import Callable

import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ntkc.linalg.krylov import KrylovInfo, cg
from ntkc.linalg.nystrom import Nystrom

#: Conjugate-gradient iterations the mode choice expects on top of the preconditioner's sketch.
EXPECTED_ITERATIONS = 50


def default_rank(n: int) -> int:
    """The Nyström preconditioner's default rank: 100, at most a quarter of the rows.

    >>> default_rank(10_000), default_rank(40)
    (100, 10)
    """
    return max(1, min(100, n // 4))


def host_product(op) -> Callable[[np.ndarray], np.ndarray]:
    """``V (n, k) ↦ op @ V`` on flat float64 host arrays (the Krylov methods' view of ``op``)."""
    shape = op.vector_shape

    def product(v: np.ndarray) -> np.ndarray:
        k = v.shape[1]
        out = op.matvec(jnp.asarray(v.reshape(shape + (k,)), op.dtype))
        return np.array(out, np.float64).reshape(-1, k)

    return product


def precision(op) -> float:
    return float(np.finfo(np.dtype(op.dtype)).eps)


def _factor(op):
    """The dense operator's Cholesky factor of ``K + μI`` (kept on the operator for its shift);
    None when it is not positive definite."""
    held = op._held
    factors = held.factors
    key = float(op.shift)
    if key not in factors:
        matrix = np.asarray(held.matrix, np.float64) + key * np.eye(op.shape[0])
        try:
            factors[key] = ("cholesky", scipy.linalg.cho_factor(matrix, lower=True))
        except np.linalg.LinAlgError:
            values, vectors = np.linalg.eigh(matrix)
            factors[key] = ("eigh", (values, vectors))
    return factors[key]


def _dense_solve(op, b: np.ndarray) -> np.ndarray:
    kind, factor = _factor(op)
    if kind == "cholesky":
        return scipy.linalg.cho_solve(factor, b)
    values, vectors = factor
    cutoff = values.max() * op.shape[0] * np.finfo(np.float64).eps * 10
    warnings.warn(f"the kernel (+ {op.shift}·I) is singular (smallest eigenvalue {values.min():.3g}); solve "
                  "returns the least-squares solution of least norm — add a regularization "
                  "`op + lam * ntkc.identity` for a unique one", UserWarning, stacklevel=4)
    inverse = np.where(values > cutoff, 1.0 / np.where(values > cutoff, values, 1.0), 0.0)
    return vectors @ (inverse[:, None] * (vectors.T @ b))


def solve(op, b, *, rtol: float = 1e-6, maxiter: int | None = None, rank: int | None = None,
          seed: int = 0, info: list | None = None):
    """``x`` with ``op @ x = b``; ``info`` (a list) receives the :class:`KrylovInfo` of a
    matrix-free solve."""
    vectors, single = op._vectors(b)
    n = op.shape[0]
    k = vectors.shape[-1]
    rank = default_rank(n) if rank is None else rank
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"`preconditioner_rank` must be a positive int, got {rank!r}")
    op._held.decide(rank + EXPECTED_ITERATIONS * k)
    flat = np.asarray(vectors, np.float64).reshape(n, k)
    if op.mode == "dense":
        op._held.build()
        x = _dense_solve(op, flat)
    else:
        product = host_product(op)
        approx = Nystrom.sketch(product, n, rank=min(rank, n), seed=seed, precision=precision(op))
        x, run = cg(product, flat, precondition=approx.preconditioner(0.0), rtol=rtol,
                    maxiter=maxiter or max(100, 10 * EXPECTED_ITERATIONS), what="solve (conjugate gradients)")
        if info is not None:
            info.append(run)
    x = x.reshape(op.vector_shape + (k,)).astype(np.dtype(op.dtype))
    return x[..., 0] if single else x


__all__ = ["solve", "default_rank", "host_product", "KrylovInfo"]

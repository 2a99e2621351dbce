"""A randomized Nyström preconditioner for ``A + μI`` (A symmetric positive semi-definite).

From one product with a random ``n × r`` block Ω (orthonormalized), ``Y = A Ω`` gives the rank-r
Nyström approximation ``Â = Y (Ωᵀ Y)⁺ Yᵀ = U diag(λ) Uᵀ`` (computed stably with a small shift ν,
after Tropp, Yurtsever, Udell and Cevher 2017), and

    P⁻¹ = (λ_r + μ) U (diag(λ) + μ)⁻¹ Uᵀ + (I − U Uᵀ)

(Frangella, Tropp and Udell 2023): it maps the r largest eigen-directions of ``A + μI`` to about
``λ_r + μ``, so conjugate gradients then converge at the rate of the rest of the spectrum. NTK
spectra fall fast — a few directions hold most of the trace — so a small rank does most of it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import scipy.linalg


@dataclasses.dataclass(frozen=True)
class Nystrom:
    """``A ≈ U diag(values) Uᵀ``.

    >>> A = np.diag([100.0, 10.0, 1.0, 0.1])
    >>> approx = Nystrom.sketch(lambda v: A @ v, 4, rank=4, seed=0, precision=1e-12)
    >>> np.round(approx.values, 6).tolist()
    [100.0, 10.0, 1.0, 0.1]
    """

    vectors: np.ndarray  # (n, r)
    values: np.ndarray   # (r,) descending

    @classmethod
    def sketch(cls, matvec: Callable, n: int, *, rank: int, seed: int, precision: float) -> "Nystrom":
        """The rank-``rank`` approximation from one product with ``rank`` random vectors;
        ``precision``: the products' relative rounding (e.g. float32's 1.2e-7)."""
        omega, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, rank)))
        y = np.asarray(matvec(omega), np.float64)
        shift = np.sqrt(n) * precision * np.linalg.norm(y, 2)
        y = y + shift * omega
        core = omega.T @ y
        core = (core + core.T) / 2
        try:
            lower = scipy.linalg.cholesky(core, lower=True)
        except np.linalg.LinAlgError:  # rounding left the core indefinite: lift it a little more
            lift = abs(np.linalg.eigvalsh(core).min()) + shift
            lower = scipy.linalg.cholesky(core + lift * np.eye(rank), lower=True)
        b = scipy.linalg.solve_triangular(lower, y.T, lower=True).T
        u, s, _ = np.linalg.svd(b, full_matrices=False)
        return cls(u, np.maximum(s ** 2 - shift, 0.0))

    def preconditioner(self, mu: float) -> Callable[[np.ndarray], np.ndarray]:
        """``R ↦ P⁻¹ R`` for ``A + μI``."""
        floor = max(self.values[-1] + mu, 1e-12 * max(self.values[0], 1e-300))
        scale = floor / np.maximum(self.values + mu, floor)
        u = self.vectors

        def apply(r: np.ndarray) -> np.ndarray:
            coefficients = u.T @ r
            return r + u @ ((scale[:, None] - 1.0) * coefficients)

        return apply

"""Do all methods compute the same kernel? Relative Frobenius errors between saved kernels.

The benchmark saves every method's kernel of a configuration (``worker.py --save``) and
compares them here, so its timings compare equal work.

Usage::

    errors = relative_errors({"jax_jacobian": "a.npy", "structured": "b.npy"})
    # {"jax_jacobian": 0.0, "structured": 3.1e-07}: each against the reference (the first)
"""

from __future__ import annotations

import numpy as np

#: Largest relative Frobenius error (float32 kernels) counted as agreement.
TOLERANCE = 1e-4


def relative_errors(paths: dict[str, str]) -> dict[str, float]:
    """``‖K_m − K_ref‖_F / ‖K_ref‖_F`` for every method ``m``; the reference is the first entry."""
    if not paths:
        return {}
    kernels = {m: np.load(p).astype(np.float64) for m, p in paths.items()}
    ref = next(iter(kernels.values()))
    norm = np.linalg.norm(ref) or 1.0
    return {m: float(np.linalg.norm(k - ref) / norm) if k.shape == ref.shape else float("inf")
            for m, k in kernels.items()}

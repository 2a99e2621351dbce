"""Linear algebra on NTK operators, matrix-free or dense: solves, spectra, norms.

:mod:`ntkc.linalg.krylov` holds batched conjugate gradients and Lanczos for ``f(A) b``,
:mod:`ntkc.linalg.nystrom` the randomized Nyström preconditioner, :mod:`ntkc.linalg.solve`
``op.solve``, :mod:`ntkc.linalg.spectrum` eigenvalues, condition number, Frobenius norm and
alignment. Eigenvalues use SciPy's ARPACK (installed with JAX); the Krylov methods of
:mod:`ntkc.linalg.krylov` are ntkc's own because they solve many right-hand sides with one
batched product per iteration, each to its own tolerance.
"""

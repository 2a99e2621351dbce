"""Outputs of a network trained by gradient descent on the MSE loss, predicted by its NTK.

Under gradient flow on ``L = ‖f(x_train) − y‖² / (2 n)`` (``n = y.size``) with learning rate η,
a network that stays linear in its parameters has (``K`` the train kernel plus its diagonal
regularization, ``s = η t / n``, ``r = f_train(0) − y``):

    f_train(t) = f_train(0) + expm1(−s K) r
    f_test(t)  = f_test(0)  + K_test,train K⁻¹ expm1(−s K) r     (→ − K_test,train K⁻¹ r at t = ∞)

A kernel array is diagonalized once (``eigh``, kept) for finite times and factored once
(Cholesky, kept) for ``t = None``; an :class:`ntkc.NTKOperator` never forms the matrix: conjugate
gradients with a Nyström preconditioner for ``t = None``, Lanczos for the matrix functions at
finite times (one Krylov space serves every ``t``). A kernel traced over output axes stands
for ``K ⊗ I`` on them: each traced component is its own right-hand side.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ntkc.axes import canonicalize_axes
from ntkc.linalg.krylov import lanczos_functions
from ntkc.linalg.solve import host_product
from ntkc.operator.core import NTKOperator, identity


def _positive_part(values):
    return np.maximum(values, 0.0)


def expm1_of(s: np.ndarray):
    """``λ ↦ expm1(−s λ)`` on eigenvalues (negative rounding clamped to 0), for each ``s``.

    >>> np.round(expm1_of(np.array([1.0]))(np.array([0.0, 2.0])), 4).tolist()
    [[-0.0, -0.8647]]
    """
    return lambda values: np.expm1(-np.multiply.outer(s, _positive_part(values)))


def expm1_over_of(s: np.ndarray):
    """``λ ↦ expm1(−s λ) / λ`` on eigenvalues (its limit ``−s`` at ``λ = 0``), for each ``s``.

    >>> np.round(expm1_over_of(np.array([1.0]))(np.array([0.0, 2.0])), 4).tolist()
    [[-1.0, -0.4323]]
    """
    def fn(values):
        lam = _positive_part(values)
        scaled = np.multiply.outer(s, lam)
        safe = np.where(lam > 0, lam, 1.0)
        return np.where(lam > 0, np.expm1(-scaled) / safe, -np.multiply.outer(s, np.ones_like(lam)))
    return fn


class _Targets:
    """``y_train``'s axes: the kernel's (untraced) axes first, the traced ones last, flattened
    to a matrix ``(rows, T)`` and back."""

    def __init__(self, y_train, trace_axes: Sequence[int]):
        self.y = jnp.asarray(y_train)
        self.traced = canonicalize_axes(trace_axes, self.y.ndim, argname="trace_axes")
        self.kept = tuple(a for a in range(self.y.ndim) if a not in self.traced)
        self.kept_shape = tuple(self.y.shape[a] for a in self.kept)
        self.traced_shape = tuple(self.y.shape[a] for a in self.traced)
        self.order = self.kept + self.traced

    @property
    def rows(self) -> int:
        return math.prod(self.kept_shape)

    @property
    def columns(self) -> int:
        return math.prod(self.traced_shape)

    def flat(self, value) -> np.ndarray:
        value = np.broadcast_to(np.asarray(value, np.float64), self.y.shape)
        return np.transpose(value, self.order).reshape(self.rows, self.columns)

    def unflat(self, flat: np.ndarray, kept_shape=None, leading: tuple = ()) -> np.ndarray:
        """``(*leading, rows, T)`` back to y's axis order (``kept_shape``: another side's)."""
        kept_shape = self.kept_shape if kept_shape is None else kept_shape
        value = np.asarray(flat).reshape(leading + kept_shape + self.traced_shape)
        lead = len(leading)
        positions = {a: lead + i for i, a in enumerate(self.kept + self.traced)}
        return np.transpose(value, tuple(range(lead)) + tuple(positions[a] for a in range(self.y.ndim)))


def _matrix(k: np.ndarray) -> np.ndarray:
    """A kernel in zip layout ``(N1, N2, A1, A2, ...)`` as the matrix ``(N1·A1·…, N2·A2·…)``."""
    k = np.asarray(k, np.float64)
    half = k.ndim // 2
    first, second = tuple(range(0, k.ndim, 2)), tuple(range(1, k.ndim, 2))
    rows = math.prod(k.shape[a] for a in first)
    return np.transpose(k, first + second).reshape(rows, -1), tuple(k.shape[a] for a in first[:half])


def _check_kernel(name: str, k, targets: _Targets, test: bool = False):
    shape = tuple(np.shape(k))
    if len(shape) != 2 * len(targets.kept_shape) or (not test and shape[0::2] != targets.kept_shape) \
            or shape[1::2] != targets.kept_shape:
        expected = "zip(y_test's, y_train's) untraced shapes" if test else \
            f"{tuple(d for pair in zip(targets.kept_shape, targets.kept_shape) for d in pair)}"
        raise ValueError(f"`{name}` has shape {shape}; with y_train of shape {tuple(targets.y.shape)} and "
                         f"trace_axes {targets.traced} it must be {expected} (y's untraced axes, paired)")


def _regularizer(diag_reg: float, absolute: bool, trace: float, dimension: int) -> float:
    return float(diag_reg) if absolute else float(diag_reg) * trace / dimension


def gradient_descent_mse(k_train_train, y_train, learning_rate: float = 1.0, diag_reg: float = 0.0,
                         diag_reg_absolute_scale: bool = False, trace_axes: Sequence[int] = (-1,), *,
                         rtol: float = 1e-8, maxiter: int | None = None):
    """Predict the outputs of gradient-descent training on the MSE loss from the NTK, at any time.

    Same arguments, semantics and returned function as neural-tangents'
    ``nt.predict.gradient_descent_mse``: ``predict_fn(t=None, fx_train_0=0., fx_test_0=None,
    k_test_train=None)`` returns the train predictions, or ``(train, test)`` when ``fx_test_0``
    is given, or the test ones alone when ``fx_train_0`` is None (then taken as 0 in the
    right-hand side, as neural-tangents does); ``t`` (scaled by ``learning_rate``) may be an array
    — its shape leads the outputs — and ``t = None`` is the end of training (the train prediction
    is then ``y_train``). Kernels are in neural-tangents' (and :func:`ntkc.ntk_fn`'s) layout:
    ``k_train_train`` has y_train's untraced axes paired, ``zip(y.shape, y.shape)`` without
    ``trace_axes``, and stands for ``K ⊗ I`` over the traced ones.

    ``k_train_train`` may be an :func:`ntkc.ntk_operator` of the training inputs (same call):
    nothing then forms the matrix — conjugate gradients (randomized Nyström preconditioner) for
    ``t = None``, Lanczos for finite t — and ``k_test_train`` may be an operator too
    (``ntkc.ntk_operator(f, params, x_test, x_train)``) or an array. ``rtol`` and ``maxiter``
    bound those iterations; one that stops short warns (:class:`ntkc.ConvergenceWarning`).
    ``diag_reg`` is relative to the kernel's mean diagonal unless ``diag_reg_absolute_scale``.

    One difference: at an eigenvalue 0 of the train kernel, the test prediction's factor
    ``expm1(−sλ)/λ`` takes its limit ``−s`` (neural-tangents divides by 0).

    >>> import numpy as np, ntkc
    >>> k = np.array([[2.0, 0.5], [0.5, 1.0]]); y = np.array([[1.0], [-1.0]])
    >>> predict = ntkc.predict.gradient_descent_mse(k, y)
    >>> train, test = predict(t=None, fx_train_0=0.0, fx_test_0=np.zeros((1, 1)), k_test_train=k[:1])
    >>> np.round(np.asarray(test), 6).tolist()     # the test input is the first training input
    [[1.0]]
    """
    targets = _Targets(y_train, trace_axes)
    if isinstance(k_train_train, NTKOperator):
        return _OperatorPredictor(k_train_train, targets, learning_rate, diag_reg, diag_reg_absolute_scale,
                                  rtol, maxiter).predict
    _check_kernel("k_train_train", k_train_train, targets)
    return _DensePredictor(k_train_train, targets, learning_rate, diag_reg, diag_reg_absolute_scale).predict


def _check_call(fx_train_0, fx_test_0, k_test_train) -> None:
    if fx_train_0 is None and fx_test_0 is None:
        raise ValueError("`fx_train_0` and `fx_test_0` are both None: there is nothing to predict")
    if fx_test_0 is not None and k_test_train is None:
        raise ValueError("`fx_test_0` is given but `k_test_train` is None: test predictions need the "
                         "kernel between test and training inputs")


def _returned(train, test, fx_train_0, fx_test_0):
    if fx_test_0 is None:
        return jnp.asarray(train)
    if fx_train_0 is None:
        return jnp.asarray(test)
    return jnp.asarray(train), jnp.asarray(test)


class _Predictor:
    """What both kernels' predictors share: targets, times and the output assembly."""

    def __init__(self, targets: _Targets, learning_rate: float):
        self.targets = targets
        self.learning_rate = learning_rate

    def predict(self, t=None, fx_train_0=0.0, fx_test_0=None, k_test_train=None):
        _check_call(fx_train_0, fx_test_0, k_test_train)
        y = self.targets
        dtype = y.y.dtype if jnp.issubdtype(y.y.dtype, jnp.floating) else jnp.float32
        if t is None:
            train = y.y.astype(dtype)
            test = None
            if fx_test_0 is not None:
                rhs = y.flat(y.y) - (0.0 if fx_train_0 is None else y.flat(fx_train_0))
                test = np.asarray(fx_test_0, np.float64) + self.test_part(k_test_train, self.inverse(rhs))
            return _returned(train, None if test is None else test.astype(dtype), fx_train_0, fx_test_0)
        times = np.asarray(t, np.float64) * self.learning_rate
        s = times.reshape(-1) / y.y.size
        rhs = (0.0 if fx_train_0 is None else y.flat(fx_train_0)) - y.flat(y.y)
        train_parts, test_parts = self.functions(rhs, s, fx_train_0 is not None, fx_test_0 is not None)
        train = test = None
        if fx_train_0 is not None:
            moved = y.unflat(train_parts, leading=(len(s),)).reshape(times.shape + y.y.shape)
            train = (np.asarray(fx_train_0, np.float64) + moved).astype(dtype)
        if fx_test_0 is not None:
            parts = [self.test_part(k_test_train, part) for part in test_parts]
            test = (np.asarray(fx_test_0, np.float64) + np.stack(parts).reshape(times.shape + parts[0].shape))
            test = test.astype(dtype)
        return _returned(train, test, fx_train_0, fx_test_0)

    def test_part(self, k_test_train, solution: np.ndarray) -> np.ndarray:
        """``K_test,train @ solution`` (solution ``(rows, T)``) in y_test's axis order."""
        y = self.targets
        if isinstance(k_test_train, NTKOperator):
            if k_test_train.vector_shape != y.kept_shape:
                raise ValueError(f"`k_test_train` takes vectors of shape {k_test_train.vector_shape}; the training "
                                 f"targets' untraced shape is {y.kept_shape}")
            out = k_test_train @ jnp.asarray(solution.reshape(y.kept_shape + (y.columns,)), k_test_train.dtype)
            return y.unflat(np.asarray(out, np.float64).reshape(-1, y.columns), k_test_train.output_shape)
        _check_kernel("k_test_train", k_test_train, y, test=True)
        matrix, test_shape = _matrix(k_test_train)
        return y.unflat(matrix @ solution, test_shape)


class _DensePredictor(_Predictor):
    def __init__(self, k, targets, learning_rate, diag_reg, absolute):
        super().__init__(targets, learning_rate)
        matrix, _ = _matrix(k)
        reg = _regularizer(diag_reg, absolute, float(np.trace(matrix)), matrix.shape[0])
        self.matrix = matrix + reg * np.eye(matrix.shape[0])

    @functools.cached_property
    def cholesky(self):
        return scipy.linalg.cho_factor(self.matrix, lower=False)

    @functools.cached_property
    def eigh(self):
        return np.linalg.eigh(self.matrix)

    def inverse(self, rhs: np.ndarray) -> np.ndarray:
        return scipy.linalg.cho_solve(self.cholesky, rhs)

    def functions(self, rhs, s, train: bool, test: bool):
        values, vectors = self.eigh
        projected = vectors.T @ rhs
        apply = lambda table: [vectors @ (row[:, None] * projected) for row in table]
        train_parts = np.stack(apply(expm1_of(s)(values))) if train else None
        test_parts = apply(expm1_over_of(s)(values)) if test else None
        return train_parts, test_parts


class _OperatorPredictor(_Predictor):
    def __init__(self, op: NTKOperator, targets, learning_rate, diag_reg, absolute, rtol, maxiter):
        super().__init__(targets, learning_rate)
        if not op.square:
            raise ValueError("`k_train_train` must be the training inputs' operator with themselves "
                             "(ntkc.ntk_operator(f, params, x_train)); this one pairs two sets of inputs")
        if op.vector_shape != targets.kept_shape:
            raise ValueError(f"`y_train` has shape {tuple(targets.y.shape)}, trace_axes {targets.traced}: its untraced "
                             f"shape {targets.kept_shape} must be the operator's vector shape {op.vector_shape} (trace "
                             "the same output axes in the operator and here)")
        reg = _regularizer(diag_reg, absolute, op.trace() if diag_reg and not absolute else 0.0, op.shape[0])
        self.op = op + reg * identity if reg else op
        self.rtol, self.maxiter = rtol, maxiter

    def inverse(self, rhs: np.ndarray) -> np.ndarray:
        solution = self.op.solve(jnp.asarray(rhs.reshape(self.targets.kept_shape + (rhs.shape[1],))),
                                 rtol=self.rtol, maxiter=self.maxiter)
        return np.asarray(solution, np.float64).reshape(rhs.shape)

    def functions(self, rhs, s, train: bool, test: bool):
        self.op._held.decide(100 * rhs.shape[1])
        wanted = ([expm1_of(s)] if train else []) + ([expm1_over_of(s)] if test else [])
        flat = [lambda v, fn=fn, i=i: fn(v)[i] for fn in wanted for i in range(len(s))]
        results, _ = lanczos_functions(host_product(self.op), rhs, flat, rtol=self.rtol,
                                       maxiter=self.maxiter or 300, what="Lanczos (matrix exponential)")
        train_parts = np.stack(results[: len(s)]) if train else None
        test_parts = results[-len(s):] if test else None
        return train_parts, test_parts

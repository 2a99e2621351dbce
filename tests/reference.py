"""The brute-force oracle: the empirical NTK from full Jacobians, in float64.

Written independently of ntkc's own code paths: Jacobians by ``jax.jacrev`` (``jax.jacfwd`` with
``forward=True``, for models JAX cannot differentiate in reverse; per example, in a
Python loop, when ``vmap_axes`` is given), the full kernel by an explicit einsum over every
parameter entry, then traces and diagonals taken with ``numpy.trace`` / ``numpy.diagonal`` one
axis at a time, following the neural-tangents reference algorithm.
"""

from __future__ import annotations

import numpy as np
import jax
import jax.flatten_util
import jax.numpy as jnp


def _to64(tree):
    def conv(v):
        v = np.asarray(v)
        return v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) else v
    return jax.tree_util.tree_map(conv, tree)


def _split(kwargs):
    kw1, kw2 = {}, {}
    for k, v in kwargs.items():
        if isinstance(v, tuple) and len(v) == 2:
            kw1[k], kw2[k] = v
        else:
            kw1[k] = kw2[k] = v
    return kw1, kw2


def _jacobian_fn(f, unravel, vmap_axis, forward=False):
    """``(flat_params, x, kwargs) -> Jacobian`` under one ``jax.jit``, so both sides (and every
    example, per-example) share one XLA compilation when their shapes agree."""
    transform = jax.jacfwd if forward else jax.jacrev
    if vmap_axis is None:
        return jax.jit(transform(lambda p, xx, kw: f(unravel(p), xx, **kw)))
    out_axis = vmap_axis[1]
    squeeze = lambda tree: jax.tree_util.tree_map(lambda o: jnp.squeeze(o, out_axis), tree)
    return jax.jit(transform(lambda p, xi, kw: squeeze(f(unravel(p), xi, **kw))))


def _full_jacobian(jac, flat_params, x, kwargs, vmap_axis):
    """Per output leaf: array of shape ``out_shape + (P,)`` (parameters flattened)."""
    if vmap_axis is None:
        return jax.tree_util.tree_map(np.asarray, jac(flat_params, x, kwargs))
    in_axis, out_axis = vmap_axis
    n = jax.tree_util.tree_leaves(x)[0].shape[in_axis]
    per_example = []
    for i in range(n):
        xi = jax.tree_util.tree_map(lambda v: np.take(np.asarray(v), [i], axis=in_axis), x)
        per_example.append(jac(flat_params, xi, kwargs))
    return jax.tree_util.tree_map(lambda *js: np.stack([np.asarray(j) for j in js], axis=out_axis),
                                  *per_example)


def _trace_and_diagonal(ntk, trace_axes, diagonal_axes):
    """neural-tangents' algorithm: trace, then diagonalise, then zip, then place diagonals."""
    nd = ntk.ndim // 2
    trace = sorted(a % nd for a in trace_axes)
    diag = sorted(a % nd for a in diagonal_axes)
    size = int(np.prod([ntk.shape[a] for a in trace])) if trace else 1
    for i, c in enumerate(reversed(trace)):
        ntk = np.trace(ntk, axis1=c, axis2=nd + c - i)
    for i, d in enumerate(diag):
        axis1 = d - i - sum(1 for c in trace if c < d)
        axis2 = nd + axis1 - len(trace) - i
        ntk = np.diagonal(ntk, axis1=axis1, axis2=axis2)
    rest = ntk.ndim - len(diag)
    half = rest // 2
    order = [a for pair in zip(range(half), range(half, rest)) for a in pair]
    ntk = np.transpose(ntk, order + list(range(rest, ntk.ndim)))
    positions = []
    for i, d in enumerate(diag):
        n_trace_before = sum(1 for c in trace if c < d)
        positions.append(2 * d - 2 * n_trace_before - i)
    ntk = np.moveaxis(ntk, list(range(rest, ntk.ndim)), positions)
    return ntk / size


def _split_static(kwargs):
    """(array keyword arguments: traced, the others: constants of f)."""
    arrays = {k: v for k, v in kwargs.items() if all(hasattr(l, "shape") for l in jax.tree_util.tree_leaves(v))
              and jax.tree_util.tree_leaves(v)}
    return arrays, {k: v for k, v in kwargs.items() if k not in arrays}


def oracle_full_ntk(f, x1, x2, params, *, vmap_axis=None, forward=False, **kwargs):
    """The untraced kernel, one array of shape ``out1 + out2`` per output leaf, in float64.

    ``vmap_axis``: None (f on whole batches) or ``(in_axis, out_axis)`` ints (per example).
    """
    params, x1 = _to64(params), _to64(x1)
    kw1, kw2 = _split(kwargs)
    (kw1, static1), (kw2, static2) = _split_static(kw1), _split_static(kw2)
    flat_params, unravel = jax.flatten_util.ravel_pytree(params)
    # Keyword arguments that are not arrays are constants of f (flags are not traced).
    jacobian = lambda static: _jacobian_fn(lambda p, x, **kw: f(p, x, **kw, **static), unravel, vmap_axis, forward)
    jac1 = jacobian(static1)
    jac2 = jac1 if static2 == static1 else jacobian(static2)
    j1 = _full_jacobian(jac1, flat_params, x1, kw1, vmap_axis)
    if x2 is None and jac2 is jac1 and all(kw1[k] is kw2[k] for k in kw1):
        j2 = j1
    else:
        j2 = _full_jacobian(jac2, flat_params, x1 if x2 is None else _to64(x2), kw2, vmap_axis)
    return jax.tree_util.tree_map(lambda a, b: np.tensordot(a, b, axes=([-1], [-1])), j1, j2)


def reduce_oracle(full, *, trace_axes=(-1,), diagonal_axes=()):
    """Apply ``trace_axes`` / ``diagonal_axes`` to the result of :func:`oracle_full_ntk`."""
    return jax.tree_util.tree_map(lambda k: _trace_and_diagonal(k, trace_axes, diagonal_axes), full)


def oracle_ntk(f, x1, x2, params, *, trace_axes=(-1,), diagonal_axes=(), vmap_axis=None, forward=False, **kwargs):
    """Θ(x1, x2) in float64, with neural-tangents' output layout."""
    full = oracle_full_ntk(f, x1, x2, params, vmap_axis=vmap_axis, forward=forward, **kwargs)
    return reduce_oracle(full, trace_axes=trace_axes, diagonal_axes=diagonal_axes)

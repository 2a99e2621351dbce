"""Contract per-side Jacobian-like arrays into a kernel, following :class:`ntkc.axes.KernelAxes`."""

from __future__ import annotations

import string

import jax
import jax.numpy as jnp

from ntkc.axes import KernelAxes

HIGHEST = jax.lax.Precision.HIGHEST


def param_labels(kernel_axes: KernelAxes, nparam: int) -> str:
    """Labels for ``nparam`` trailing parameter axes, disjoint from the output labels."""
    used = set("".join(kernel_axes.labels()))
    free = [c for c in string.ascii_letters if c not in used]
    if nparam > len(free):
        raise ValueError(f"Too many axes to label ({nparam} parameter axes).")
    return "".join(free[:nparam])


def contract_leaf(j1: jax.Array, j2: jax.Array, kernel_axes: KernelAxes) -> jax.Array:
    """Un-normalised kernel of one parameter leaf: ``J1 · J2ᵀ`` with trace/diagonal labels.

    ``j1`` has shape ``out1 + param``, ``j2`` has ``out2 + param``.
    """
    side1, side2, result = kernel_axes.labels()
    p = param_labels(kernel_axes, j1.ndim - kernel_axes.ndim)
    return jnp.einsum(f"{side1}{p},{side2}{p}->{result}", j1, j2, precision=HIGHEST)


def reduce_full_kernel(full: jax.Array, kernel_axes: KernelAxes) -> jax.Array:
    """Trace/diagonalise a full kernel of shape ``out1 + out2`` and divide by the trace size."""
    side1, side2, result = kernel_axes.labels()
    shape1 = full.shape[: kernel_axes.ndim]
    return jnp.einsum(f"{side1}{side2}->{result}", full) / kernel_axes.trace_size(shape1)

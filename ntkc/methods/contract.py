"""Einsum labels for contracting per-side Jacobians, following :class:`ntkc.axes.KernelAxes`."""

from __future__ import annotations

import string

from ntkc.axes import KernelAxes


def param_labels(kernel_axes: KernelAxes, nparam: int) -> str:
    """Labels for ``nparam`` trailing parameter axes, disjoint from the output labels.

    >>> param_labels(KernelAxes.create(2, trace_axes=(-1,), diagonal_axes=()), 3)
    'def'
    """
    used = set("".join(kernel_axes.labels()))
    free = [c for c in string.ascii_letters if c not in used]
    if nparam > len(free):
        raise ValueError(f"Too many axes to label ({nparam} parameter axes).")
    return "".join(free[:nparam])

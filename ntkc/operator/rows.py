"""What the operator's vectors are: the kernel's row shape, and ``f`` with its examples first.

The kernel of ``x1`` and ``x2`` with a ``trace_axes`` setting is, per pair of examples, a matrix
over the *untraced* output components (a traced axis is averaged over, as in
:mod:`ntkc.axes`). As a linear operator it maps vectors of x2's row shape ``(N2, *U)`` to x1's
``(N1, *U)``, where ``U`` is one example's output shape without its traced axes:

    (op @ v)[a, u] = Σ_b,u' K[a, b, u, u'] v[b, u'],
    K[a, b, u, u'] = (1/T) Σ_t J[a, u, t] · J[b, u', t],

``J[a, u, t]`` the gradient of output component ``(u, t)`` of example ``a`` with respect to the
parameters and ``T`` the number of traced components.

:class:`Rows` holds those sizes; :func:`batch_first` gives ``f`` over examples on axis 0 with
its output as ``(n, U-size, T)``, the form the matrix-free products use.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ntkc.axes import canonicalize_axes
from ntkc.batching import canonicalize_vmap_axes
from ntkc.validate import check_params, output_shapes

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Rows:
    """One side's examples as the operator sees them.

    Attributes:
      n: examples.
      untraced: one example's output shape without its traced axes (``U``).
      traced: the number of traced components per example (``T``; 1 when nothing is traced).
      out_axis: the output's batch axis.
      trace_axes: the traced axes of the batched output (canonical).
      x_axes: each input leaf's batch axis (None: shared by every example).
    """

    n: int
    untraced: tuple[int, ...]
    traced: int
    out_axis: int
    trace_axes: tuple[int, ...]
    x_axes: PyTree

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of a vector of this side: ``(n, *untraced)``."""
        return (self.n,) + self.untraced

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def width(self) -> int:
        """``U``'s size: the kernel's entries per pair of examples along one side."""
        return int(np.prod(self.untraced))

    def example_axes(self, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(untraced, traced) axes of one example's output, of ``ndim`` axes."""
        per_example = [a for a in range(ndim + 1) if a != self.out_axis]
        untraced = tuple(i for i, a in enumerate(per_example) if a not in self.trace_axes)
        traced = tuple(i for i, a in enumerate(per_example) if a in self.trace_axes)
        return untraced, traced


def rows_of(f: Callable, params: PyTree, x: PyTree, trace_axes, vmap_axes, *, argname: str) -> Rows:
    """The :class:`Rows` of ``f(params, x)``, with clear errors for what the operator cannot be."""
    check_params(params)
    out = output_shapes(f, params, x, {}, argname=argname)
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise TypeError(f"`f(params, {argname})` returns a pytree; an NTK operator needs one output array "
                        "(concatenate the outputs, or build one operator per output)")
    if vmap_axes is None:
        raise ValueError("`vmap_axes=None`: an NTK operator needs the examples' batch axis (an int or a pytree "
                         "of them) to know its vectors' shape and to run over examples in chunks")
    axes = canonicalize_vmap_axes(vmap_axes, x, out, {})
    traced = canonicalize_axes(trace_axes, len(out.shape), argname="trace_axes")
    if axes.out in traced:
        raise ValueError(f"`trace_axes` {tuple(trace_axes)} holds the examples' axis {axes.out}: the kernel "
                         "is then one number, not an operator")
    sizes = [np.shape(leaf)[a] for leaf, a in zip(jax.tree_util.tree_leaves(x),
                                                  jax.tree_util.tree_leaves(axes.x, is_leaf=lambda a: a is None))
             if a is not None]
    if not sizes:
        raise ValueError(f"`vmap_axes` gives no leaf of `{argname}` a batch axis: there are no examples")
    untraced = tuple(d for a, d in enumerate(out.shape) if a != axes.out and a not in traced)
    count = math.prod(out.shape[a] for a in traced)
    return Rows(n=sizes[0], untraced=untraced, traced=count, out_axis=axes.out, trace_axes=traced, x_axes=axes.x)


def examples_first(x: PyTree, rows: Rows) -> PyTree:
    """``x`` with every batched leaf's batch axis moved to the front (shared leaves as given)."""
    return jax.tree_util.tree_map(lambda a, leaf: jnp.asarray(leaf) if a is None else jnp.moveaxis(jnp.asarray(leaf), a, 0),
                                  rows.x_axes, x, is_leaf=lambda a: a is None)


def batch_first(f: Callable, rows: Rows) -> Callable:
    """``g(params, x_first) -> (n, U-size, T)``: ``f`` on examples given batch-first (as
    :func:`examples_first` lays them out), its output with examples first, untraced components
    next and traced ones last."""

    def g(params, x_first):
        x = jax.tree_util.tree_map(lambda a, leaf: leaf if a is None else jnp.moveaxis(leaf, 0, a),
                                   rows.x_axes, x_first, is_leaf=lambda a: a is None)
        out = jnp.moveaxis(f(params, x), rows.out_axis, 0)
        untraced, traced = rows.example_axes(out.ndim - 1)
        out = jnp.transpose(out, (0,) + tuple(1 + a for a in untraced + traced))
        return out.reshape(out.shape[0], rows.width, rows.traced)

    return g

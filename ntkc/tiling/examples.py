"""One side's examples: inputs and keyword arguments cut into blocks along their batch axes."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from ntkc.batching import partition_kwargs

PyTree = Any


def _slice(leaf, axis, start, stop):
    if axis is None:
        return leaf
    return leaf[(slice(None),) * axis + (slice(start, stop),)]


def _resize(leaf, axis, size):
    if axis is None:
        return jax.ShapeDtypeStruct(np.shape(leaf), jax.numpy.result_type(leaf))
    shape = list(np.shape(leaf))
    shape[axis] = size
    return jax.ShapeDtypeStruct(tuple(shape), jax.numpy.result_type(leaf))


@dataclasses.dataclass(frozen=True, eq=False)
class Examples:
    """One side's inputs and keyword arguments, cut into blocks of examples along their batch
    axes (unbatched inputs and keyword arguments whole). NumPy memmaps are read block by block."""

    x: PyTree
    x_axes: PyTree
    kwargs: dict
    kw_axes: dict

    @property
    def n(self) -> int:
        sizes = [np.shape(l)[a] for l, a in zip(jax.tree_util.tree_leaves(self.x),
                                                 jax.tree_util.tree_leaves(self.x_axes, is_leaf=lambda a: a is None))
                 if a is not None]
        if not sizes:
            raise ValueError("`vmap_axes` gives no leaf of `x` a batch axis: there are no examples to tile")
        return sizes[0]

    def _map(self, fn):
        x = jax.tree_util.tree_map(fn, self.x_axes, self.x, is_leaf=lambda a: a is None)
        kw = {k: jax.tree_util.tree_map(lambda leaf, a=self.kw_axes.get(k): fn(a, leaf), v)
              for k, v in self.kwargs.items()}
        return x, kw

    def specs(self, size: int):
        """``(x, kwargs)`` specs of a block of ``size`` examples (arrays only, others as given)."""
        arrays, static = partition_kwargs(self.kwargs)
        x, kw = Examples(self.x, self.x_axes, arrays, self.kw_axes)._map(lambda a, l: _resize(l, a, size))
        return x, {**kw, **dict(static)}

    def block(self, start: int, stop: int):
        """``(x, kwargs made of arrays)`` of examples ``start:stop`` as host arrays (memmaps: only
        those rows are read; the other keyword arguments are constants of the tile's plan)."""
        arrays, _ = partition_kwargs(self.kwargs)
        return Examples(self.x, self.x_axes, arrays, self.kw_axes)._map(
            lambda a, l: np.asarray(_slice(l, a, start, stop)))

    def padded(self, start: int, stop: int, size: int):
        """:meth:`block` padded to ``size`` examples by repeating its last one (a real input: no
        zeros a model might divide by); the padded examples' kernel entries are cropped away.

        >>> Examples(np.arange(4.0), 0, {}, {}).padded(2, 4, 3)[0]
        array([2., 3., 3.])
        """
        arrays, _ = partition_kwargs(self.kwargs)
        def pad(axis, leaf):
            leaf = np.asarray(_slice(leaf, axis, start, stop))
            if axis is None or leaf.shape[axis] == size:
                return leaf
            last = np.take(leaf, [-1], axis=axis)
            return np.concatenate([leaf] + [last] * (size - leaf.shape[axis]), axis=axis)
        return Examples(self.x, self.x_axes, arrays, self.kw_axes)._map(pad)


def side_kwargs(kw1: dict, kw2: dict) -> dict:
    """Both sides' keyword arguments as one dict of 2-tuples (``ntk_fn``'s split form)."""
    return {k: (kw1[k], kw2[k]) for k in kw1}

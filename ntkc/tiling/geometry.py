"""Where a kernel's example axes are, and the tiles that cover them.

Under ``vmap_axes`` the kernel of ``N1 × N2`` examples is made of independent blocks: the block of
examples ``x1[i0:i1]`` and ``x2[j0:j1]`` is the kernel of those examples alone. The example axis
of an output leaf becomes, in its kernel (:class:`ntkc.axes.KernelAxes`):

* a **pair** of axes (x1's, x2's) — the usual case — so the kernel is a grid of 2-D tiles;
* **one** axis when it is in ``diagonal_axes`` — only the blocks on the diagonal exist (1-D tiles);
* **no** axis when it is in ``trace_axes`` — the kernel is the mean over examples of the diagonal
  blocks (1-D tiles, accumulated with weights ``tile size / N``).

With ``x2 = None`` and pairs, the kernel is symmetric: the tile ``(j, i)`` is tile ``(i, j)`` with
every pair of axes swapped (:meth:`Layout.mirror`), so only tiles on or above the diagonal run.

>>> tiles(5, 3, block=(2, 2), symmetric=False)[:3]
(Tile(i0=0, i1=2, j0=0, j1=2), Tile(i0=0, i1=2, j0=2, j1=3), Tile(i0=2, i1=4, j0=0, j1=2))
>>> len(tiles(5, 5, block=(2, 2), symmetric=True))   # 3 blocks: 3 diagonal + 3 above it
6
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax

from ntkc.axes import KernelAxes

PyTree = Any

PAIR, DIAGONAL, TRACE = "pair", "diagonal", "trace"


@dataclasses.dataclass(frozen=True)
class Tile:
    """Examples ``x1[i0:i1]`` against ``x2[j0:j1]`` (1-D tiles: ``j0, j1 == i0, i1``)."""

    i0: int
    i1: int
    j0: int
    j1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.i1 - self.i0, self.j1 - self.j0

    @property
    def on_diagonal(self) -> bool:
        return (self.i0, self.i1) == (self.j0, self.j1)


def _blocks(n: int, b: int) -> list[tuple[int, int]]:
    return [(s, min(s + b, n)) for s in range(0, n, b)]


def tiles(n1: int, n2: int, block: tuple[int, int], symmetric: bool, diagonal: bool = False) -> tuple[Tile, ...]:
    """The tiles covering ``n1 × n2`` examples with blocks of ``block`` (ragged at the ends):
    every pair, the pairs on or above the diagonal (``symmetric``), or the diagonal blocks only
    (``diagonal``: blocks of ``block[0]``)."""
    rows = _blocks(n1, block[0])
    if diagonal:
        return tuple(Tile(a, b, a, b) for a, b in rows)
    cols = rows if symmetric else _blocks(n2, block[1])
    return tuple(Tile(a, b, c, d) for k, (a, b) in enumerate(rows) for m, (c, d) in enumerate(cols)
                 if not symmetric or m >= k)


def band_tiles(n1: int, n2: int, block: tuple[int, int], symmetric: bool) -> tuple[Tile, ...]:
    """Row bands of ``block[0]`` examples of x1, each in tiles of ``block[1]`` columns: all of x2,
    or (``symmetric``) the columns from the band's first example on. Edge tiles are cut short
    here; they run padded to ``block``.

    >>> [(t.i0, t.j0, t.j1) for t in band_tiles(5, 5, block=(3, 2), symmetric=True)]
    [(0, 0, 2), (0, 2, 4), (0, 4, 5), (3, 3, 5)]
    """
    return tuple(Tile(a, b, c, min(c + block[1], n2)) for a, b in _blocks(n1, block[0])
                 for c in range(a if symmetric else 0, n2, block[1]))


@dataclasses.dataclass(frozen=True)
class Layout:
    """One output leaf's kernel: its shape for the whole problem and where its example axes are.

    Attributes:
      shape: the kernel's shape for ``N1 × N2`` examples.
      mode: :data:`PAIR`, :data:`DIAGONAL` or :data:`TRACE` (what became of the example axis).
      rows, cols: the kernel axes of x1's and x2's examples (``cols is None`` unless a pair;
        both None when traced).
      pairs: every pair of kernel axes (x1's, x2's) — swapped by :meth:`mirror`.
      dtype: the kernel's dtype.
    """

    shape: tuple[int, ...]
    mode: str
    rows: int | None
    cols: int | None
    pairs: tuple[tuple[int, int], ...]
    dtype: Any

    @classmethod
    def of(cls, ka: KernelAxes, fx: int, out1, out2, n1: int, n2: int) -> "Layout":
        """The layout of the leaf with kernel axes ``ka``, example axis ``fx`` and (tile) output
        specs ``out1``/``out2``, for ``n1`` and ``n2`` examples in all."""
        side1, side2, result = ka.labels()
        shape1 = tuple(n1 if a == fx else d for a, d in enumerate(out1.shape))
        shape2 = tuple(n2 if a == fx else d for a, d in enumerate(out2.shape))
        pairs = tuple((result.index(side1[a]), result.index(side2[a]))
                      for a in range(ka.ndim) if ka.kind(a) == PAIR)
        mode = ka.kind(fx)
        rows = result.index(side1[fx]) if mode != TRACE else None
        cols = result.index(side2[fx]) if mode == PAIR else None
        return cls(shape=ka.result_shape(shape1, shape2), mode=mode, rows=rows, cols=cols, pairs=pairs,
                   dtype=out1.dtype)

    def index(self, tile: Tile) -> tuple:
        """Where a tile's kernel goes in the whole kernel (an index tuple of slices)."""
        index = [slice(None)] * len(self.shape)
        if self.rows is not None:
            index[self.rows] = slice(tile.i0, tile.i1)
        if self.cols is not None:
            index[self.cols] = slice(tile.j0, tile.j1)
        return tuple(index)

    def crop(self, block, shape: tuple[int, int]):
        """A padded tile's kernel cut to a tile of ``shape`` examples."""
        index = [slice(None)] * block.ndim
        for axis, size in ((self.rows, shape[0]), (self.cols, shape[1])):
            if axis is not None:
                index[axis] = slice(0, size)
        return block[tuple(index)]

    def mirror(self, block):
        """The kernel of the tile with the sides exchanged: every pair of axes swapped.

        >>> import numpy as np
        >>> layout = Layout(shape=(4, 4, 2, 2), mode=PAIR, rows=0, cols=1, pairs=((0, 1), (2, 3)), dtype=None)
        >>> layout.mirror(np.zeros((3, 2, 5, 5))).shape
        (2, 3, 5, 5)
        """
        perm = list(range(block.ndim))
        for a, b in self.pairs:
            perm[a], perm[b] = b, a
        return block.transpose(perm)

    @property
    def nbytes(self) -> int:
        import numpy as np

        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def layouts(problem, n1: int, n2: int) -> list[Layout]:
    """Every output leaf's :class:`Layout` (in leaf order) for ``n1 × n2`` examples; ``problem``
    is a (tile's) :class:`~ntkc.problem.NTKProblem` under ``vmap_axes``."""
    out1, treedef = jax.tree_util.tree_flatten(problem.out1)
    out2 = treedef.flatten_up_to(problem.out2)
    axes = treedef.flatten_up_to(problem.axes)
    fx = treedef.flatten_up_to(problem.side1.vmap.out)
    return [Layout.of(ka, f, o1, o2, n1, n2) for ka, f, o1, o2 in zip(axes, fx, out1, out2)]

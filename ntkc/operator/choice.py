"""How an operator multiplies: build the matrix once (``dense``) or apply ``J (Jᵀ v)`` every time
(``matrix_free``) — priced, not guessed.

* dense: the tiled kernel's predicted time (:func:`ntkc.tile_plan`: its FLOPs at this machine's
  matmul rate), plus ``2 (N·U)²`` FLOPs a product; it must fit the memory budget;
* matrix-free: XLA's FLOP count of one compiled chunk's pull and push, scaled to the examples and
  to the traced components, per product.

The cheaper total over the expected number of products wins. Both sides are FLOPs at the same
rate, so the comparison is fair even where XLA runs below it.
"""

from __future__ import annotations

import dataclasses

MODES = ("auto", "matrix_free", "dense")


@dataclasses.dataclass(frozen=True)
class Choice:
    """A priced choice of mode.

    Attributes:
      mode: ``"dense"`` or ``"matrix_free"``.
      products: the number of products it was priced for.
      dense_seconds: predicted time to build the matrix and run the products (None: not priced,
        or the matrix does not fit the budget).
      matrix_free_seconds: predicted time of the products, matrix-free (None: not priced).
      reason: one line saying why.
    """

    mode: str
    products: int
    dense_seconds: float | None
    matrix_free_seconds: float | None
    reason: str

    def __str__(self) -> str:
        return f"{self.mode}: {self.reason}"


def choose(products: int, matrix_bytes: int, budget: int, build_seconds: float | None,
           product_dense_seconds: float, product_free_seconds: float) -> Choice:
    """The cheaper mode for ``products`` products.

    >>> choose(1, 10**6, 10**9, 5.0, 1e-4, 0.01).mode
    'matrix_free'
    >>> choose(1000, 10**6, 10**9, 5.0, 1e-4, 0.01).mode
    'dense'
    >>> choose(1000, 10**10, 10**9, 5.0, 1e-4, 0.01).reason
    'the matrix (10 GB) does not fit the 1 GB budget'
    """
    free = products * product_free_seconds
    if matrix_bytes > budget:
        return Choice("matrix_free", products, None, free,
                      f"the matrix ({matrix_bytes / 1e9:.3g} GB) does not fit the {budget / 1e9:.3g} GB budget")
    dense = build_seconds + products * product_dense_seconds
    mode = "dense" if dense < free else "matrix_free"
    return Choice(mode, products, dense, free,
                  f"{products} product(s): dense {dense:.3g} s (build {build_seconds:.3g} s) against matrix-free "
                  f"{free:.3g} s, predicted at the matmul rate")

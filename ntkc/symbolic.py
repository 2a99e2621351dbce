"""Symbolic sizes: named dimensions for the cost model.

Two ways to name sizes:

* **Symbolic shapes.** ``params``/``x`` given as ``jax.ShapeDtypeStruct`` whose shapes hold
  ``jax.export.symbolic_shape`` dimensions (``N, W = jax.export.symbolic_shape("N, W")``). Each
  symbol is replaced by a distinct *probe* size (a prime no concrete size of the inputs equals),
  the program is compiled at those sizes, and every cost is read back in terms of the symbols.
  Input dimensions may be polynomials of symbols (``D*W``); sizes the model derives from them
  (a reshape's ``D·W``) are read back when they are products of named sizes and stay integers
  otherwise (a padded ``D + 2`` is not recognised).
* **``dims``**: a map naming concrete sizes, ``{"W": 512, "O": 10, "D": 256}``.

Batch sizes are named ``N1``/``N2`` (``N`` when equal or when ``x2`` is None) and the per-example
output size ``O``, unless the caller named them already.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import sympy

from ntkc.passes.cost import SizeNames

PyTree = Any

#: Probe sizes for symbolic dimensions: primes, so products of them factor uniquely.
PROBES = (11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)


def _shapes(tree: PyTree):
    for leaf in jax.tree_util.tree_leaves(tree):
        yield tuple(getattr(leaf, "shape", ()))


def _expr(d) -> sympy.Expr:
    text = str(d).replace("^", "**")
    names = {name: sympy.Symbol(name) for name in re.findall(r"[A-Za-z_]\w*", text)}
    try:
        return sympy.sympify(text, locals=names)
    except (sympy.SympifyError, TypeError) as err:
        raise ValueError(f"symbolic dimension {str(d)!r} is not a polynomial of plain symbols") from err


def concretize(tree: PyTree, probes: dict[str, int]) -> PyTree:
    """Replace symbolic dimensions by their values at the probe sizes (``ShapeDtypeStruct``)."""
    def size(d):
        if isinstance(d, int):
            return d
        expr = _expr(d)
        return int(expr.subs({s: probes[s.name] for s in expr.free_symbols}))

    def one(leaf):
        shape = getattr(leaf, "shape", None)
        if shape is None or all(isinstance(d, int) for d in shape):
            return leaf
        return jax.ShapeDtypeStruct(tuple(size(d) for d in shape), leaf.dtype)
    return jax.tree_util.tree_map(one, tree)


def probe_sizes(*trees: PyTree) -> dict[str, int]:
    """A distinct probe size per symbol in the symbolic dimensions of ``trees``.

    >>> N, W = jax.export.symbolic_shape("N, W")
    >>> probe_sizes({"w": jax.ShapeDtypeStruct((3, W), "float32")}, jax.ShapeDtypeStruct((N, 2 * W), "float32"))
    {'W': 11, 'N': 13}
    """
    symbols: list[str] = []
    concrete: set[int] = set()
    for tree in trees:
        for shape in _shapes(tree):
            for d in shape:
                if isinstance(d, int):
                    concrete.add(d)
                    continue
                for symbol in sorted(_expr(d).free_symbols, key=lambda s: s.name):
                    if symbol.name not in symbols:
                        symbols.append(symbol.name)
    free = [p for p in PROBES if p not in concrete]
    if len(symbols) > len(free):
        raise ValueError(f"at most {len(free)} symbolic dimensions are supported, got {symbols}")
    return dict(zip(symbols, free))


def size_names(named: Mapping[str, int], batch: tuple[int, int | None], out_size: int,
               factor: bool = False) -> SizeNames:
    """Names for the cost model: ``named`` (symbols or ``dims``), then the batch sizes and the
    per-example output size under their default names, unless the size is already named. Two
    default names with one value (``N2 = O = 3``) would make a formula ambiguous, so such a size
    stays a number.

    >>> size_names({}, (5, 3), 3).values()
    {'N1': 5}
    """
    n1, n2 = batch
    defaults = [("N", n1)] if n2 is None or n1 == n2 else [("N1", n1), ("N2", n2)]
    if out_size > 1:
        defaults.append(("O", out_size))
    taken = set(named.values())
    values = [v for _, v in defaults]
    named = dict(named)
    for name, value in defaults:
        if value not in taken and values.count(value) == 1:
            named.setdefault(name, value)
    return SizeNames.create(named, factor=factor)

"""How a program's inputs are named and handed to per-side functions.

A kernel's arguments are flattened into named leaves: ``p0, p1, ...`` (parameters),
``x1_0, ...`` / ``kw1_0, ...`` (x1 and side 1's array keyword arguments) and ``x2_0, ...`` /
``kw2_0, ...`` (side 2, absent when x2 is x1). A per-side function receives ``params + x +
kwargs`` leaves and rebuilds the trees with :meth:`SideArgs.unflatten`; under ``vmap_axes`` it
is mapped over examples with :meth:`SideArgs.in_axes`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

PyTree = Any


def _leaf_axes(axes_tree: PyTree, tree: PyTree) -> list:
    """One batch axis (or None) per leaf of ``tree``, ``axes_tree`` being a prefix of it."""
    out = []
    jax.tree_util.tree_map(lambda a, sub: out.extend([a] * len(jax.tree_util.tree_leaves(sub))),
                           axes_tree, tree, is_leaf=lambda a: a is None)
    return out


@dataclasses.dataclass(frozen=True)
class SideArgs:
    """The named leaves of one side's arguments and how to rebuild them.

    Attributes:
      k: the side (1 or 2).
      names: ``params + x + kwargs`` leaf names.
      n_params, n_x: how many of them are parameters, and inputs ``x``.
    """

    side: Any
    params_tree: Any
    k: int
    names: tuple[str, ...]
    n_params: int
    n_x: int

    @classmethod
    def of(cls, side, params_spec: PyTree, k: int) -> "SideArgs":
        n_params = len(jax.tree_util.tree_leaves(params_spec))
        n_x = len(jax.tree_util.tree_leaves(side.x))
        n_kw = len(jax.tree_util.tree_leaves(side.kwargs))
        names = param_names(n_params) + tuple(f"x{k}_{j}" for j in range(n_x)) + tuple(f"kw{k}_{j}" for j in range(n_kw))
        return cls(side=side, params_tree=jax.tree_util.tree_structure(params_spec), k=k, names=names,
                   n_params=n_params, n_x=n_x)

    @property
    def data(self) -> tuple[str, ...]:
        """The names of ``x`` and keyword-argument leaves (no parameters)."""
        return self.names[self.n_params:]

    def unflatten(self, leaves) -> tuple[PyTree, PyTree, dict]:
        """``(params, x, kwargs)`` from this side's leaves (per example under ``vmap_axes``)."""
        leaves = list(leaves)
        p, x, kw = leaves[:self.n_params], leaves[self.n_params:self.n_params + self.n_x], leaves[self.n_params + self.n_x:]
        return (self.params_tree.unflatten(p), jax.tree_util.tree_structure(self.side.x).unflatten(x),
                jax.tree_util.tree_structure(self.side.kwargs).unflatten(kw))

    def data_axes(self) -> tuple:
        """The batch axis of every ``x`` and keyword-argument leaf (None: shared)."""
        x_axes, kw_axes = self.side.in_axes()
        return tuple(_leaf_axes(x_axes, self.side.x)) + tuple(_leaf_axes(kw_axes, self.side.kwargs))

    def in_axes(self) -> tuple:
        """``jax.vmap`` axes of all leaves (parameters are shared)."""
        return (None,) * self.n_params + self.data_axes()


def param_names(n: int) -> tuple[str, ...]:
    return tuple(f"p{i}" for i in range(n))


def program_inputs(problem, params_spec: PyTree) -> tuple[tuple[str, ...], SideArgs, SideArgs | None]:
    """(every input name, in argument order; side 1's args; side 2's args or None)."""
    one = SideArgs.of(problem.side1, params_spec, 1)
    two = None if problem.side2 is None else SideArgs.of(problem.side2, params_spec, 2)
    return one.names + (() if two is None else two.data), one, two


def input_values(problem, params: PyTree, x1: PyTree, kw1: dict, x2: PyTree | None, kw2: dict) -> list:
    """The values of :func:`program_inputs`' names, in the same order."""
    values = jax.tree_util.tree_leaves(params) + jax.tree_util.tree_leaves(x1) + jax.tree_util.tree_leaves(kw1)
    if problem.side2 is not None:
        values += jax.tree_util.tree_leaves(x2) + jax.tree_util.tree_leaves(kw2)
    return values

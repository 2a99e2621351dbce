"""The NTK problem: both sides of a kernel, checked, as shapes, with their output axes.

Every plan starts from an :class:`NTKProblem`; building it performs all argument checking, so
the passes and methods can assume valid input. A problem holds ``jax.ShapeDtypeStruct`` s, not
arrays: it describes every call with inputs of these shapes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax

from ntkc import validate
from ntkc.axes import KernelAxes
from ntkc.batching import Side, canonicalize_vmap_axes, partition_kwargs, shape_structs, split_kwargs

PyTree = Any


@dataclasses.dataclass(frozen=True)
class NTKProblem:
    """Inputs to a plan.

    Attributes:
      side1: ``f`` bound to x1's specs.
      side2: ``f`` bound to x2's specs, or None when x2 is x1 (plans then reuse side 1's work).
      axes: one :class:`KernelAxes` per output leaf (same tree structure as the outputs).
      out1, out2: ``jax.ShapeDtypeStruct`` of the batched outputs of each side.
    """

    side1: Side
    side2: Side | None
    axes: PyTree
    out1: PyTree
    out2: PyTree

    @property
    def vmapped(self) -> bool:
        return self.side1.vmap is not None

    def other_side(self) -> Side:
        return self.side1 if self.side2 is None else self.side2


def _specs(tree: PyTree) -> PyTree:
    return jax.tree_util.tree_map(
        lambda v: v if isinstance(v, jax.ShapeDtypeStruct) else shape_structs(v), tree)


def _calling(side: Side) -> Callable:
    return lambda params, x, **kwargs: side.call(params, x, kwargs)


def build_problem(
    f: Callable,
    x1: PyTree,
    x2: PyTree | None,
    params: PyTree,
    kwargs: dict[str, Any],
    *,
    trace_axes: Sequence[int],
    diagonal_axes: Sequence[int],
    vmap_axes: Any,
) -> NTKProblem:
    """Check every argument (arrays or ``jax.ShapeDtypeStruct`` s) and bind ``f`` to each side's
    specs (see :mod:`ntkc.batching`)."""
    validate.check_params(params)
    params = _specs(params)
    kw1, kw2 = split_kwargs(kwargs)
    (arrays1, static1), (arrays2, static2) = partition_kwargs(kw1), partition_kwargs(kw2)
    arrays1, arrays2 = _specs(arrays1), _specs(arrays2)
    x1 = _specs(x1)
    side1 = Side(f=f, x=x1, kwargs=arrays1, vmap=None, static=static1)
    out1 = validate.output_shapes(_calling(side1), params, x1, arrays1, argname="x1")
    vmap = canonicalize_vmap_axes(vmap_axes, x1, out1, arrays1)
    side1 = dataclasses.replace(side1, vmap=vmap)
    side2 = None
    if x2 is None:
        out2 = out1
    else:
        x2 = _specs(x2)
        validate.check_inputs(x1, x2, None if vmap is None else vmap.x)
        side2 = Side(f=f, x=x2, kwargs=arrays2, vmap=vmap, static=static2)
        out2 = validate.output_shapes(_calling(side2), params, x2, arrays2, argname="x2")
        s1, s2 = jax.tree_util.tree_structure(out1), jax.tree_util.tree_structure(out2)
        if s1 != s2:
            raise ValueError(f"f(params, x1) and f(params, x2) return different structures: {s1} vs {s2}.")

    def leaf_axes(keypath, o1, o2):
        ka = KernelAxes.create(o1.ndim, trace_axes, diagonal_axes)
        ka.check_shapes(o1.shape, o2.shape, leaf=jax.tree_util.keystr(keypath))
        return ka

    axes = jax.tree_util.tree_map_with_path(leaf_axes, out1, out2)
    return NTKProblem(side1=side1, side2=side2, axes=axes, out1=out1, out2=out2)


def require_real(problem: NTKProblem, what: str) -> None:
    """``what`` (a cost report, a printed plan, exported source) describes the real-valued
    computation: a model with complex outputs is refused with a clear error instead of being
    described as if its kernel had no conjugate."""
    for keypath, leaf in jax.tree_util.tree_leaves_with_path(problem.out1):
        if jax.numpy.issubdtype(leaf.dtype, jax.numpy.complexfloating):
            raise TypeError(
                f"`f` output leaf {jax.tree_util.keystr(keypath) or '<root>'} is complex ({leaf.dtype}); "
                f"{what} needs real outputs. `ntk_fn` and `ntkc.compile` handle complex models "
                "(see ntkc.complex_models).")

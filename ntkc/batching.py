"""Binding ``f`` to one side's inputs: ``vmap_axes`` and keyword-argument semantics.

Follows neural-tangents' ``empirical_ntk_fn``:

* ``vmap_axes=None``: ``f(params, x, **kwargs)`` is evaluated on the whole batch.
* ``vmap_axes`` given: the caller certifies that ``f`` equals a ``vmap`` of itself over
  ``x`` (along ``in_axes``), keyword arguments (along ``kwargs_axes``) and outputs (along
  ``out_axes``). Each example is then evaluated as ``f(params, x[i:i+1], ...)`` with the batch
  axis squeezed out of the outputs, so models that couple examples (batch statistics) get
  per-example semantics, exactly as in neural-tangents.
* ``vmap_axes`` may be an int (same axis for inputs and outputs), a pytree of ints/None matching
  ``x``, or the triple ``(in_axes, out_axes, kwargs_axes)``.
* A keyword argument whose value is a 2-tuple is split: its first element goes to the x1 side,
  its second to the x2 side. Any other value is passed to both sides.
* A keyword argument whose leaves are all arrays is an *input* (its shapes and dtypes matter,
  its values arrive with each call); any other keyword argument (a flag, a Python number, a
  string) is a *constant* of ``f``, passed as it is, exactly as in an eager call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def split_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword arguments between the x1 and x2 sides (2-tuples are split).

    >>> split_kwargs({"a": (1, 2), "b": 3})
    ({'a': 1, 'b': 3}, {'a': 2, 'b': 3})
    """
    kw1, kw2 = {}, {}
    for name, value in kwargs.items():
        if isinstance(value, tuple) and len(value) == 2:
            kw1[name], kw2[name] = value
        else:
            kw1[name] = kw2[name] = value
    return kw1, kw2


def is_array(value: Any) -> bool:
    """An array, a NumPy scalar, a tracer or a ``jax.ShapeDtypeStruct`` (not a Python scalar).

    >>> import numpy as np
    >>> is_array(np.float32(1.0)), is_array(1.0), is_array(jax.ShapeDtypeStruct((2,), "float32"))
    (True, False, True)
    """
    return isinstance(value, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def partition_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
    """(keyword arguments made of arrays: inputs, ``(name, value)`` pairs of the others:
    constants), constants sorted by name.

    >>> import numpy as np
    >>> partition_kwargs({"mask": np.ones(2), "train": False})
    ({'mask': array([1., 1.])}, (('train', False),))
    """
    arrays, static = {}, []
    for name, value in kwargs.items():
        leaves = jax.tree_util.tree_leaves(value)
        if leaves and all(is_array(leaf) for leaf in leaves):
            arrays[name] = value
        else:
            static.append((name, value))
    return arrays, tuple(sorted(static, key=lambda item: item[0]))


class Identity:
    """A value in a key, compared by identity (functions, unhashable constants)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other) -> bool:
        return isinstance(other, Identity) and other.value is self.value


def static_key(static: tuple) -> tuple:
    """A hashable key of constant keyword arguments: by type and value when hashable, else by
    identity.

    >>> static_key((("train", False),)) == static_key((("train", False),))
    True
    """
    def key(value):
        try:
            hash(value)
        except TypeError:
            return Identity(value)
        return type(value), value
    return tuple((name, key(value)) for name, value in static)


def _is_triple(vmap_axes: Any) -> bool:
    return isinstance(vmap_axes, tuple) and len(vmap_axes) == 3 and not all(
        isinstance(a, int) or a is None for a in vmap_axes
    )


def _broadcast_axes(axes: Any, tree: PyTree, *, argname: str) -> PyTree:
    """An int/None or a pytree prefix of ``tree`` -> one axis (or None) per leaf of ``tree``."""
    if axes is None or isinstance(axes, int):
        return jax.tree_util.tree_map(lambda _: axes, tree)
    try:
        return jax.tree_util.tree_map(
            lambda a, leaf: a, axes, tree, is_leaf=lambda a: a is None
        )
    except ValueError as e:
        raise ValueError(
            f"`{argname}` must be an int, None, or a pytree matching the structure of the "
            f"corresponding value; got {axes!r} for a value with structure "
            f"{jax.tree_util.tree_structure(tree)}."
        ) from e


def _canonical_axis(axis: Any, leaf: Any, *, argname: str) -> int | None:
    if axis is None:
        return None
    ndim = jnp.ndim(leaf)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"`{argname}` must contain ints or None, got {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"`{argname}` has axis {axis}, out of range for a leaf of shape {jnp.shape(leaf)}."
        )
    return axis % ndim


@dataclasses.dataclass(frozen=True)
class VmapAxes:
    """Canonical batch axes: one int/None per leaf of x, of the outputs, and per kwarg."""

    x: PyTree
    out: PyTree
    kwargs: dict[str, int | None]


def canonicalize_vmap_axes(
    vmap_axes: Any, x: PyTree, fx: PyTree, kwargs: dict[str, Any]
) -> VmapAxes | None:
    """Resolve the user's ``vmap_axes`` against example values ``x`` and shapes ``fx``;
    ``kwargs`` are the keyword arguments made of arrays (only those can have a batch axis)."""
    if vmap_axes is None:
        return None
    if _is_triple(vmap_axes):
        in_axes, out_axes, kw_axes = vmap_axes
    else:
        in_axes, kw_axes = vmap_axes, {}
        leaves = jax.tree_util.tree_leaves(vmap_axes)
        if isinstance(vmap_axes, int) or vmap_axes is None:
            out_axes = vmap_axes
        elif leaves and all(a == leaves[0] for a in leaves):
            out_axes = leaves[0]
        else:
            raise ValueError(
                "`vmap_axes` is a pytree with different axes per input leaf, so the output batch "
                "axis is ambiguous; pass the triple (in_axes, out_axes, kwargs_axes)."
            )
    kw_axes = dict(kw_axes or {})
    unknown = sorted(set(kw_axes) - set(kwargs))
    if unknown:
        raise ValueError(
            f"`vmap_axes` names keyword arguments {unknown} that were not passed to the kernel "
            f"function as arrays (array keyword arguments passed: {sorted(kwargs)})."
        )
    x_axes = jax.tree_util.tree_map(
        lambda a, leaf: _canonical_axis(a, leaf, argname="vmap_axes (in_axes)"),
        _broadcast_axes(in_axes, x, argname="vmap_axes (in_axes)"), x,
        is_leaf=lambda a: a is None,
    )
    out = jax.tree_util.tree_map(
        lambda a, leaf: _canonical_axis(a, leaf, argname="vmap_axes (out_axes)"),
        _broadcast_axes(out_axes, fx, argname="vmap_axes (out_axes)"), fx,
        is_leaf=lambda a: a is None,
    )
    kw_canon = {
        name: _canonical_axis(axis, kwargs[name], argname=f"vmap_axes (kwargs_axes[{name!r}])")
        for name, axis in kw_axes.items()
    }
    if any(a is None for a in jax.tree_util.tree_leaves(out, is_leaf=lambda a: a is None)):
        raise ValueError("`vmap_axes`: every output leaf needs an int out axis, got None.")
    return VmapAxes(x=x_axes, out=out, kwargs=kw_canon)


def _expand(tree: PyTree, axes: PyTree) -> PyTree:
    return jax.tree_util.tree_map(
        lambda a, v: v if a is None else jnp.expand_dims(v, a), axes, tree,
        is_leaf=lambda a: a is None,
    )


def _example_struct(tree: PyTree, axes: PyTree) -> PyTree:
    """ShapeDtypeStructs of one example: the batch axis removed from every batched leaf."""
    def one(axis, leaf):
        shape = tuple(jnp.shape(leaf))
        if axis is not None:
            shape = shape[:axis] + shape[axis + 1:]
        return jax.ShapeDtypeStruct(shape, jnp.result_type(leaf))
    return jax.tree_util.tree_map(one, axes, tree, is_leaf=lambda a: a is None)


def _squeeze(tree: PyTree, axes: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda a, v: jnp.squeeze(v, a), axes, tree)


@dataclasses.dataclass(frozen=True)
class Side:
    """``f`` bound to one side's inputs: ``x`` and the array keyword arguments ``kwargs`` are
    arrays (a side ready to run) or ``jax.ShapeDtypeStruct`` s (a side in a plan: shapes only);
    ``static`` holds the other keyword arguments, passed to ``f`` as they are.

    ``side.apply(params)`` gives the batched outputs (what the kernel's axes refer to);
    ``side.example(params, x_i, kw_i)`` evaluates one example when ``vmap`` is set.
    """

    f: Callable
    x: PyTree
    kwargs: dict[str, Any]
    vmap: VmapAxes | None
    static: tuple = ()

    def call(self, params: PyTree, x: PyTree, kwargs: dict[str, Any]) -> PyTree:
        """``f(params, x, **kwargs, **static)``."""
        return self.f(params, x, **kwargs, **dict(self.static))

    def bind(self, x: PyTree, kwargs: dict[str, Any]) -> "Side":
        """This side with other inputs (values for a plan's specs)."""
        return dataclasses.replace(self, x=x, kwargs=dict(kwargs))

    def kwarg_axes(self) -> dict[str, int | None]:
        """The batch axis of every array keyword argument (None: shared by all examples)."""
        axes = self.vmap.kwargs if self.vmap is not None else {}
        return {k: axes.get(k) for k in self.kwargs}

    def batched_kwargs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(array kwargs with a batch axis, array kwargs shared by all examples)."""
        axes = self.kwarg_axes()
        return ({k: v for k, v in self.kwargs.items() if axes[k] is not None},
                {k: v for k, v in self.kwargs.items() if axes[k] is None})

    def example(self, params: PyTree, x_i: PyTree, kw_i: dict[str, Any]) -> PyTree:
        """Outputs of one example (batch axis removed); ``kw_i`` holds one example of each
        batched keyword argument and the shared ones whole. Only valid with ``vmap`` set."""
        assert self.vmap is not None
        axes = self.kwarg_axes()
        x_full = _expand(x_i, self.vmap.x)
        kw_full = {k: v if axes.get(k) is None else jnp.expand_dims(v, axes[k]) for k, v in kw_i.items()}
        return _squeeze(self.call(params, x_full, kw_full), self.vmap.out)

    def n_examples(self) -> int:
        """The batch size along ``vmap_axes`` (1 without them: ``f`` then sees the whole batch)."""
        if self.vmap is None:
            return 1
        axes = jax.tree_util.tree_leaves(self.vmap.x, is_leaf=lambda a: a is None)
        sizes = [jnp.shape(leaf)[a] for leaf, a in zip(jax.tree_util.tree_leaves(self.x), axes) if a is not None]
        return sizes[0] if sizes else 1

    def example_specs(self) -> tuple:
        """What ``f`` is traced on: ``(x, kwargs)`` as ShapeDtypeStructs — one example under
        ``vmap_axes`` (batch axes removed; keyword arguments without a batch axis whole), the
        whole batch otherwise."""
        if self.vmap is None:
            return shape_structs(self.x), shape_structs(self.kwargs)
        axes = self.kwarg_axes()
        return (_example_struct(self.x, self.vmap.x),
                {k: _example_struct(v, axes[k]) for k, v in self.kwargs.items()})

    def in_axes(self) -> tuple:
        """``jax.vmap`` axes of ``(x, kwargs)`` over examples."""
        return self.vmap.x, self.kwarg_axes()

    def map_examples(self, fn: Callable[[PyTree, dict[str, Any]], PyTree]) -> PyTree:
        """``vmap`` ``fn(x_i, kw_i)`` over examples; results get a new leading axis."""
        return jax.vmap(fn, in_axes=self.in_axes())(self.x, self.kwargs)

    def apply(self, params: PyTree) -> PyTree:
        """Batched outputs ``f(params, x, **kwargs)`` (per-example semantics under vmap)."""
        if self.vmap is None:
            return self.call(params, self.x, self.kwargs)
        stacked = self.map_examples(lambda x_i, kw_i: self.example(params, x_i, kw_i))
        return move_batch_axis(stacked, self.vmap.out)


def shape_structs(tree: PyTree) -> PyTree:
    """``jax.ShapeDtypeStruct`` of every leaf (arrays, tracers or Python scalars)."""
    return jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)), tree)


def move_batch_axis(stacked: PyTree, out_axes: PyTree) -> PyTree:
    """Move a leading example axis of every leaf of ``stacked[out_leaf]...`` to ``out_axes``.

    ``stacked`` may have extra structure below each output leaf (e.g. a Jacobian's parameter
    tree); each of its leaves gets the axis of the output leaf it belongs to.
    """
    def move(axis, sub):
        return jax.tree_util.tree_map(lambda v: jnp.moveaxis(v, 0, axis), sub)

    return jax.tree_util.tree_map(move, out_axes, stacked, is_leaf=lambda a: isinstance(a, int))


def same_examples(side1: Side, side2: Side | None) -> bool:
    """Whether both sides run the same per-example program: ``vmap_axes`` set, the same ``f``,
    axes and constant keyword arguments, and per-example inputs of equal shapes and dtypes. Such
    sides share one lowered graph, so one plan."""
    if side2 is None or side1.vmap is None or side1.f is not side2.f or side1.vmap != side2.vmap:
        return False
    if static_key(side1.static) != static_key(side2.static):
        return False
    one, two = side1.example_specs(), side2.example_specs()
    return jax.tree_util.tree_structure(one) == jax.tree_util.tree_structure(two) and all(
        a.shape == b.shape and a.dtype == b.dtype
        for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(two)))

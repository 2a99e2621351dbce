"""Argument checking shared by every entry point: clear errors naming the argument at fault."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def _path(keypath) -> str:
    return jax.tree_util.keystr(keypath) or "<root>"


def check_params(params: PyTree) -> None:
    """Every parameter leaf must be a real floating-point array (differentiable)."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if not leaves:
        raise ValueError("`params` has no array leaves: there is nothing to differentiate.")
    for keypath, leaf in leaves:
        try:
            dtype = jnp.result_type(leaf)
        except TypeError:
            raise TypeError(
                f"`params` leaf {_path(keypath)} is {type(leaf).__name__}, not an array."
            ) from None
        if jnp.issubdtype(dtype, jnp.complexfloating):
            raise TypeError(
                f"`params` leaf {_path(keypath)} is complex ({dtype}); complex parameters are "
                "handled by `ntk_fn` and `ntkc.compile` (as pairs of real parameters, see "
                "ntkc.complex_models); cost reports and exported source need real parameters."
            )
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"`params` leaf {_path(keypath)} has dtype {dtype}; the NTK differentiates with "
                "respect to every parameter, so every leaf must be floating point. Close over "
                "integer or boolean constants in `f` instead of passing them in `params`."
            )


def output_shapes(f: Callable, params: PyTree, x: PyTree, kwargs: dict, *, argname: str) -> PyTree:
    """``jax.eval_shape`` of ``f(params, x, **kwargs)``, checked to be floating arrays."""
    try:
        out = jax.eval_shape(lambda p, xx, kw: f(p, xx, **kw), params, x, kwargs)
    except TypeError as e:
        if "valid JAX type" in str(e) or "is not a valid" in str(e):
            raise TypeError(
                f"`f(params, {argname})` must return an array or a pytree of arrays; {e}"
            ) from e
        raise
    leaves = jax.tree_util.tree_leaves_with_path(out)
    if not leaves:
        raise TypeError(f"`f(params, {argname})` returned no arrays (got {out!r}).")
    for keypath, leaf in leaves:
        if not isinstance(leaf, jax.ShapeDtypeStruct):
            raise TypeError(
                f"`f(params, {argname})` must return arrays; output leaf {_path(keypath)} is "
                f"{type(leaf).__name__}."
            )
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise TypeError(
                f"`f(params, {argname})` output leaf {_path(keypath)} has dtype {leaf.dtype}; "
                "the NTK needs floating-point outputs."
            )
        if leaf.ndim == 0:
            raise ValueError(
                f"`f(params, {argname})` output leaf {_path(keypath)} is a scalar; outputs must "
                "have at least a batch axis."
            )
    return out


def check_inputs(x1: PyTree, x2: PyTree, batch_axes: PyTree | None) -> None:
    """x1 and x2 must have the same structure and equal shapes off the batch axis.

    ``batch_axes`` gives one axis (or None: not batched) per leaf; None means axis 0 everywhere.
    """
    s1, s2 = jax.tree_util.tree_structure(x1), jax.tree_util.tree_structure(x2)
    if s1 != s2:
        raise ValueError(f"`x1` and `x2` have different pytree structures: {s1} vs {s2}.")
    leaves1 = jax.tree_util.tree_leaves_with_path(x1)
    leaves2 = jax.tree_util.tree_leaves(x2)
    axes = (
        [0] * len(leaves1)
        if batch_axes is None
        else jax.tree_util.tree_leaves(batch_axes, is_leaf=lambda a: a is None)
    )
    for (keypath, a), b, axis in zip(leaves1, leaves2, axes):
        sa, sb = np.shape(a), np.shape(b)
        where = f" (leaf {_path(keypath)})" if keypath else ""
        if len(sa) != len(sb):
            raise ValueError(f"`x1` and `x2` have different ranks{where}: {sa} vs {sb}.")
        for d, (da, db) in enumerate(zip(sa, sb)):
            if da != db and d != axis:
                raise ValueError(
                    f"`x1` and `x2` have different non-batch shapes{where}: {sa} vs {sb} differ "
                    f"on axis {d}, but the batch axis is {axis}."
                )

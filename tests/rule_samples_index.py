"""Rule samples for the index rules (see rule_samples.py).

Other data operands of ``concatenate``, ``pad``, ``dynamic_update_slice`` and ``select_n`` are
themselves linear in θ (e.g. ``o * t``), as in a linearized program: the test evaluates the
equation with them zeroed, so a residual there would add a constant term.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rule_samples import RuleSample, rand


def _ints(*values):
    return np.asarray(values, dtype=np.int64)


def _int(value):
    return np.int64(value)


def _gather(dn, slice_sizes, mode):
    return lambda t, o: lax.gather(t, o, lax.GatherDimensionNumbers(*dn), slice_sizes, mode=mode, fill_value=0.0)


def _shape_samples(add) -> None:
    add("reshape",
        RuleSample("merge", lambda t, o: t.reshape(6, 4), rand(0, 2, 3, 4)),
        RuleSample("split", lambda t, o: t.reshape(2, 3, 4), rand(0, 6, 4)),
        RuleSample("regroup", lambda t, o: t.reshape(6, 4), rand(0, 4, 6)),
        RuleSample("merge-and-delta", lambda t, o: t.reshape(6, 20), rand(0, 2, 3, 4, 5)),
        RuleSample("size-one-axes", lambda t, o: t.reshape(1, 2, 3, 1), rand(0, 2, 1, 3)),
        RuleSample("size-one-and-merge", lambda t, o: t.reshape(12), rand(0, 3, 1, 4)),
        RuleSample("all-size-one", lambda t, o: t.reshape(1), rand(0, 1, 1)),
        RuleSample("scalar", lambda t, o: t.reshape(1, 1), np.asarray(1.3)),
        RuleSample("dimensions", lambda t, o: lax.reshape(t, (6, 2), dimensions=(1, 0)), rand(0, 3, 4)))
    add("squeeze",
        RuleSample("two-axes", lambda t, o: lax.squeeze(t, (1, 3)), rand(0, 3, 1, 4, 1)),
        RuleSample("negative-axis", lambda t, o: jnp.squeeze(t, -1), rand(0, 3, 1)))


def _selection_samples(add) -> None:
    add("pad",
        RuleSample("lo-hi", lambda t, o: lax.pad(t, 0.0, [(1, 2, 0), (0, 0, 0)]), rand(0, 3, 4)),
        RuleSample("negative", lambda t, o: lax.pad(t, 0.0, [(-1, 1, 0), (2, -2, 0)]), rand(0, 3, 4)),
        RuleSample("interior", lambda t, o: lax.pad(t, 0.0, [(1, -1, 1), (0, 0, 2)]), rand(0, 3, 4)),
        RuleSample("padding-value", lambda t, o: lax.pad(o * t, t, [(1, -1, 1), (2, 0, 0)]),
                   np.asarray(0.7), rand(1, 3, 4)))
    add("rev",
        RuleSample("one-axis", lambda t, o: lax.rev(t, (1,)), rand(0, 3, 4)),
        RuleSample("two-axes", lambda t, o: jnp.flip(t, (0, 2)), rand(0, 2, 3, 4)))
    add("concatenate",
        RuleSample("first", lambda t, o: jnp.concatenate([t, 2 * t, t[:1]], axis=0), rand(0, 2, 3)),
        RuleSample("middle", lambda t, o: jnp.concatenate([2 * t, t, o * t[:, :1]], axis=1), rand(0, 2, 3), rand(1, 2, 4)),
        RuleSample("twice", lambda t, o: jnp.concatenate([t, o * t[:, :1], t], axis=1), rand(0, 2, 3), rand(1, 2, 1)))
    add("slice",
        RuleSample("basic", lambda t, o: t[1:3], rand(0, 4, 3)),
        RuleSample("strided-multi-axis", lambda t, o: t[:, ::2, 1:4:2], rand(0, 2, 5, 4)),
        RuleSample("lax-strides", lambda t, o: lax.slice(t, (1, 0), (4, 3), (2, 1)), rand(0, 5, 3)),
        # a split of θ (one equation, three outputs) is lowered to one slice per piece
        RuleSample("split-pieces", lambda t, o: tuple(jnp.split(t, [1, 3], axis=1)), rand(0, 2, 5)))
    add("cumsum",
        RuleSample("forward", lambda t, o: jnp.cumsum(t, axis=1), rand(0, 2, 4, 3)),
        RuleSample("reverse", lambda t, o: lax.cumsum(t, axis=0, reverse=True), rand(0, 4, 3)))


def _dynamic_samples(add) -> None:
    add("dynamic_slice",
        RuleSample("in-range", lambda t, o: lax.dynamic_slice(t, (o[0], 0, o[1]), (2, 3, 2)),
                   rand(0, 4, 3, 5), (_int(1), _int(2))),
        RuleSample("clamped", lambda t, o: lax.dynamic_slice(t, (o[0], o[1], o[0]), (2, 3, 2)),
                   rand(0, 4, 3, 5), (_int(9), _int(-8))),
        RuleSample("below-zero", lambda t, o: lax.dynamic_slice(t, (o, 1), (2, 3)), rand(0, 4, 3), _int(-9)))
    add("dynamic_update_slice",
        RuleSample("base", lambda t, o: lax.dynamic_update_slice(t, o[0] * t[0, 0], (o[1], 1)),
                   rand(0, 4, 5), (rand(1, 2, 3), _int(1))),
        RuleSample("base-clamped", lambda t, o: lax.dynamic_update_slice(t, o[0] * t[0, 0], (o[1], o[2])),
                   rand(0, 4, 5), (rand(1, 2, 5), _int(7), _int(3))),
        RuleSample("update", lambda t, o: lax.dynamic_update_slice(o[0] * t[0, 0], t, (o[1], 1)),
                   rand(0, 2, 3), (rand(1, 4, 5), _int(1))),
        RuleSample("update-clamped", lambda t, o: lax.dynamic_update_slice(o[0] * t[0, 0], t, (o[1], o[2])),
                   rand(0, 2, 5), (rand(1, 4, 5), _int(9), _int(-9))))
    pred, which = rand(5, 3, 4) > 0, np.random.default_rng(6).integers(0, 3, (3, 4)).astype(np.int32)
    add("select_n",
        RuleSample("two-cases-false", lambda t, o: lax.select_n(o[0], t, o[1] * t), rand(0, 3, 4), (pred, rand(1, 3, 4))),
        RuleSample("two-cases-true", lambda t, o: jnp.where(o[0], o[1] * t, t), rand(0, 3, 4), (pred, rand(1, 3, 4))),
        RuleSample("three-cases", lambda t, o: lax.select_n(o[0], o[1] * t, t, -t), rand(0, 3, 4), (which, rand(1, 3, 4))),
        RuleSample("scalar-predicate", lambda t, o: lax.select_n(o[0], o[1] * t, -t, t), rand(0, 3, 4),
                   (np.int32(2), rand(1, 3, 4))),
        RuleSample("scalar-bool", lambda t, o: lax.select_n(o[0], t, o[1] * t), rand(0, 3, 4),
                   (np.bool_(False), rand(1, 3, 4))))


def _gather_samples(add) -> None:
    ids = _ints([1, -1], [4, 0], [2, 2])
    oob = _ints([1, 7], [-9, 4], [3, 5])
    add("gather",
        RuleSample("table-ids", lambda t, o: t[o], rand(0, 5, 3), _ints(4, 0, -2, 1)),
        RuleSample("table-ids-2d", lambda t, o: t[o], rand(0, 5, 3), ids),
        RuleSample("take", lambda t, o: jnp.take(t, o, axis=0), rand(0, 5, 3), ids),
        RuleSample("take-axis1", lambda t, o: jnp.take(t, o, axis=1), rand(0, 2, 5, 3), ids),
        RuleSample("clip-oob", lambda t, o: t.at[o].get(mode="clip"), rand(0, 5, 3), oob),
        RuleSample("fill-oob", lambda t, o: t.at[o].get(mode="fill", fill_value=0.0), rand(0, 5, 3), oob),
        RuleSample("two-indexed-axes-fill", lambda t, o: t.at[o[0], o[1]].get(mode="fill", fill_value=0.0),
                   rand(0, 5, 4, 2), (_ints(1, 6, 2), _ints(3, 0, -7))),
        RuleSample("take-along-axis", lambda t, o: jnp.take_along_axis(t, o, axis=1), rand(0, 3, 4),
                   _ints([0, 3], [-1, 2], [1, 1])),
        RuleSample("take-along-axis-fill-oob",
                   lambda t, o: jnp.take_along_axis(t, o, axis=1, mode="fill", fill_value=0.0), rand(0, 3, 4),
                   _ints([0, 6], [-9, 2], [1, 4])),
        RuleSample("vmapped-index", lambda t, o: jax.vmap(lambda a, b: a[b])(t, o), rand(0, 3, 4),
                   _ints([0, 3], [-1, 2], [1, 1])),
        RuleSample("window-clip", _gather(((1, 2), (), (0,)), (2, 3), "clip"), rand(0, 5, 3), _ints([1], [4], [-2])),
        RuleSample("window-fill", _gather(((1, 2), (), (0,)), (2, 3), "fill"), rand(0, 5, 3), _ints([1], [4], [-2])),
        RuleSample("unindexed-slices", _gather(((1,), (0, 2), (2,)), (1, 2, 1), "clip"), rand(0, 4, 3, 5),
                   _ints([1], [4])))


def _scatter_samples(add) -> None:
    ids = _ints([1, -1], [4, 0], [2, 2])
    oob = _ints([1, 7], [-9, 4], [3, 5])
    add("scatter-add",
        RuleSample("operand", lambda t, o: t.at[o].add(o.astype(t.dtype)[:, None] * t[0, 0]), rand(0, 5, 3),
                   _ints(4, 0, 4)),
        RuleSample("table-rows", lambda t, o: (o[1] * t[0, 0]).at[o[0]].add(t), rand(0, 4, 3),
                   (_ints(4, 0, -2, 4), rand(1, 5, 3))),
        RuleSample("rows-2d", lambda t, o: (o[1] * t[0, 0, 0]).at[o[0]].add(t), rand(0, 3, 2, 3),
                   (ids, rand(1, 5, 3))),
        RuleSample("clip-oob", lambda t, o: (o[1] * t[0, 0]).at[o[0]].add(t, mode="clip"), rand(0, 3, 3),
                   (oob[:, 0], rand(1, 5, 3))),
        RuleSample("drop-oob", lambda t, o: (o[1] * t[0, 0]).at[o[0]].add(t, mode="drop"), rand(0, 3, 3),
                   (oob[:, 0], rand(1, 5, 3))),
        RuleSample("two-indexed-axes", lambda t, o: (o[2] * t[0, 0]).at[o[0], o[1]].add(t), rand(0, 3, 2),
                   (_ints(1, 4, 2), _ints(3, 0, 1), rand(1, 5, 4, 2))),
        RuleSample("along-axis1", lambda t, o: (o[1] * t[0, 0, 0]).at[:, o[0]].add(t), rand(0, 2, 3, 4),
                   (_ints(0, 3, 3), rand(1, 2, 5, 4))))
    add("tile",
        RuleSample("rows", lambda t, o: jnp.tile(t, (3, 1)), rand(0, 2, 3)),
        RuleSample("both-axes", lambda t, o: jnp.tile(t, (2, 3)), rand(0, 2, 3)),
        RuleSample("last-axis", lambda t, o: lax.tile(t, (1, 2)), rand(0, 2, 3)))


def register(add) -> None:
    """Add samples with ``add(primitive_name, RuleSample(...), ...)``."""
    _shape_samples(add)
    _selection_samples(add)
    _dynamic_samples(add)
    _gather_samples(add)
    _scatter_samples(add)

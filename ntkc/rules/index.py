"""Structure rules of the index primitives, with their recipes.

Shape changes (``reshape``, ``squeeze``) are relabellings, up to a constant identity factor for
merged or split axes. Selections (``pad``, ``rev``, ``concatenate``, ``slice``, ``cumsum``) act on
one axis at a time: each affected axis gets a small constant matrix ``S_a[out_a, in_a]``, the
others are Kronecker deltas. Data-dependent selections (``dynamic_slice``,
``dynamic_update_slice``, ``select_n``, ``gather``) get run-time factors computed by the recipes
below from the index (or predicate) operands, as 0/1 arrays in θ's dtype.

``expand_dims`` is not a primitive in JAX 0.10.2 (``jnp.expand_dims`` emits ``broadcast_in_dim``,
which has its own rule).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from ntkc.ir.forms import FactorSpec, JacobianForm, constant_factor, operand_factor
from ntkc.rules.table import NoStructure, defrecipe, defrule

FactorFor = Callable[[tuple[str, str]], FactorSpec]


def _axiswise(rank: int, factor_for: dict[int, FactorFor]) -> JacobianForm:
    """Axis ``a`` of z and of θ share one delta label ``d{a}``, except the axes in
    ``factor_for``: those get labels ``o{a}`` (z) and ``i{a}`` (θ), joined by the factor
    ``factor_for[a](("o{a}", "i{a}"))``."""
    out, theta, factors = [], [], []
    for a in range(rank):
        if a in factor_for:
            out.append(f"o{a}")
            theta.append(f"i{a}")
            factors.append(factor_for[a]((f"o{a}", f"i{a}")))
        else:
            out.append(f"d{a}")
            theta.append(f"d{a}")
    return JacobianForm(out_labels=tuple(out), theta_labels=tuple(theta), factors=tuple(factors))


def _constant(matrix) -> FactorFor:
    return lambda labels: constant_factor(labels, matrix)


def _require_position(pos: int, expected: int, name: str) -> None:
    if pos != expected:
        raise NoStructure(f"{name} is not linear in its input {pos}")


# Shape changes.

def _reshape_groups(in_shape, out_shape) -> list[tuple[list[int], list[int]]]:
    """Minimal contiguous groups of θ axes and z axes with equal products (size-1 axes left out)."""
    ia = [a for a, n in enumerate(in_shape) if n != 1]
    oa = [b for b, n in enumerate(out_shape) if n != 1]
    groups, i, j = [], 0, 0
    while i < len(ia):
        gi, gj = [ia[i]], [oa[j]]
        pi, pj = in_shape[ia[i]], out_shape[oa[j]]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                gi.append(ia[i])
                pi, i = pi * in_shape[ia[i]], i + 1
            else:
                gj.append(oa[j])
                pj, j = pj * out_shape[oa[j]], j + 1
        groups.append((gi, gj))
    return groups


def _reshape_form(in_shape, out_shape) -> JacobianForm:
    theta = [f"i{a}" for a in range(len(in_shape))]
    out = [f"o{b}" for b in range(len(out_shape))]
    factors = []
    for g, (gi, gj) in enumerate(_reshape_groups(in_shape, out_shape)):
        if len(gi) == len(gj) == 1:
            theta[gi[0]] = out[gj[0]] = f"g{g}"
            continue
        z_shape = tuple(out_shape[b] for b in gj)
        t_shape = tuple(in_shape[a] for a in gi)
        eye = np.eye(math.prod(t_shape)).reshape(z_shape + t_shape)
        factors.append(constant_factor(tuple(out[b] for b in gj) + tuple(theta[a] for a in gi), eye))
    return JacobianForm(out_labels=tuple(out), theta_labels=tuple(theta), factors=tuple(factors))


@defrule("reshape")
def reshape_rule(shapes, pos, out_shape, name, *, new_sizes, dimensions=None, **params) -> JacobianForm:
    """z = reshape(transpose(θ, dimensions), new_sizes). θ and z axes split into minimal groups
    of equal product: a group of one θ axis and one z axis is a delta, ∂z[i]/∂θ[j] = δ(i, j);
    a merged or split group has the identity ∂z[i..]/∂θ[j..] = δ(flat(i..), flat(j..)) as a
    constant factor; size-1 axes are free (θ-only or z-only labels of size 1)."""
    _require_position(pos, 0, name)
    shape = tuple(shapes[0])
    perm = tuple(range(len(shape))) if dimensions is None else tuple(int(d) for d in dimensions)
    in_shape = tuple(shape[d] for d in perm)
    if 0 in in_shape or 0 in tuple(out_shape):
        raise NoStructure("reshape of an empty array")
    form = _reshape_form(in_shape, tuple(out_shape))
    theta = [""] * len(shape)
    for k, d in enumerate(perm):
        theta[d] = form.theta_labels[k]
    return JacobianForm(out_labels=form.out_labels, theta_labels=tuple(theta), factors=form.factors)


@defrule("squeeze")
def squeeze_rule(shapes, pos, out_shape, name, *, dimensions, **params) -> JacobianForm:
    """z = squeeze(θ, dimensions): a relabelling, ∂z[i]/∂θ[i with 0s inserted] = 1; the
    squeezed size-1 axes of θ are free."""
    rank = len(shapes[pos])
    squeezed = {int(d) % rank for d in dimensions}
    theta = tuple(f"s{a}" if a in squeezed else f"d{a}" for a in range(rank))
    out = tuple(l for a, l in enumerate(theta) if a not in squeezed)
    return JacobianForm(out_labels=out, theta_labels=theta)


# Constant selections, one matrix per affected axis.

def _pad_matrix(n: int, lo: int, hi: int, interior: int) -> np.ndarray:
    """S[o, j] = δ(o, lo + j·(interior + 1)), dropping positions cut by negative padding."""
    size = lo + hi + n + max(n - 1, 0) * interior
    m = np.zeros((size, n))
    j = np.arange(n)
    o = lo + j * (interior + 1)
    keep = (o >= 0) & (o < size)
    m[o[keep], j[keep]] = 1.0
    return m


def _pad_mask(shape, padding_config) -> np.ndarray:
    """1 at the padded positions of the output, 0 where an operand element lands."""
    hits = [_pad_matrix(n, *cfg).sum(axis=1) for n, cfg in zip(shape, padding_config)]
    return 1.0 - functools.reduce(np.multiply.outer, hits, np.ones(()))


@defrule("pad")
def pad_rule(shapes, pos, out_shape, name, *, padding_config, **params) -> JacobianForm:
    """z = pad(θ, v, (lo, hi, interior) per axis). θ = operand: per padded axis the selection
    ∂z[o]/∂θ[j] = δ(o, lo + j·(interior + 1)) (negative padding drops rows), other axes deltas.
    θ = padding value (rank 0): ∂z[o]/∂v = mask[o], 1 at padded positions."""
    if pos == 1:
        mask = _pad_mask(shapes[0], padding_config)
        out = tuple(f"d{a}" for a in range(len(out_shape)))
        return JacobianForm(out_labels=out, theta_labels=(), factors=(constant_factor(out, mask),))
    factor_for = {a: _constant(_pad_matrix(n, *cfg))
                  for a, (n, cfg) in enumerate(zip(shapes[0], padding_config)) if tuple(cfg) != (0, 0, 0)}
    return _axiswise(len(shapes[0]), factor_for)


@defrule("rev")
def rev_rule(shapes, pos, out_shape, name, *, dimensions, **params) -> JacobianForm:
    """z = flip(θ, dimensions): per reversed axis ∂z[o]/∂θ[j] = δ(o, n − 1 − j)."""
    shape = shapes[pos]
    return _axiswise(len(shape), {int(a): _constant(np.eye(shape[a])[::-1]) for a in dimensions})


@defrule("tile")
def tile_rule(shapes, pos, out_shape, name, *, reps, **params) -> JacobianForm:
    """z = tile(θ, reps): per repeated axis ∂z[o]/∂θ[j] = [o mod n = j], a constant (r·n, n)
    matrix of r stacked identities."""
    shape = shapes[pos]
    return _axiswise(len(shape), {a: _constant(np.tile(np.eye(shape[a]), (r, 1)))
                                  for a, r in enumerate(reps) if r != 1})


@defrule("concatenate")
def concatenate_rule(shapes, pos, out_shape, name, *, dimension, **params) -> JacobianForm:
    """z = concatenate(..., θ, ...) along ``dimension``: ∂z[o]/∂θ[j] = δ(o, j + offset) on that
    axis, offset the total size of the operands before θ; other axes deltas."""
    offset = sum(s[dimension] for s in shapes[:pos])
    shift = np.eye(out_shape[dimension], shapes[pos][dimension], k=-offset)
    return _axiswise(len(out_shape), {dimension: _constant(shift)})


def _slice_matrix(n: int, start: int, out: int, stride: int) -> np.ndarray:
    """S[o, j] = δ(j, start + o·stride)."""
    m = np.zeros((out, n))
    m[np.arange(out), start + stride * np.arange(out)] = 1.0
    return m


@defrule("slice")
def slice_rule(shapes, pos, out_shape, name, *, start_indices, limit_indices, strides=None, **params) -> JacobianForm:
    """z = θ[start:limit:stride]: per sliced axis ∂z[o]/∂θ[j] = δ(j, start + o·stride)."""
    shape = shapes[pos]
    strides = strides or (1,) * len(shape)
    factor_for = {
        a: _constant(_slice_matrix(n, start, out_shape[a], stride))
        for a, (n, start, stride) in enumerate(zip(shape, start_indices, strides))
        if out_shape[a] != n
    }
    return _axiswise(len(shape), factor_for)


@defrule("cumsum")
def cumsum_rule(shapes, pos, out_shape, name, *, axis, reverse=False, **params) -> JacobianForm:
    """z = cumsum(θ, axis): ∂z[o]/∂θ[j] = [j ≤ o] (reverse: [j ≥ o]) on that axis, a constant
    triangular matrix; other axes deltas."""
    n = shapes[pos][axis]
    tri = np.triu(np.ones((n, n))) if reverse else np.tril(np.ones((n, n)))
    return _axiswise(len(shapes[pos]), {int(axis): _constant(tri)})


# Run-time selections.

def _window(operand: int, n: int, s: int, transpose: bool) -> FactorFor:
    shape = (n, s) if transpose else (s, n)
    return lambda labels: operand_factor(labels, shape, operand, "dynamic_window", (n, s, transpose))


@defrule("dynamic_slice")
def dynamic_slice_rule(shapes, pos, out_shape, name, *, slice_sizes, **params) -> JacobianForm:
    """z = θ[c_a : c_a + s_a] with c_a = clip(start_a, 0, n_a − s_a): per axis with s_a < n_a
    the run-time selection ∂z[o]/∂θ[j] = δ(j, c_a + o); full-size axes are deltas."""
    _require_position(pos, 0, name)
    factor_for = {a: _window(1 + a, n, s, False)
                  for a, (n, s) in enumerate(zip(shapes[0], slice_sizes)) if s != n}
    return _axiswise(len(shapes[0]), factor_for)


@defrule("dynamic_update_slice")
def dynamic_update_slice_rule(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """z = base with the window at c_a = clip(start_a, 0, n_a − s_a) replaced by update.
    θ = base: ∂z[i]/∂base[i] = 1 − [i in window], a block-diagonal mask.
    θ = update: per axis with s_a < n_a the run-time selection ∂z[i]/∂u[j] = δ(i, c_a + j)."""
    rank = len(shapes[0])
    if pos == 0:
        labels = tuple(f"d{a}" for a in range(rank))
        mask = operand_factor(labels, shapes[0], 1, "update_mask")
        return JacobianForm(out_labels=labels, theta_labels=labels, factors=(mask,))
    _require_position(pos, 1, name)
    factor_for = {a: _window(2 + a, n, s, True)
                  for a, (n, s) in enumerate(zip(shapes[0], shapes[1])) if s != n}
    return _axiswise(rank, factor_for)


@defrule("select_n")
def select_n_rule(shapes, pos, out_shape, name, **params) -> JacobianForm:
    """z = select_n(which, *cases) with θ = cases[k], k = pos − 1: ∂z[i]/∂θ[i] = [which[i] == k],
    block-diagonal on every axis (a scalar factor for a scalar predicate)."""
    if pos == 0:
        raise NoStructure("select_n is not linear in its predicate")
    labels = tuple(f"d{a}" for a in range(len(out_shape)))
    fac = labels if len(shapes[0]) else ()
    case = operand_factor(fac, shapes[0], 0, "select_case", (pos - 1,))
    return JacobianForm(out_labels=labels, theta_labels=labels, factors=(case,))


# Gather.

def _gather_mode(mode) -> bool:
    """True for clamped start indices (CLIP; PROMISE_IN_BOUNDS, which XLA clamps), False for
    FILL_OR_DROP (out-of-bounds slices are zero in the linear map)."""
    if mode in (lax.GatherScatterMode.CLIP, lax.GatherScatterMode.PROMISE_IN_BOUNDS):
        return True
    if mode == lax.GatherScatterMode.FILL_OR_DROP:
        return False
    raise NoStructure(f"gather mode {mode}")


def _gather_theta_label(a, n, s, dn, offset_label, batch, idx_batch_shape, clip):
    """θ's label for operand axis ``a`` and the factor joining it to z, if any."""
    collapsed = a in dn.collapsed_slice_dims
    if a in dn.operand_batching_dims:
        j = dn.start_indices_batching_dims[dn.operand_batching_dims.index(a)]
        return batch[j], None
    if a in dn.start_index_map:
        k = dn.start_index_map.index(a)
        z = () if collapsed else (offset_label,)
        shape = idx_batch_shape + (() if collapsed else (s,)) + (n,)
        return f"t{a}", operand_factor(batch + z + (f"t{a}",), shape, 1, "gather_window",
                                       (k, n, s, clip, collapsed))
    if collapsed:
        return f"t{a}", constant_factor((f"t{a}",), np.eye(1, n)[0])
    if s == n:
        return offset_label, None
    return f"t{a}", constant_factor((offset_label, f"t{a}"), np.eye(s, n))


class GatherDims(NamedTuple):
    """A gather's dimension numbers as int tuples, batching axes included (empty where the
    traced JAX has none: its ``GatherDimensionNumbers`` gained them in 0.4.31)."""
    offset_dims: tuple
    collapsed_slice_dims: tuple
    start_index_map: tuple
    operand_batching_dims: tuple = ()
    start_indices_batching_dims: tuple = ()


def _ints(dn, field: str) -> tuple:
    return tuple(int(d) for d in getattr(dn, field, ()))


@defrule("gather")
def gather_rule(shapes, pos, out_shape, name, *, dimension_numbers, slice_sizes, mode, **params) -> JacobianForm:
    """z = gather(θ, idx): z[b, o] = θ[start(b) + o] on the sliced axes. Per indexed operand axis
    a (index component k) the run-time factor ∂z[b, o]/∂θ[.., j, ..] = δ(j, c_a(b) + o) with
    c_a = clip(idx[b, k], 0, n_a − s_a) (CLIP, PROMISE_IN_BOUNDS) or c_a = idx[b, k] times
    [0 ≤ idx[b, k] ≤ n_a − s_a] (FILL_OR_DROP: the linear map fills with zeros, as JAX's JVP
    does); un-indexed full-size axes are deltas with their offset dims, batching axes are
    deltas with the output batch dims, other un-indexed axes start at 0 (constant selection)."""
    _require_position(pos, 0, name)
    dn = dimension_numbers
    dn = GatherDims(*(_ints(dn, f) for f in GatherDims._fields))
    clip = _gather_mode(mode)
    idx_batch_shape = tuple(shapes[1][:-1])
    out = [f"o{d}" for d in range(len(out_shape))]
    batch_axes = [d for d in range(len(out_shape)) if d not in dn.offset_dims]
    batch = tuple(f"b{j}" for j in range(len(batch_axes)))
    for j, d in enumerate(batch_axes):
        out[d] = batch[j]
    sliced = [a for a in range(len(shapes[0]))
              if a not in dn.collapsed_slice_dims and a not in dn.operand_batching_dims]
    offset_of = dict(zip(sliced, (out[d] for d in dn.offset_dims)))
    theta, factors = [], []
    for a, (n, s) in enumerate(zip(shapes[0], slice_sizes)):
        label, factor = _gather_theta_label(a, n, s, dn, offset_of.get(a), batch, idx_batch_shape, clip)
        theta.append(label)
        factors += [factor] if factor is not None else []
    return JacobianForm(out_labels=tuple(out), theta_labels=tuple(theta), factors=tuple(factors))


@defrule("scatter-add")
def scatter_add_rule(shapes, pos, out_shape, name, *, dimension_numbers, mode, **params) -> JacobianForm:
    """z = scatter_add(operand, idx, updates). θ = operand: ∂z/∂operand = I (deltas).
    θ = updates: scatter-add is the transpose of the gather with the same dimension numbers
    (window sizes: 1 on inserted and batching axes, the update's window dims elsewhere), so its
    form is that gather's with z and θ exchanged: ∂z[i]/∂u[b, o] = ∂gather(z)[b, o]/∂z[i].
    Out-of-range windows are dropped (FILL_OR_DROP) or clamped (CLIP), as in that gather."""
    if pos == 0:
        labels = tuple(f"d{a}" for a in range(len(out_shape)))
        return JacobianForm(out_labels=labels, theta_labels=labels)
    _require_position(pos, 2, name)
    dn = dimension_numbers
    gather_dn = GatherDims(
        offset_dims=_ints(dn, "update_window_dims"), collapsed_slice_dims=_ints(dn, "inserted_window_dims"),
        start_index_map=_ints(dn, "scatter_dims_to_operand_dims"),
        operand_batching_dims=_ints(dn, "operand_batching_dims"),
        start_indices_batching_dims=_ints(dn, "scatter_indices_batching_dims"))
    windows = iter(shapes[2][d] for d in gather_dn.offset_dims)
    slice_sizes = tuple(1 if a in gather_dn.collapsed_slice_dims or a in gather_dn.operand_batching_dims
                        else next(windows) for a in range(len(shapes[0])))
    form = gather_rule([shapes[0], shapes[1]], 0, shapes[2], "gather", dimension_numbers=gather_dn,
                       slice_sizes=slice_sizes, mode=mode)
    return JacobianForm(out_labels=form.theta_labels, theta_labels=form.out_labels, factors=form.factors)


# Recipes.


def _one_hot_window(start, n: int, s: int, valid=True):
    """``W[..., o, j] = [j == start[...] + o] · valid[...]`` of shape ``start.shape + (s, n)``."""
    window = jnp.asarray(start)[..., None] + jnp.arange(s)
    hit = window[..., None] == jnp.arange(n)
    return hit & jnp.asarray(valid)[..., None, None]


@defrecipe("dynamic_window")
def dynamic_window(spec, eqn, read, linear_zero):
    """Selection of ``dynamic_slice``: ``S[o, j] = δ(j, clip(start, 0, n − s) + o)``, shape
    ``(s, n)``; transposed ``(n, s)`` for the update of ``dynamic_update_slice``."""
    n, s, transpose = spec.args
    start = jnp.clip(read(eqn.inputs[spec.operand]), 0, n - s)
    window = _one_hot_window(start, n, s).astype(eqn.outputs[0].dtype)
    return window.T if transpose else window


@defrecipe("update_mask")
def update_mask(spec, eqn, read, linear_zero):
    """``dynamic_update_slice``'s base mask: 1 outside the (clamped) updated window, 0 inside."""
    dtype = eqn.outputs[0].dtype
    ones = jnp.ones(eqn.inputs[0].shape, dtype)
    starts = [read(x) for x in eqn.inputs[2:]]
    return lax.dynamic_update_slice(ones, jnp.zeros(eqn.inputs[1].shape, dtype), starts)


@defrecipe("select_case")
def select_case(spec, eqn, read, linear_zero):
    """``[which == k]`` for case ``k`` of ``select_n`` (bool predicates read as 0/1)."""
    (k,) = spec.args
    which = jnp.asarray(read(eqn.inputs[0])).astype(jnp.int32)
    return (which == k).astype(eqn.outputs[0].dtype)


@defrecipe("gather_window")
def gather_window(spec, eqn, read, linear_zero):
    """One indexed operand axis of ``gather``: ``W[b, o, j] = δ(j, c(b) + o)`` with ``c`` the
    index component ``k`` clamped to ``[0, n − s]`` (clip) or, for fill, zero where it lies
    outside that range. Shape ``batch + (s, n)``, or ``batch + (n,)`` for a collapsed axis."""
    k, n, s, clip, collapsed = spec.args
    start = jnp.asarray(read(eqn.inputs[1]))[..., k]
    if clip:
        window = _one_hot_window(jnp.clip(start, 0, n - s), n, s)
    else:
        window = _one_hot_window(start, n, s, (start >= 0) & (start <= n - s))
    window = window[..., 0, :] if collapsed else window
    return window.astype(eqn.outputs[0].dtype)

"""Structure rules of the convolution and windowed-sum primitives, with their recipes.

Labels: on the output, ``n`` (batch), ``o`` (feature), ``s0, s1, ...`` (spatial); on the kernel,
``o`` (out feature), ``c`` (in feature), ``k0, k1, ...`` (spatial); on the lhs, ``n``, ``c``,
``x0, x1, ...``. Axes are placed through the primitive's ``ConvDimensionNumbers``, so every
layout (NCHW/NHWC/OIHW/HWIO, 1-D to 3-D) shares the same labels.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ntkc.ir.forms import JacobianForm, constant_factor, operand_factor
from ntkc.ir.from_jaxpr import bind
from ntkc.rules.table import NoStructure, defrecipe, defrule


def _place(spec, names) -> tuple[str, ...]:
    """Labels of an array whose axis ``spec[i]`` carries ``names[i]``."""
    labels = [""] * len(spec)
    for axis, name in zip(spec, names):
        labels[axis] = name
    return tuple(labels)


def _spatial(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(n))


@defrule("conv_general_dilated")
def conv_rule(shapes, pos, out_shape, name, *, dimension_numbers, **params) -> JacobianForm:
    """z = conv(lhs, rhs): θ is the kernel (``pos == 1``) or the input (``pos == 0``)."""
    if pos == 1:
        return _kernel_form(shapes, out_shape, dimension_numbers, **params)
    return _input_form(shapes, out_shape, dimension_numbers, **params)


def _kernel_form(shapes, out_shape, dimension_numbers, *, window_strides, padding, lhs_dilation,
                 rhs_dilation, feature_group_count, batch_group_count, **params) -> JacobianForm:
    """θ = the kernel K. With x̂ the lhs dilated by ``lhs_dilation`` and padded, s the strides,
    d the rhs dilation, G/B the feature/batch group counts, I = C/G, N' = N/B:

        ∂z[n,o,h,w]/∂K[o',c,i,j] = δ(o,o') · x̂[b(o)·N' + n, g(o)·I + c, h·s₀ + i·d₀, w·s₁ + j·d₁]

    with g(o) = o // (O/G), b(o) = o // (O/B). Ungrouped (G = B = 1) the out feature is a
    constant block-diagonal delta and the factor is the patches P[n, h, w, i, j, c] of the lhs;
    grouped, the factor also carries ``o`` (block-diagonal) and picks each o's group.
    """
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    nsp = len(lhs_spec) - 2
    out_sp, kern_sp = _spatial("s", nsp), _spatial("k", nsp)
    out = _place(out_spec, ("n", "o") + out_sp)
    theta = _place(rhs_spec, ("o", "c") + kern_sp)
    rhs = shapes[1]
    grouped = feature_group_count > 1 or batch_group_count > 1
    labels = ("n",) + out_sp + kern_sp + ("c",) + (("o",) if grouped else ())
    shape = ((out_shape[out_spec[0]],) + tuple(out_shape[a] for a in out_spec[2:])
             + tuple(rhs[a] for a in rhs_spec[2:]) + (rhs[rhs_spec[1]],)
             + ((rhs[rhs_spec[0]],) if grouped else ()))
    args = (("lhs_spec", tuple(lhs_spec)), ("window_strides", tuple(window_strides)),
            ("padding", tuple(map(tuple, padding))), ("lhs_dilation", tuple(lhs_dilation)),
            ("rhs_dilation", tuple(rhs_dilation)), ("feature_group_count", feature_group_count),
            ("batch_group_count", batch_group_count))
    patches = operand_factor(labels, shape, 0, recipe="conv_patches", args=args)
    return JacobianForm(out_labels=out, theta_labels=theta, factors=(patches,))


def _input_form(shapes, out_shape, dimension_numbers, *, batch_group_count, **params) -> JacobianForm:
    """θ = the input x. Each example is convolved on its own (``batch_group_count == 1``), so

        ∂z[n,o,h,w]/∂x[n',c,u,v] = δ(n,n') · T[o,h,w,c,u,v],

    T the conv's Jacobian for one example (batch 1), computed by applying the conv to a basis.
    """
    if batch_group_count > 1:
        raise NoStructure("batch_group_count > 1 mixes the batch of a conv input")
    lhs_spec, _, out_spec = dimension_numbers
    nsp = len(lhs_spec) - 2
    out = _place(out_spec, ("n", "o") + _spatial("s", nsp))
    theta = _place(lhs_spec, ("n", "c") + _spatial("x", nsp))
    keep_out = [a for a in range(len(out)) if a != out_spec[0]]
    keep_in = [a for a in range(len(theta)) if a != lhs_spec[0]]
    labels = tuple(out[a] for a in keep_out) + tuple(theta[a] for a in keep_in)
    shape = tuple(out_shape[a] for a in keep_out) + tuple(shapes[0][a] for a in keep_in)
    basis = operand_factor(labels, shape, 1, recipe="conv_input_basis")
    return JacobianForm(out_labels=out, theta_labels=theta, factors=(basis,))


def window_matrix(n_in: int, n_out: int, window: int, stride: int, pad_low: int,
                  base_dilation: int, window_dilation: int) -> np.ndarray:
    """S[j, i] = #{w < window : j·stride + w·window_dilation = pad_low + i·base_dilation}: the
    0/1 matrix summing one axis's windows (input i sits at pad_low + i·base_dilation once dilated
    and padded)."""
    j = np.arange(n_out)[:, None, None]
    w = np.arange(window)[None, :, None]
    i = np.arange(n_in)[None, None, :]
    hits = j * stride + w * window_dilation == pad_low + i * base_dilation
    return hits.sum(axis=1).astype(np.int8)


@defrule("reduce_window_sum")
def reduce_window_sum_rule(shapes, pos, out_shape, name, *, window_dimensions, window_strides,
                           padding, base_dilation, window_dilation, **params) -> JacobianForm:
    """z = windowed sums of θ, separable per axis:

        ∂z[j₀, j₁, ...]/∂θ[i₀, i₁, ...] = Π_a S_a[j_a, i_a]

    with S_a from :func:`window_matrix`. An axis whose S_a is the identity is a Kronecker delta;
    every other axis gets its S_a as a constant factor.
    """
    out, theta, factors = [], [], []
    for a, (n_in, n_out) in enumerate(zip(shapes[pos], out_shape)):
        s = window_matrix(n_in, n_out, window_dimensions[a], window_strides[a], padding[a][0],
                          base_dilation[a], window_dilation[a])
        if n_in == n_out and np.array_equal(s, np.eye(n_in)):
            out.append(f"d{a}")
            theta.append(f"d{a}")
            continue
        out.append(f"j{a}")
        theta.append(f"i{a}")
        factors.append(constant_factor((f"j{a}", f"i{a}"), s))
    return JacobianForm(out_labels=tuple(out), theta_labels=tuple(theta), factors=tuple(factors))


# Recipes.


def patches(x, kernel, out, padding, strides, lhs_dilation, rhs_dilation):
    """P[n, out..., kernel..., c] = x̂[n, out·strides + kernel·rhs_dilation, c] for ``x`` laid
    out (N, spatial..., C), x̂ = x dilated by ``lhs_dilation`` and padded (negative padding crops).

    Zero FLOPs: one ``lax.pad`` and one strided ``lax.slice`` per kernel offset.
    """
    config = [(0, 0, 0), *((lo, hi, d - 1) for (lo, hi), d in zip(padding, lhs_dilation)), (0, 0, 0)]
    xpad = lax.pad(x, jnp.zeros((), x.dtype), config)
    n, c = xpad.shape[0], xpad.shape[-1]
    slices = []
    for offset in itertools.product(*map(range, kernel)):
        start = tuple(k * d for k, d in zip(offset, rhs_dilation))
        limit = tuple(b + max((m - 1) * s + 1, 0) for b, m, s in zip(start, out, strides))
        slices.append(lax.slice(xpad, (0, *start, 0), (n, *limit, c), (1, *strides, 1)))
    stacked = jnp.stack(slices, axis=-2)  # (N, out..., prod(kernel), C)
    return stacked.reshape(stacked.shape[:-2] + tuple(kernel) + (c,))


def group_patches(p, n_out_features: int, feature_groups: int, batch_groups: int):
    """F[n, ..., c, o] = P[b(o)·N' + n, ..., g(o)·I + c]: each out feature o reads its own
    feature group g(o) = o // (O/G) and batch group b(o) = o // (O/B) (a gather, no FLOPs)."""
    n, c = p.shape[0], p.shape[-1]
    mid = p.shape[1:-1]
    p = p.reshape((batch_groups, n // batch_groups) + mid + (feature_groups, c // feature_groups))
    p = jnp.moveaxis(p, -2, 1).reshape((batch_groups * feature_groups, n // batch_groups) + mid
                                       + (c // feature_groups,))
    o = np.arange(n_out_features)
    index = (o // (n_out_features // batch_groups)) * feature_groups + o // (n_out_features // feature_groups)
    return jnp.moveaxis(jnp.take(p, index, axis=0), 0, -1)


@defrecipe("conv_patches")
def conv_patches(spec, eqn, read, linear_zero):
    """The lhs patches of a conv whose kernel is θ (see :func:`_kernel_form`)."""
    a = dict(spec.args)
    lhs_spec = a["lhs_spec"]
    nsp = len(lhs_spec) - 2
    x = jnp.transpose(read(eqn.inputs[spec.operand]), (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    out, kernel = spec.shape[1:1 + nsp], spec.shape[1 + nsp:1 + 2 * nsp]
    p = patches(x, kernel, out, a["padding"], a["window_strides"], a["lhs_dilation"], a["rhs_dilation"])
    groups, batch_groups = a["feature_group_count"], a["batch_group_count"]
    if groups == 1 and batch_groups == 1:
        return p
    return group_patches(p, spec.shape[-1], groups, batch_groups)


@defrecipe("conv_input_basis")
def conv_input_basis(spec, eqn, read, linear_zero):
    """T[out axes but batch, lhs axes but batch]: the conv applied to every basis vector of one
    example (batch 1) of its input, with the kernel (input ``spec.operand``) fixed."""
    lhs_spec, _, out_spec = eqn.params["dimension_numbers"]
    shape = list(eqn.inputs[0].shape)
    shape[lhs_spec[0]] = 1
    size = math.prod(shape)
    kernel = read(eqn.inputs[spec.operand])
    apply = lambda e: bind(eqn, [e.reshape(shape), kernel])[0]
    cols = jax.vmap(apply)(jnp.eye(size, dtype=eqn.inputs[0].dtype))  # (size, *z with batch 1)
    cols = jnp.squeeze(cols, axis=1 + out_spec[0])
    return jnp.moveaxis(cols, 0, -1).reshape(spec.shape)

"""What a user writes by hand today: the empirical NTK in plain JAX, without ntkc.

Both return the full kernel in neural-tangents' layout for ``trace_axes=()``, ``vmap_axes=0``
and outputs of shape ``(N, O)``: an array of shape ``(N1, N2, O, O)``.

* :func:`jacobian_ntk`: per-example Jacobians by ``vmap(jacrev)``, contracted leaf by leaf with
  ``einsum`` (paper: Jacobian contraction, N·O·[FP] + N²·O²·P).
* :func:`ntvp_ntk`: NTK-vector products: the VJP of ``f(·, x2)`` applied to every basis
  cotangent, pushed through the JVP of ``f(·, x1)``, all columns at once with ``vmap``
  (paper: NTK-vector products, N²·O·[FP]).

Usage::

    kernel = jax.jit(jacobian_ntk(f))        # or ntvp_ntk(f)
    K = kernel(x1, x2, params)               # (N1, N2, O, O)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def jacobian_ntk(f):
    """``kernel(x1, x2, params)`` by ``vmap(jacrev)`` Jacobians and a per-leaf ``einsum``."""

    def one(params, x):
        return f(params, x[None])[0]

    def kernel(x1, x2, params):
        j1 = jax.vmap(jax.jacrev(one), (None, 0))(params, x1)
        j2 = jax.vmap(jax.jacrev(one), (None, 0))(params, x2)
        terms = [jnp.einsum("ao...,bp...->abop", a, b)
                 for a, b in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2))]
        return sum(terms)

    return kernel


def ntvp_ntk(f):
    """``kernel(x1, x2, params)`` by ``vmap`` over basis cotangents of ``jvp ∘ vjp``."""

    def kernel(x1, x2, params):
        out2, vjp2 = jax.vjp(lambda p: f(p, x2), params)
        basis = jnp.eye(out2.size, dtype=out2.dtype).reshape(out2.size, *out2.shape)

        def column(cotangent):
            tangent, = vjp2(cotangent)
            return jax.jvp(lambda p: f(p, x1), (params,), (tangent,))[1]

        cols = jax.vmap(column)(basis)                      # (N2·O, N1, O)
        n2, o = out2.shape
        return cols.reshape(n2, o, *cols.shape[1:]).transpose(2, 0, 3, 1)

    return kernel

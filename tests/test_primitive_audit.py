"""An audit of the linear primitives networks produce, with a parameter as their direct
input: the structured kernel equals the float64 oracle, and only the one documented case
(max-pooling a parameter itself, ``select_and_gather_add``) takes the dense fallback."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.passes.consumers import DenseFallbackWarning
from reference import oracle_ntk

IDX = np.array([0, 2, 2])

#: name -> f(p, x), every one reading p["t"] (5, 3) or p["u"] (3, 3) directly.
AUDIT = {
    "scatter_add_updates": lambda p, x: jnp.zeros((5, 3)).at[IDX].add(p["u"]) @ x.T,
    "scatter_add_operand": lambda p, x: p["t"].at[IDX].add(1.0) @ x.T,
    "scatter_set": lambda p, x: p["t"].at[IDX[:2]].set(p["u"][:2]) @ x.T,
    "dynamic_update_slice": lambda p, x: jax.lax.dynamic_update_slice(p["t"], p["u"][:2], (1, 0)) @ x.T,
    "sort": lambda p, x: jnp.sort(p["t"], axis=0) @ x.T,
    "argsort_take_along_axis": lambda p, x: jnp.take_along_axis(
        p["t"], jnp.argsort(x[:1].sum() * jnp.arange(5.0)[:, None] % 3.0 * jnp.ones((5, 3)), axis=0), axis=0) @ x.T,
    "top_k": lambda p, x: jax.lax.top_k(p["u"], 2)[0] @ x[:, :2].T,
    "cumsum": lambda p, x: jnp.cumsum(p["t"], axis=1) @ x.T,
    "cumprod": lambda p, x: jnp.cumprod(p["t"], axis=0) @ x.T,
    "cummax": lambda p, x: jax.lax.cummax(p["t"], axis=0) @ x.T,
    "cumlogsumexp": lambda p, x: jax.lax.cumlogsumexp(p["t"], axis=0) @ x.T,
    "reduce_max": lambda p, x: jnp.max(p["t"], axis=0) * x,
    "clip": lambda p, x: jnp.clip(p["t"], -0.5, 0.5) @ x.T,
    "leaky_where": lambda p, x: jnp.where(p["t"] > 0, p["t"], 0.1 * p["t"]) @ x.T,
    "tile": lambda p, x: jnp.tile(p["u"], (2, 1))[:5] @ x.T,
    "roll_triu": lambda p, x: jnp.triu(jnp.roll(p["u"], 1, axis=0)) @ x.T,
    "data_dependent_row": lambda p, x: p["t"][jnp.argmax(x[0])] * x,
    "max_pool_of_a_parameter": lambda p, x: jax.lax.reduce_window(
        p["t"], -jnp.inf, jax.lax.max, (2, 1), (1, 1), "VALID") @ x.T,
}
#: Known and documented: the parameter itself max-pooled (its linearization,
#: select_and_gather_add, has no rule); exact via the dense fallback.
DENSE = {"max_pool_of_a_parameter": "select_and_gather_add"}


@pytest.mark.parametrize("name", sorted(AUDIT))
def test_primitive_with_parameter_input(name):
    rng = np.random.default_rng(0)
    params = {"t": rng.normal(size=(5, 3)), "u": rng.normal(size=(3, 3))}
    x1, x2 = rng.normal(size=(2, 3)), rng.normal(size=(3, 3))
    f = AUDIT[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = jax.jit(ntkc.ntk_fn(f, trace_axes=(), method="structured"))(x1, x2, params)
    want = oracle_ntk(f, x1, x2, params, trace_axes=())
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    dense = {str(w.message).split("'")[1] for w in caught if issubclass(w.category, DenseFallbackWarning)}
    assert dense == ({DENSE[name]} if name in DENSE else set()), dense

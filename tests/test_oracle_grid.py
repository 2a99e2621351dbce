"""Every method × every zoo model × a grid of trace/diagonal/vmap settings equals the oracle.

The oracle (``tests/reference.py``) is computed once per (model, setting) in float64; each
registered method is compared to it in float32 (rtol 1e-4) and float64 (rtol 1e-10).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.testing import ZOO
from reference import oracle_full_ntk, reduce_oracle


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    trace_axes: tuple
    diagonal_axes: tuple
    vmap: bool
    min_ndim: int  # the setting needs outputs with at least this many axes


SETTINGS = [
    Setting("default", (-1,), (), False, 1),
    Setting("full", (), (), False, 1),
    Setting("batch_diag", (), (0,), False, 1),
    Setting("trace_and_batch_diag", (-1,), (0,), False, 2),
    Setting("vmap_full", (), (), True, 1),
    Setting("vmap_batch_diag_trace", (-1,), (0,), True, 2),
    Setting("unsorted_negative", (-1, 1), (), False, 3),
    Setting("vmap_inner_diag", (1,), (-1,), True, 3),
]

TOLERANCE = {jnp.float32: dict(rtol=1e-4, atol=1e-4), jnp.float64: dict(rtol=1e-10, atol=1e-10)}


@functools.lru_cache(maxsize=None)
def _out_ndims(model_name):
    inst = ZOO[model_name].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    out = jax.eval_shape(lambda p, x: inst.f(p, x, **inst.kwargs), inst.params, inst.x1)
    return min(leaf.ndim for leaf in jax.tree_util.tree_leaves(out))


def _cases():
    cases = []
    for name, model in ZOO.items():
        ndim = _out_ndims(name)
        for s in SETTINGS:
            if s.min_ndim > ndim:
                continue
            cases.append(pytest.param(name, s, id=f"{name}-{s.name}", marks=pytest.mark.xdist_group(name)))
    return cases


@functools.lru_cache(maxsize=None)
def _instance(name, dtype):
    return ZOO[name].make(jax.random.PRNGKey(0), dtype=dtype)


@functools.lru_cache(maxsize=None)
def _full_oracle(name, vmap, same):
    inst = _instance(name, jnp.float64)
    return oracle_full_ntk(
        inst.f, inst.x1, None if same else inst.x2, inst.params,
        vmap_axis=(0, 0) if vmap else None, **inst.kwargs,
    )


def _oracle(name, setting):
    # A traced or diagonal batch axis needs N1 == N2: use x2 = x1 then.
    ndim = _out_ndims(name)
    same = 0 in [a % ndim for a in (*setting.trace_axes, *setting.diagonal_axes)]
    full = _full_oracle(name, setting.vmap, same)
    ref = reduce_oracle(full, trace_axes=setting.trace_axes, diagonal_axes=setting.diagonal_axes)
    return ref, same


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("method", list(ntkc.METHODS))
@pytest.mark.parametrize("name, setting", _cases())
def test_method_matches_oracle(name, setting, method, dtype):
    ref, same = _oracle(name, setting)
    inst = _instance(name, dtype)
    kernel = ntkc.ntk_fn(
        inst.f, trace_axes=setting.trace_axes, diagonal_axes=setting.diagonal_axes,
        vmap_axes=0 if setting.vmap else None, method=method,
    )
    got = kernel(inst.x1, None if same else inst.x2, inst.params, **inst.kwargs)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(ref)
    for g, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)):
        assert g.shape == r.shape
        assert g.dtype == dtype, f"kernel dtype {g.dtype}, expected {dtype}"
        np.testing.assert_allclose(np.asarray(g, np.float64), r, **TOLERANCE[dtype])

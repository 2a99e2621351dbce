"""Every method × every zoo model × a grid of trace/diagonal/vmap settings equals the oracle.

The oracle (``tests/reference.py``) is computed once per (model, vmap, x2) in float64; each
registered method is compared to it in float32 (rtol 1e-4) on every setting, and in float64
(rtol 1e-10) on the settings in :data:`FLOAT64_SETTINGS` (the axis bookkeeping does not depend
on the dtype; float64 is there to catch small numerical errors that float32 tolerances hide).
One test case is one (model, method, vmap): the kernels of all its settings, in both dtypes, are
built in one ``jax.jit`` program (XLA shares their common forward and backward sweeps, so this
costs one compile, not one per setting) and compared setting by setting. ``test_axes.py`` and
``test_structured.py`` call kernels eagerly.
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

FLOAT64_SETTINGS = {"full", "vmap_batch_diag_trace", "vmap_full"}

TOLERANCE = {jnp.float32: dict(rtol=1e-4, atol=1e-4), jnp.float64: dict(rtol=1e-10, atol=1e-10)}


@functools.lru_cache(maxsize=None)
def _out_ndims(model_name):
    inst = ZOO[model_name].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    out = jax.eval_shape(lambda p, x: inst.f(p, x, **inst.kwargs), inst.params, inst.x1)
    return min(leaf.ndim for leaf in jax.tree_util.tree_leaves(out))


def _settings(name, vmap, dtype):
    ndim = _out_ndims(name)
    return [s for s in SETTINGS if s.vmap == vmap and s.min_ndim <= ndim
            and (dtype == jnp.float32 or s.name in FLOAT64_SETTINGS)]


def _cases():
    return [pytest.param(name, method, vmap, marks=pytest.mark.xdist_group(name),
                         id=f"{name}-{method}-{'vmap' if vmap else 'batch'}")
            for name in ZOO for method in ntkc.METHODS for vmap in (False, True)
            if _settings(name, vmap, jnp.float32)]


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


@pytest.mark.parametrize("name, method, vmap", _cases())
def test_method_matches_oracle(name, method, vmap):
    checks, programs = [], []
    for dtype in (jnp.float32, jnp.float64):
        inst = _instance(name, dtype)
        for setting in _settings(name, vmap, dtype):
            ref, same = _oracle(name, setting)
            kernel = ntkc.ntk_fn(inst.f, trace_axes=setting.trace_axes, diagonal_axes=setting.diagonal_axes,
                                 vmap_axes=0 if vmap else None, method=method)
            checks.append((f"{setting.name}-{jnp.dtype(dtype).name}", dtype, ref))
            programs.append((kernel, inst, same))

    def every_kernel(inputs):
        return [kernel(x1, None if same else x2, params, **inst.kwargs)
                for (kernel, inst, same), (x1, x2, params) in zip(programs, inputs)]

    inputs = [(inst.x1, inst.x2, inst.params) for _, inst, _ in programs]
    for (label, dtype, ref), got in zip(checks, jax.jit(every_kernel)(inputs)):
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(ref), label
        for g, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)):
            assert g.shape == r.shape, label
            assert g.dtype == dtype, f"{label}: kernel dtype {g.dtype}, expected {dtype}"
            np.testing.assert_allclose(np.asarray(g, np.float64), r, err_msg=label, **TOLERANCE[dtype])

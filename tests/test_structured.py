"""The structured-derivatives compiler path (preview, not yet in ``ntkc.METHODS``) vs the oracle.

Every zoo model, with and without ``vmap_axes``, full and traced/diagonal kernels, float64.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkc.methods.structured import structured_kernel
from ntkc.passes.consumers import DenseFallbackWarning
from ntkc.problem import build_problem
from ntkc.testing import ZOO
from reference import oracle_ntk

SETTINGS = {
    "full": ((), ()),
    "trace_batch_diag": ((-1,), (0,)),
}


def _out_ndim(name):
    inst = ZOO[name].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    out = jax.eval_shape(lambda p, x: inst.f(p, x, **inst.kwargs), inst.params, inst.x1)
    return min(leaf.ndim for leaf in jax.tree_util.tree_leaves(out))


def _cases():
    for name in ZOO:
        ndim = _out_ndim(name)
        for setting, (trace_axes, diagonal_axes) in SETTINGS.items():
            if len({a % ndim for a in (*trace_axes, *diagonal_axes)}) < len(trace_axes) + len(diagonal_axes):
                continue  # names one axis twice at this output rank: invalid, see test_errors
            for vmap in (False, True):
                yield pytest.param(name, setting, vmap, id=f"{name}-{setting}-{'vmap' if vmap else 'batch'}",
                                   marks=pytest.mark.xdist_group(f"structured-{name}"))


@pytest.mark.parametrize("name, setting, vmap", list(_cases()))
def test_structured_matches_oracle(name, setting, vmap):
    trace_axes, diagonal_axes = SETTINGS[setting]
    inst = ZOO[name].make(jax.random.PRNGKey(0), dtype=jnp.float64)
    ndim = _out_ndim(name)
    same = 0 in {a % ndim for a in (*trace_axes, *diagonal_axes)}
    x2 = None if same else inst.x2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DenseFallbackWarning)
        problem = build_problem(inst.f, inst.x1, x2, inst.params, dict(inst.kwargs),
                                trace_axes=trace_axes, diagonal_axes=diagonal_axes,
                                vmap_axes=0 if vmap else None)
        got = structured_kernel(problem, inst.params)
    ref = oracle_ntk(inst.f, inst.x1, x2, inst.params, trace_axes=trace_axes,
                     diagonal_axes=diagonal_axes, vmap_axis=(0, 0) if vmap else None, **inst.kwargs)
    for g, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)):
        assert g.shape == r.shape
        np.testing.assert_allclose(np.asarray(g), r, rtol=1e-10, atol=1e-10)


def test_dense_fallback_warns_with_primitive_and_source():
    inst = ZOO["conv_same_nhwc"].make(jax.random.PRNGKey(0), dtype=jnp.float64)
    problem = build_problem(inst.f, inst.x1, None, inst.params, {}, trace_axes=(-1,),
                            diagonal_axes=(), vmap_axes=0)
    with pytest.warns(DenseFallbackWarning, match=r"no structure rule for primitive 'conv_general_dilated' \(from .*zoo_models.py"):
        structured_kernel(problem, inst.params)


def test_mlp_needs_no_fallback():
    inst = ZOO["mlp"].make(jax.random.PRNGKey(0), dtype=jnp.float64)
    problem = build_problem(inst.f, inst.x1, inst.x2, inst.params, {}, trace_axes=(-1,),
                            diagonal_axes=(), vmap_axes=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = structured_kernel(problem, inst.params)
    assert not [w for w in caught if issubclass(w.category, DenseFallbackWarning)]
    assert got.shape == (inst.x1.shape[0], inst.x2.shape[0])

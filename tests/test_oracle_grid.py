"""Every registered method on every zoo model equals the float64 oracle, and every output-axis
setting is right on models of every output rank.

* :func:`test_every_method_matches_the_oracle` — one case per (model, vmap): every method's full
  kernel in float64 (tolerance 1e-10, x2 given) and its default traced kernel in float32
  (x2 = x1), all in one ``jax.jit`` program (one compile; every method's plan shares one
  analysis of the model).
* :func:`test_axis_settings` — the trace/diagonal/vmap bookkeeping depends on the output's rank
  and tree, not on the layers, so every setting runs on four models covering ranks 2, 3, 4 and a
  pytree output, with every method, in float32 (three settings also in float64).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import pytest

import ntkc
from ntkc.testing import ZOO
from zoo_cases import assert_equal_to_oracle, instance, oracle, out_ndim


def _kernels_in_one_jit(programs):
    """Run ``[(kernel, inst, x2_is_x1), ...]`` inside one jitted function."""
    def every_kernel(inputs):
        return [kernel(x1, None if same else x2, params, **inst.kwargs)
                for (kernel, inst, same), (x1, x2, params) in zip(programs, inputs)]
    return jax.jit(every_kernel)([(inst.x1, inst.x2, inst.params) for _, inst, _ in programs])


@pytest.mark.parametrize("name, vmap", [
    pytest.param(name, vmap, marks=pytest.mark.xdist_group(name), id=f"{name}-{'vmap' if vmap else 'batch'}")
    for name in ZOO for vmap in (False, True)])
def test_every_method_matches_the_oracle(name, vmap):
    checks, programs = [], []
    for method in ntkc.METHODS:
        for dtype, trace_axes, same in ((jnp.float64, (), False), (jnp.float32, (-1,), True)):
            inst = instance(name, dtype)
            kernel = ntkc.ntk_fn(inst.f, trace_axes=trace_axes, vmap_axes=0 if vmap else None, method=method)
            programs.append((kernel, inst, same))
            ref = oracle(name, trace_axes=trace_axes, vmap=vmap, same=same)
            checks.append((f"{method}-{jnp.dtype(dtype).name}-trace{trace_axes}", dtype, ref))
    for (label, dtype, ref), got in zip(checks, _kernels_in_one_jit(programs)):
        assert_equal_to_oracle(got, ref, dtype, label)


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
FLOAT64_SETTINGS = {"full", "vmap_batch_diag_trace", "vmap_inner_diag"}

#: Output ranks 2 (mlp), 3 (attention), 4 (conv_image_out) and a dict of ranks 2 and 3.
AXIS_MODELS = ("mlp", "attention", "conv_image_out", "pytree_out")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in AXIS_MODELS])
def test_axis_settings(name):
    checks, programs = [], []
    for method in ntkc.METHODS:
        for setting in SETTINGS:
            if setting.min_ndim > out_ndim(name):
                continue
            # A traced or diagonal batch axis needs N1 == N2: x2 = x1 then.
            same = 0 in [a % out_ndim(name) for a in (*setting.trace_axes, *setting.diagonal_axes)]
            for dtype in (jnp.float32, jnp.float64) if setting.name in FLOAT64_SETTINGS else (jnp.float32,):
                inst = instance(name, dtype)
                kernel = ntkc.ntk_fn(inst.f, trace_axes=setting.trace_axes, diagonal_axes=setting.diagonal_axes,
                                     vmap_axes=0 if setting.vmap else None, method=method)
                programs.append((kernel, inst, same))
                ref = oracle(name, trace_axes=setting.trace_axes, diagonal_axes=setting.diagonal_axes,
                             vmap=setting.vmap, same=same)
                checks.append((f"{method}-{setting.name}-{jnp.dtype(dtype).name}", dtype, ref))
    for (label, dtype, ref), got in zip(checks, _kernels_in_one_jit(programs)):
        assert_equal_to_oracle(got, ref, dtype, label)

"""Ahead-of-time compiled kernels: no retracing, checked calls, cost report, serialization."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.testing import ZOO


def test_second_call_does_not_trace_f():
    traces = []

    def f(p, x):
        traces.append(1)
        return jnp.tanh(x @ p["w"]) @ p["v"]

    params = {"w": jnp.ones((3, 8)) / 3, "v": jnp.ones((8, 2)) / 8}
    x1, x2 = jnp.ones((4, 3)), jnp.linspace(0, 1, 15).reshape(5, 3)
    c = ntkc.compile(f, params, x1, x2, vmap_axes=0, method="structured")
    first = c(x1, x2, params)
    count = len(traces)
    second = c(x1 * 2, x2, params)
    assert len(traces) == count
    np.testing.assert_allclose(first, ntkc.ntk_fn(f, vmap_axes=0)(x1, x2, params), rtol=1e-6)
    assert not np.allclose(first, second)


@pytest.mark.parametrize("method", ["auto", "structured", "jacobian", "ntvp"])
def test_compiled_equals_ntk_fn_and_survives_serialization(method):
    inst = ZOO["conv_same_nhwc"].make(jax.random.PRNGKey(0))
    c = ntkc.compile(inst.f, inst.params, inst.x1, inst.x2, vmap_axes=0, trace_axes=(), method=method)
    assert c.method in ntkc.METHODS
    got = c(inst.x1, inst.x2, inst.params)
    ref = ntkc.ntk_fn(inst.f, vmap_axes=0, trace_axes=(), method="jacobian")(inst.x1, inst.x2, inst.params)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    restored = ntkc.deserialize(c.serialize())
    np.testing.assert_allclose(restored(inst.x1, inst.x2, inst.params), got, rtol=1e-6, atol=1e-7)
    assert "stablehlo" in c.lowered_text() or "func.func" in c.lowered_text()


def test_call_with_other_shapes_names_argument_and_both_shapes():
    f = lambda p, x: x @ p
    c = ntkc.compile(f, jnp.ones((3, 2)), jnp.ones((4, 3)), None)
    with pytest.raises(ValueError, match=r"`x1` has shape \(5, 3\), but the kernel was compiled for \(4, 3\)"):
        c(jnp.ones((5, 3)), None, jnp.ones((3, 2)))
    with pytest.raises(ValueError, match=r"`params` has dtype int32, but the kernel was compiled for float"):
        c(jnp.ones((4, 3)), None, jnp.ones((3, 2), jnp.int32))
    with pytest.raises(ValueError, match="`x2` was None at compile time"):
        c(jnp.ones((4, 3)), jnp.ones((4, 3)), jnp.ones((3, 2)))
    with pytest.raises(TypeError, match="`data` must be the bytes"):
        ntkc.deserialize("not bytes")


def test_compiled_cost_report_and_plan():
    inst = ZOO["mlp"].make(jax.random.PRNGKey(0))
    c = ntkc.compile(inst.f, inst.params, inst.x1, inst.x2, vmap_axes=0, method="structured")
    report = c.cost_report()
    flops = report.numeric("structured")[0]
    assert 0.5 <= flops / report.xla["structured"] <= 2.0
    assert "kernel 0" in str(c.plan) and "dot_general" in str(c.plan)

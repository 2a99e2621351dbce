"""Models with ``jax.custom_vjp`` functions: every method computes the kernel ``jax.jacrev``
defines through the custom backward rule. Structured transposes the rule (parameter uses outside
it keep their structure; a parameter read inside it gets a dense block, listed in the cost
report); NTK-vector products, which need forward mode, fall back to Jacobian contraction with a
warning naming the op and the user's line; ``auto`` never picks a method that falls back; the
matrix-free operator transposes the VJP for its forward products. (Both zoo models also run in
the oracle grid, the tile tests and the operator tests.)"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from zoo_cases import assert_equal_to_oracle, instance, oracle

MODELS = ("custom_vjp_ste", "custom_vjp_fused")


def kernel_and_warnings(name, method, **options):
    inst = instance(name, jnp.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = ntkc.ntk_fn(inst.f, vmap_axes=0, method=method, trace_axes=(), **options)(inst.x1, inst.x2, inst.params)
    return got, [w for w in caught if issubclass(w.category, (ntkc.MethodFallbackWarning, ntkc.DenseFallbackWarning))]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("method", ["jacobian", "structured", "ntvp", "auto"])
def test_every_method_equals_the_oracle(name, method):
    got, _ = kernel_and_warnings(name, method)
    assert_equal_to_oracle(got, oracle(name, trace_axes=(), vmap=True, same=False), jnp.float64, f"{name}-{method}")


@pytest.mark.parametrize("name", MODELS)
def test_ntvp_falls_back_naming_the_op_and_the_line(name):
    _, caught = kernel_and_warnings(name, "ntvp")
    (warning,) = [w for w in caught if issubclass(w.category, ntkc.MethodFallbackWarning)]
    assert "custom_lin" in str(warning.message) and "custom_vjp.py" in str(warning.message)
    assert "forward mode" in str(warning.message)


def test_structured_keeps_structure_outside_the_rule():
    """The straight-through estimator holds no parameter: no fallback at all. The fused layer
    reads one inside its rule: exactly that consumer is dense, and the report lists it."""
    _, caught = kernel_and_warnings("custom_vjp_ste", "structured")
    assert caught == []
    _, caught = kernel_and_warnings("custom_vjp_fused", "structured")
    assert caught and all(w.category is ntkc.DenseFallbackWarning and "custom_lin" in str(w.message) for w in caught)
    inst = instance("custom_vjp_fused", jnp.float64)
    report = ntkc.cost_report(inst.f, inst.params, inst.x1, inst.x2, vmap_axes=0)
    assert set(report.fallbacks) == {"ntvp", "structured θ0"}
    assert report.chosen != "ntvp" and "fallbacks:" in str(report)
    assert ntkc.plan(inst.f, inst.params, inst.x1, inst.x2, vmap_axes=0).method != "ntvp"


@pytest.mark.parametrize("name", MODELS)
def test_matrix_free_products_transpose_the_vjp(name):
    inst = instance(name, jnp.float64)
    op = ntkc.ntk_operator(inst.f, inst.params, inst.x1, trace_axes=(), mode="matrix_free")
    assert not op._held.products.forward
    kernel = oracle(name, trace_axes=(), vmap=True, same=True)
    v = np.random.default_rng(0).standard_normal(op.vector_shape)
    np.testing.assert_allclose(op @ v, np.einsum("abij,bj->ai", kernel, v), rtol=1e-10, atol=1e-10)

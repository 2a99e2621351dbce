"""Properties every method must have: jit equals eager, Θ(x, x) is symmetric, x2=None is x1,
the kernel has f's output dtype."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.testing import ZOO

MODELS = ["mlp", "conv_same_nhwc", "attention", "pytree_out"]


@pytest.mark.parametrize("method", list(ntkc.METHODS))
@pytest.mark.parametrize("name", MODELS)
def test_jit_equals_eager_and_symmetry(name, method):
    inst = ZOO[name].make(jax.random.PRNGKey(1), dtype=jnp.float64)
    kernel = ntkc.ntk_fn(inst.f, trace_axes=(), vmap_axes=0, method=method)
    eager = kernel(inst.x1, None, inst.params)
    jitted = jax.jit(kernel)(inst.x1, None, inst.params)
    explicit = kernel(inst.x1, inst.x1, inst.params)
    for e, j, x in zip(*(jax.tree_util.tree_leaves(t) for t in (eager, jitted, explicit))):
        np.testing.assert_allclose(j, e, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(x, e, rtol=1e-10, atol=1e-12)
        # zip order: (a, b, o1, o2, ...) pairs; swapping every pair transposes the kernel.
        nd = e.ndim // 2
        swapped = jnp.transpose(e, [a for i in range(nd) for a in (2 * i + 1, 2 * i)])
        np.testing.assert_allclose(swapped, e, rtol=1e-10, atol=1e-12)


def test_every_method_returns_the_output_dtype():
    """float64 inputs with float32 parameters give float64 outputs, so a float64 kernel."""
    rng = np.random.default_rng(7)
    params = {"w": rng.normal(size=(3, 4)).astype(np.float32), "v": rng.normal(size=(4, 2)).astype(np.float32)}
    f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
    x = rng.normal(size=(2, 3))
    dtypes = {m: ntkc.ntk_fn(f, method=m)(x, None, params).dtype for m in ("jacobian", "ntvp", "structured", "auto")}
    assert set(dtypes.values()) == {np.dtype(np.float64)}, dtypes

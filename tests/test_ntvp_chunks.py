"""NTK-vector products in chunks (``memory_limit``): one chunk, a few unrolled chunks, and more
chunks than are unrolled (a ``lax.map`` over equal, zero-padded chunks) all equal the float64
oracle, in the method and in the exported source."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.methods.ntvp import MAX_UNROLLED_CHUNKS, _tree_bytes, plan_chunks
from reference import oracle_ntk


def _mlp():
    def mlp(params, x):
        for w, b in params[:-1]:
            x = jnp.tanh(x @ w + b)
        w, b = params[-1]
        return x @ w + b

    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    sizes = [4, 8, 8, 3]
    params = [(jax.random.normal(k, (m, n)) / m ** 0.5, 0.1 * jax.random.normal(k, (n,)))
              for k, m, n in zip(keys, sizes, sizes[1:])]
    return mlp, params, jax.random.normal(keys[0], (5, 4)), jax.random.normal(keys[3], (4, 4))


@pytest.mark.parametrize("columns_per_chunk", [None, 5, 1])
@pytest.mark.parametrize("second_side", [True, False])
def test_chunked_ntvp_equals_the_oracle(columns_per_chunk, second_side):
    f, params, x1, x2 = _mlp()
    x2 = x2 if second_side else None
    n_columns = (x1 if x2 is None else x2).shape[0] * 3
    per_column = _tree_bytes(params) + _tree_bytes(f(params, x1))
    limit = None if columns_per_chunk is None else columns_per_chunk * per_column
    if limit is not None:                      # the cases this test is for
        chunks = plan_chunks(n_columns, per_column, limit)
        assert chunks.count > 1 and chunks.unrolled == (columns_per_chunk == 5)
        assert chunks.count > MAX_UNROLLED_CHUNKS or columns_per_chunk == 5
    want = oracle_ntk(f, x1, x2, params, trace_axes=(), vmap_axis=(0, 0))
    kernel = ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method="ntvp", memory_limit=limit)
    np.testing.assert_allclose(jax.jit(kernel)(x1, x2, params), want, rtol=1e-10, atol=1e-12)
    namespace = {}
    compiled = ntkc.compile(f, params, x1, x2, trace_axes=(), vmap_axes=0, method="ntvp", memory_limit=limit)
    exec(compiled.source(), namespace)
    np.testing.assert_allclose(namespace["ntk"](x1, x2, params), want, rtol=1e-10, atol=1e-12)


def test_plan_chunks_are_equal_and_fit():
    for n, per, budget in [(400, 700_000, 1 << 28), (7, 10, 30), (1, 10, 1), (100, 3, 299)]:
        chunks = plan_chunks(n, per, budget)
        assert chunks.size * chunks.count >= n > chunks.size * (chunks.count - 1)
        assert chunks.size * per <= budget or chunks.size == 1
        assert chunks.count == -(-n // max(1, budget // per))       # no more chunks than needed

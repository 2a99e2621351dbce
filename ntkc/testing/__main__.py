"""Self-check of the zoo: ``python -m ntkc.testing`` builds every model in float32 and float64 and
checks shapes, dtypes, finiteness, ``jax.jacrev`` and (batch-independent models) row
consistency. Enables x64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ntkc.testing import ZOO


def _assert_close(a, b, tol, name):
    """Raise AssertionError if arrays ``a`` and ``b`` differ beyond ``tol``."""
    if not np.allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol):
        raise AssertionError(f"{name}: single-example output differs from batched")


def _check(model, dtype, seed, verbose):
    """Build ``model`` in ``dtype`` and check shapes, dtypes, finiteness,
    ``jax.jacrev`` w.r.t. params and (if batch independent) row consistency."""
    tree = jax.tree_util
    inst = model.make(jax.random.PRNGKey(seed), dtype=dtype)
    assert all(leaf.dtype == dtype for leaf in tree.tree_leaves(inst.params)), model.name
    f = jax.jit(lambda p, x: inst.f(p, x, **inst.kwargs))
    for x, n in ((inst.x1, 3), (inst.x2, 2)):
        for leaf in tree.tree_leaves(f(inst.params, x)):
            assert leaf.shape[0] == n and leaf.dtype == dtype, (model.name, leaf.shape)
            assert np.all(np.isfinite(leaf)), model.name
            assert leaf.size // n <= 12, (model.name, leaf.shape)
    jac = jax.jit(jax.jacrev(f))(inst.params, inst.x1)
    assert all(np.all(np.isfinite(leaf)) for leaf in tree.tree_leaves(jac)), model.name
    full = f(inst.params, inst.x1)
    if model.batch_independent:
        tol = 1e-5 if dtype == jnp.float32 else 1e-12
        for i in range(3):
            single = f(inst.params, tree.tree_map(lambda a, i=i: a[i:i + 1], inst.x1))
            tree.tree_map(lambda a, b, i=i: _assert_close(a[i], b[0], tol, model.name),
                          full, single)
    if verbose:
        n_params = sum(leaf.size for leaf in tree.tree_leaves(inst.params))
        shapes = tree.tree_map(lambda a: tuple(a.shape), full)
        print(f"{model.name:32s} params={n_params:4d} out={shapes}")


def _smoke(verbose=True):
    """Check every zoo model in float32 and float64 (enables x64)."""
    jax.config.update("jax_enable_x64", True)
    for dtype in (jnp.float32, jnp.float64):
        for seed, model in enumerate(ZOO.values()):
            _check(model, dtype, seed, verbose=verbose and dtype == jnp.float64)
    if verbose:
        print(f"smoke check passed for {len(ZOO)} models (float32 and float64)")



if __name__ == "__main__":
    _smoke()

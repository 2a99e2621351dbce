"""Complex parameters and complex outputs: Θ = J·Jᴴ with J the Jacobian w.r.t. the real and
imaginary parts of every parameter, for every method, against a forward-mode float64 oracle."""

from __future__ import annotations

import warnings

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.passes.pipeline import MethodFallbackWarning
from reference import reduce_oracle

jax.config.update("jax_enable_x64", True)


def _crandn(rng, *shape):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2 * shape[0])


def holomorphic(p, x):
    return jnp.tanh(x @ p["w"]) @ p["v"] + p["b"]


def non_holomorphic(p, x):
    h = x @ p["w"]
    return (jnp.conj(h) * jnp.tanh(h.real) + jnp.abs(h)) @ p["v"] + p["b"].imag


def real_output(p, x):
    return jnp.abs(jnp.sin(x @ p["w"]) @ p["v"] + p["b"]) ** 2


def real_params_complex_output(p, x):
    return jnp.exp(1j * (x @ p["w"])) @ p["v"]


def _params(kind):
    rng = np.random.default_rng(0)
    if kind == "real_params_complex_output":
        return {"w": rng.normal(size=(3, 4)), "v": rng.normal(size=(4, 2))}
    return {"w": _crandn(rng, 3, 4), "v": _crandn(rng, 4, 2), "b": _crandn(rng, 2), "s": np.float64(0.3) * np.ones(2)}


MODELS = {"holomorphic": holomorphic, "non_holomorphic": non_holomorphic, "real_output": real_output,
          "real_params_complex_output": real_params_complex_output}


def _with_scale(f):
    """Uses the real leaf ``s`` too (when present), so mixed real/complex trees are covered."""
    return lambda p, x: f(p, x) * (p["s"] if "s" in p else 1.0)


def _jacobian(f, params, x, vmap):
    """Per output leaf: ``out + (P,)`` with P the real coordinates (re, im of complex leaves)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    real = [(np.real(l), np.imag(l)) if np.iscomplexobj(l) else l for l in leaves]
    flat, unravel = jax.flatten_util.ravel_pytree(real)

    def g(vec, xx):
        parts = unravel(vec)
        return f(treedef.unflatten([p[0] + 1j * p[1] if np.iscomplexobj(l) else p
                                    for p, l in zip(parts, leaves)]), xx)

    jac = jax.jit(jax.jacfwd(g))
    if vmap is None:
        return np.asarray(jac(flat, x))
    return np.stack([np.asarray(jac(flat, x[i:i + 1]))[0] for i in range(x.shape[0])])


def _oracle(f, params, x1, x2, vmap, trace_axes, diagonal_axes):
    j1, j2 = _jacobian(f, params, x1, vmap), _jacobian(f, params, x2, vmap)
    full = np.tensordot(j1, np.conj(j2), axes=([-1], [-1]))
    return reduce_oracle(full, trace_axes=trace_axes, diagonal_axes=diagonal_axes)


def _check(name, vmap, axes, methods):
    f, params = _with_scale(MODELS[name]), _params(name)
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(3, 3)), rng.normal(size=(2 if axes[1] == () else 3, 3))
    want = _oracle(f, params, x1, x2, vmap, *axes)
    for method in methods:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kernel = jax.jit(ntkc.ntk_fn(f, trace_axes=axes[0], diagonal_axes=axes[1], vmap_axes=vmap, method=method))
            got = kernel(x1, x2, params)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=method)
        fallback = [str(w.message) for w in caught if issubclass(w.category, MethodFallbackWarning)]
        if method == "structured":  # complex intermediates: Jacobian contraction, said (the
            # same words for each real kernel of the reduction)
            assert fallback and len(set(fallback)) == 1 and "complex" in fallback[0], fallback
            assert "test_complex.py" in fallback[0], fallback
        else:
            assert not fallback, fallback


@pytest.mark.parametrize("vmap", [None, 0])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_complex_models_match_the_oracle(name, vmap):
    _check(name, vmap, ((), ()), ("structured", "ntvp"))


@pytest.mark.parametrize("axes", [((-1,), ()), ((), (0,))], ids=["trace", "diag"])
def test_complex_kernel_axes(axes):
    _check("non_holomorphic", 0, axes, ("jacobian", "auto"))


def test_holomorphic_convention_is_half():
    """For holomorphic f the real-coordinates NTK is twice J_c·J_cᴴ (J_c = ∂f/∂θ complex)."""
    params = {"w": _params("holomorphic")["w"], "v": _params("holomorphic")["v"]}
    f = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
    x = np.random.default_rng(2).normal(size=(2, 3))
    jc = jax.jacfwd(lambda p: f(p, x), holomorphic=True)(params)
    flat = lambda j: np.concatenate([np.asarray(l).reshape(2, 2, -1) for l in jax.tree_util.tree_leaves(j)], -1)
    want = np.einsum("aip,bjp->abij", flat(jc), np.conj(flat(jc)))
    with pytest.warns(ntkc.MethodFallbackWarning, match="complex values"):
        got = ntkc.ntk_fn(f, trace_axes=(), method="structured")(x, None, params)
    np.testing.assert_allclose(got, 2 * want, rtol=1e-10, atol=1e-12)


def test_compile_handles_complex_parameters():
    params = _params("holomorphic")
    x = np.random.default_rng(3).normal(size=(2, 3))
    compiled = ntkc.compile(_with_scale(holomorphic), params, x, None, trace_axes=())
    want = _oracle(_with_scale(holomorphic), params, x, x, None, (), ())
    np.testing.assert_allclose(compiled(x, None, params), want, rtol=1e-10, atol=1e-12)


def test_cost_report_says_it_needs_real_parameters():
    params = _params("holomorphic")
    with pytest.raises(TypeError, match="complex.*ntk_fn"):
        ntkc.cost_report(holomorphic, params, np.ones((2, 3)))

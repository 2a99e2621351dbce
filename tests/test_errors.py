"""Bad input gives a clear error that names the offending argument."""

import jax.numpy as jnp
import pytest

import ntkc


def f(params, x):
    return jnp.tanh(x @ params["w"]) @ params["v"]


PARAMS = {"w": jnp.ones((3, 4), jnp.float32), "v": jnp.ones((4, 2), jnp.float32)}
X1 = jnp.ones((5, 3), jnp.float32)


def test_x1_x2_different_non_batch_shapes():
    with pytest.raises(ValueError, match=r"`x1` and `x2` have different non-batch shapes.*\(5, 3\) vs \(4, 2\)"):
        ntkc.ntk_fn(f)(X1, jnp.ones((4, 2), jnp.float32), PARAMS)


def test_x1_x2_different_structures():
    with pytest.raises(ValueError, match="`x1` and `x2` have different pytree structures"):
        ntkc.ntk_fn(f)(X1, (X1,), PARAMS)


@pytest.mark.parametrize("argname", ["trace_axes", "diagonal_axes"])
def test_axis_out_of_range(argname):
    with pytest.raises(ValueError, match=rf"`{argname}` contains axis 2, out of range .* 2 dimension"):
        ntkc.ntk_fn(f, **{argname: (2,)})(X1, None, PARAMS)


def test_negative_axis_out_of_range():
    with pytest.raises(ValueError, match=r"`trace_axes` contains axis -3"):
        ntkc.ntk_fn(f, trace_axes=(-3,))(X1, None, PARAMS)


def test_axis_not_an_int():
    with pytest.raises(TypeError, match="`diagonal_axes` must contain ints"):
        ntkc.ntk_fn(f, diagonal_axes=("0",))


def test_same_axis_traced_and_diagonal():
    with pytest.raises(ValueError, match="in both `trace_axes` and `diagonal_axes`"):
        ntkc.ntk_fn(f, trace_axes=(-1,), diagonal_axes=(1,))(X1, None, PARAMS)


def test_repeated_axis():
    with pytest.raises(ValueError, match="`trace_axes` contains the same axis more than once"):
        ntkc.ntk_fn(f, trace_axes=(1, -1))(X1, None, PARAMS)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_non_float_params_name_the_leaf(dtype):
    params = {"w": PARAMS["w"], "v": jnp.ones((4, 2), dtype)}
    with pytest.raises(TypeError, match=r"`params` leaf \['v'\] has dtype"):
        ntkc.ntk_fn(f)(X1, None, params)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown `method` 'fast'; valid methods are \[.*'jacobian'.*'ntvp'.*'auto'"):
        ntkc.ntk_fn(f, method="fast")


@pytest.mark.parametrize("bad_output", [lambda x: "logits", lambda x: None, lambda x: (x > 0)])
def test_f_must_return_float_arrays(bad_output):
    g = lambda params, x: bad_output(f(params, x))
    with pytest.raises(TypeError, match=r"`f\(params, x1\)`"):
        ntkc.ntk_fn(g)(X1, None, PARAMS)


def test_f_not_callable():
    with pytest.raises(TypeError, match="`f` must be callable"):
        ntkc.ntk_fn("model")


def test_traced_axis_size_mismatch_between_sides():
    g = lambda params, x: f(params, x)[:, : x.shape[0] % 2 + 1]
    with pytest.raises(ValueError, match="Output axis 1.* is in `trace_axes` but has size 2 for x1 and 1 for x2"):
        ntkc.ntk_fn(g)(X1, jnp.ones((4, 3), jnp.float32), PARAMS)


def test_vmap_axes_unknown_kwarg():
    kernel = ntkc.ntk_fn(f, vmap_axes=(0, 0, {"mask": 0}))
    with pytest.raises(ValueError, match=r"`vmap_axes` names keyword arguments \['mask'\]"):
        kernel(X1, None, PARAMS)


@pytest.mark.parametrize("bad", [0, -5, 1.5, "1GB", True])
def test_memory_limit_must_be_positive_int(bad):
    with pytest.raises(ValueError, match="`memory_limit` must be a positive int"):
        ntkc.ntk_fn(lambda p, x: x @ p, memory_limit=bad)

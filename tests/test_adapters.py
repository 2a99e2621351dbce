"""ntkc.adapters: real Flax linen / NNX, Equinox and Haiku models against the float64 oracle.

Each model is tiny (batch 2 and 3) and carries state that must not be differentiated (batch
statistics, frozen layers); the kernel from the adapter's ``(f, params)`` must equal the
brute-force oracle, with no dense fallback, and ``params`` must hold exactly the chosen leaves.
"""

import warnings

import equinox as eqx
import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import ntkc
from ntkc.passes.consumers import DenseFallbackWarning
from reference import oracle_ntk

METHODS = ("structured", "jacobian")
X1 = jax.random.normal(jax.random.key(1), (2, 4), jnp.float32)
X2 = jax.random.normal(jax.random.key(2), (3, 4), jnp.float32)


def n_entries(tree):
    return sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree))


def check_kernel(f, params, method, x1=X1, x2=X2, **kwargs):
    """ntkc's kernel of the adapter's f equals the float64 oracle, with no dense fallback."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DenseFallbackWarning)
        got = jax.jit(ntkc.ntk_fn(f, vmap_axes=0, method=method))(x1, x2, params, **kwargs)
    want = oracle_ntk(f, x1, x2, params, vmap_axis=(0, 0), **kwargs)
    assert got.shape == (x1.shape[0], x2.shape[0])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


# ----------------------------------------------------------------------------- Flax linen

class LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.Conv(3, (3,), padding="SAME")(x[..., None])
        x = nn.BatchNorm(use_running_average=not train, momentum=0.5)(x)
        return nn.Dense(2)(nn.relu(x).reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def linen_model():
    module = LinenCNN()
    variables = module.init(jax.random.key(0), X1, train=False)
    _, updates = module.apply(variables, X2 * 3 + 1, train=True, mutable=["batch_stats"])
    return module, {**variables, **updates}  # non-trivial running averages


@pytest.mark.parametrize("method", METHODS)
def test_linen_kernel_excludes_batch_stats(linen_model, method):
    module, variables = linen_model
    f, params = ntkc.adapters.from_linen(module, variables, train=False)
    assert n_entries(params) == n_entries(variables["params"]) < n_entries(variables)
    np.testing.assert_array_equal(f(params, X1), module.apply(variables, X1, train=False))
    check_kernel(f, params, method)


def test_linen_options(linen_model):
    module, variables = linen_model
    f, params = ntkc.adapters.from_linen(module, variables, trainable=["params", "batch_stats"],
                                         train=True, mutable=["batch_stats"])
    assert sorted(params) == ["batch_stats", "params"]
    assert f(params, X1).shape == (2, 2)          # the updated collections are dropped
    f_bound, params_bound = ntkc.adapters.from_linen(module.bind(variables), train=False)
    assert n_entries(params_bound) == n_entries(variables["params"])
    np.testing.assert_array_equal(f_bound(params_bound, X1, train=True, mutable=["batch_stats"]),
                                  module.apply(variables, X1, train=True, mutable=True)[0])


def test_linen_errors(linen_model):
    module, variables = linen_model
    with pytest.raises(TypeError, match="`variables` is required"):
        ntkc.adapters.from_linen(module)
    with pytest.raises(ValueError, match="not variables\\['params'\\]"):
        ntkc.adapters.from_linen(module, variables["params"])
    with pytest.raises(TypeError, match="`module` must be a flax.linen.Module.*from_nnx"):
        ntkc.adapters.from_linen(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), variables)
    with pytest.raises(TypeError, match="`trainable`"):
        ntkc.adapters.from_linen(module, variables, trainable=3)


# ----------------------------------------------------------------------------- Flax NNX

class NNXMLP(nnx.Module):
    def __init__(self, rngs):
        self.lin1 = nnx.Linear(4, 6, rngs=rngs)
        self.bn = nnx.BatchNorm(6, momentum=0.5, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.lin2 = nnx.Linear(6, 2, rngs=rngs)

    def __call__(self, x):
        return self.lin2(self.drop(nnx.relu(self.bn(self.lin1(x)))))


@pytest.fixture(scope="module")
def nnx_model():
    model = NNXMLP(nnx.Rngs(0))
    model(X2 * 3 + 1)  # training mode: the running averages move away from 0 and 1
    model.eval()
    return model


@pytest.mark.parametrize("method", METHODS)
def test_nnx_kernel_excludes_batch_stats(nnx_model, method):
    f, params = ntkc.adapters.from_nnx(nnx_model)
    assert n_entries(params) == n_entries(nnx.state(nnx_model, nnx.Param))
    assert n_entries(params) < n_entries(nnx.state(nnx_model, nnx.Param, nnx.BatchStat))
    np.testing.assert_array_equal(f(params, X1), nnx_model(X1))
    check_kernel(f, params, method)


def test_nnx_options(nnx_model):
    head = nnx.All(nnx.Param, nnx.PathContains("lin2"))
    f, params = ntkc.adapters.from_nnx(nnx_model, wrt=head)
    assert n_entries(params) == 6 * 2 + 2
    check_kernel(f, params, "structured")
    training = nnx.clone(nnx_model)
    training.train()
    mean = np.array(training.bn.mean.get_value())
    f_train, params = ntkc.adapters.from_nnx(training)
    jax.jit(f_train)(params, X1)            # writes batch statistics of a copy only
    np.testing.assert_array_equal(training.bn.mean.get_value(), mean)
    with pytest.raises(TypeError, match="`model` must be a flax.nnx.Module.*from_linen"):
        ntkc.adapters.from_nnx(nn.Dense(2))
    with pytest.raises(ValueError, match="`wrt` selects no parameters"):
        ntkc.adapters.from_nnx(nnx_model, wrt=nnx.PathContains("nothing"))


# ----------------------------------------------------------------------------- Equinox

@pytest.fixture(scope="module")
def eqx_mlp():
    return eqx.nn.MLP(4, 2, width_size=6, depth=2, activation=jnp.tanh, key=jax.random.key(0))


@pytest.mark.parametrize("method", METHODS)
def test_equinox_mlp_kernel(eqx_mlp, method):
    f, params = ntkc.adapters.from_equinox(eqx_mlp)
    assert n_entries(params) == 4 * 6 + 6 + 6 * 6 + 6 + 6 * 2 + 2
    np.testing.assert_array_equal(f(params, X1), jax.vmap(eqx_mlp)(X1))
    check_kernel(f, params, method)


class EqxNormed(eqx.Module):
    lin1: eqx.nn.Linear
    bn: eqx.nn.BatchNorm
    lin2: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.lin1 = eqx.nn.Linear(4, 6, key=k1)
        self.bn = eqx.nn.BatchNorm(6, axis_name="batch", momentum=0.5, mode="ema")
        self.lin2 = eqx.nn.Linear(6, 2, key=k2)

    def __call__(self, x, state):
        y, state = self.bn(self.lin1(x), state)
        return self.lin2(jax.nn.relu(y)), state


def test_equinox_stateful_and_frozen():
    model, state = eqx.nn.make_with_state(EqxNormed)(jax.random.key(0))
    train = jax.vmap(model, in_axes=(0, None), out_axes=(0, None), axis_name="batch")
    _, state = train(X2 * 3 + 1, state)
    model = eqx.nn.inference_mode(model)
    frozen = jax.tree_util.tree_map(lambda _: False, model)
    frozen = eqx.tree_at(lambda m: (m.lin2.weight, m.lin2.bias), frozen, replace=(True, True))
    f, params = ntkc.adapters.from_equinox(model, state, filter_spec=frozen)
    assert n_entries(params) == 6 * 2 + 2
    check_kernel(f, params, "structured")
    f, params = ntkc.adapters.from_equinox(model, state)
    assert n_entries(params) == n_entries(eqx.filter(model, eqx.is_inexact_array))
    assert n_entries(params) == 4 * 6 + 6 + 6 + 6 + 6 * 2 + 2   # no running statistics
    check_kernel(f, params, "structured")
    with pytest.raises(TypeError, match="`state` must be an eqx.nn.State"):
        ntkc.adapters.from_equinox(model, {"mean": 0})
    with pytest.raises(TypeError, match="`model` must be a callable equinox.Module"):
        ntkc.adapters.from_equinox(lambda x: x)


def test_equinox_batched_call(eqx_mlp):
    f, params = ntkc.adapters.from_equinox(eqx_mlp, batch_axis=None)
    with pytest.raises(TypeError):
        f(params, X1)                       # eqx.nn.MLP takes one example
    f, params = ntkc.adapters.from_equinox(eqx_mlp, batch_axis=1)
    np.testing.assert_allclose(f(params, X1.T), jax.vmap(eqx_mlp)(X1), rtol=1e-6)


# ----------------------------------------------------------------------------- Haiku

def haiku_mlp(x):
    return hk.nets.MLP([6, 2], activation=jnp.tanh)(x)


def haiku_normed(x, is_training):
    x = hk.Linear(6)(x)
    x = hk.BatchNorm(True, True, decay_rate=0.5)(x, is_training)
    return hk.Linear(2)(jax.nn.relu(x))


@pytest.mark.parametrize("method", METHODS)
def test_haiku_mlp_kernel(method):
    net = hk.transform(haiku_mlp)
    params = net.init(jax.random.key(0), X1)
    f, params = ntkc.adapters.from_haiku(net, params)
    np.testing.assert_array_equal(f(params, X1), net.apply(params, None, X1))
    check_kernel(f, params, method)


def test_haiku_with_state_excludes_state():
    net = hk.transform_with_state(haiku_normed)
    params, state = net.init(jax.random.key(0), X1, is_training=True)
    _, state = net.apply(params, state, None, X2 * 3 + 1, is_training=True)
    f, chosen = ntkc.adapters.from_haiku(net, params, state, is_training=False)
    assert n_entries(chosen) == n_entries(params) == 4 * 6 + 6 + 6 + 6 + 6 * 2 + 2
    np.testing.assert_array_equal(f(chosen, X1), net.apply(params, state, None, X1, False)[0])
    check_kernel(f, chosen, "structured")
    f, head = ntkc.adapters.from_haiku(net, params, state, is_training=False,
                                       trainable=lambda module, name, value: module == "linear_1")
    assert n_entries(head) == 6 * 2 + 2
    check_kernel(f, head, "structured")


def test_haiku_options_and_errors():
    net = hk.without_apply_rng(hk.transform(haiku_mlp))
    params = net.init(jax.random.key(0), X1)
    f, params = ntkc.adapters.from_haiku(net, params)
    np.testing.assert_array_equal(f(params, X1), net.apply(params, X1))
    with pytest.raises(ValueError, match="`rng` was given"):
        ntkc.adapters.from_haiku(net, params, rng=jax.random.key(0))
    with pytest.raises(TypeError, match="`transformed` must be.*hk.transform"):
        ntkc.adapters.from_haiku(haiku_mlp, params)
    with pytest.raises(TypeError, match="`state` is required"):
        ntkc.adapters.from_haiku(hk.transform_with_state(haiku_normed), params)
    with pytest.raises(TypeError, match="`params` must be"):
        ntkc.adapters.from_haiku(net, [1.0])


# ----------------------------------------------------------------------------- import errors

def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "haiku", None)
    with pytest.raises(ImportError, match="needs the `dm-haiku` package.*ntkc\\[adapters\\]"):
        ntkc.adapters.from_haiku(object(), {})

"""Models from Flax (linen and NNX), Equinox and Haiku in ntkc's ``(f, params)`` form.

Each ``from_*`` helper returns ``(f, params)``: ``f(params, x, **kwargs)`` runs the model on a
batch ``x`` and returns only its output, and ``params`` holds the leaves the kernel
differentiates. Everything else the model carries (batch statistics, frozen layers, RNG state,
Equinox ``State``, Haiku state) is closed over as a constant, and any state the model writes
during the call is discarded, so ``f`` is a pure function of ``params`` and ``x``. Pass the pair
to ntkc as usual::

    f, params = ntkc.adapters.from_linen(module, variables, train=False)
    K = ntkc.ntk_fn(f, vmap_axes=0, method="structured")(x1, x2, params)

Options fixed for every call (``train=False``, ``mutable=...``, ``rngs=...``) are keyword
arguments of the helper; keyword arguments given to the kernel at call time are forwarded to
the model too and override them. ntkc splits a kernel keyword argument whose value is a 2-tuple
between the x1 and x2 sides, so bind tuple-valued options (``mutable=("batch_stats", "cache")``)
in the helper, not at call time.

The libraries are imported when a helper is first called; ``pip install "ntkc[adapters]"``
installs all of them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax

__all__ = ["from_linen", "from_nnx", "from_equinox", "from_haiku"]

PyTree = Any


def _require(module: str, package: str, helper: str) -> Any:
    """Import ``module`` or say which package ``helper`` needs."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"ntkc.adapters.{helper} needs the `{package}` package, which is not installed: "
            f'pip install {package}  (or pip install "ntkc[adapters]" for every adapter).'
        ) from e


def _check_nonempty(params: PyTree, argname: str, helper: str) -> None:
    if not jax.tree_util.tree_leaves(params):
        raise ValueError(f"ntkc.adapters.{helper}: `{argname}` selects no parameters, so the kernel "
                         "would be identically zero.")


def _type_error(helper: str, argname: str, expected: str, value: Any, hint: str = "") -> TypeError:
    return TypeError(f"ntkc.adapters.{helper}: `{argname}` must be {expected}, got "
                     f"{type(value).__module__}.{type(value).__qualname__}.{hint}")


def _linen_collections(trainable: Any) -> tuple[str, ...]:
    if isinstance(trainable, str):
        return (trainable,)
    if (isinstance(trainable, Sequence) and trainable
            and all(isinstance(c, str) for c in trainable)):
        return tuple(trainable)
    raise TypeError("ntkc.adapters.from_linen: `trainable` must be a collection name or a non-empty "
                    f"sequence of collection names, got {trainable!r}.")


def _linen_variables(nn: Any, module: Any, variables: Any) -> tuple[Any, Mapping]:
    """The unbound module and its variables; a bound module brings its own variables."""
    if not isinstance(module, nn.Module):
        hint = (" For a Flax NNX model use ntkc.adapters.from_nnx."
                if type(module).__module__.startswith("flax.nnx") else "")
        raise _type_error("from_linen", "module", "a flax.linen.Module", module, hint)
    if variables is None:
        if module.scope is None:
            raise TypeError("ntkc.adapters.from_linen: `variables` is required for an unbound linen "
                            "module: pass the dict returned by module.init(rng, x) (or a bound "
                            "module, module.bind(variables)).")
        return module.unbind()
    if not isinstance(variables, Mapping):
        raise _type_error("from_linen", "variables", "the variables dict returned by "
                          "module.init(rng, x)", variables)
    return module, variables


def from_linen(module: Any, variables: Mapping | None = None, *,
               trainable: str | Sequence[str] = "params", **apply_kwargs: Any) -> tuple[Callable, PyTree]:
    """``(f, params)`` for a Flax linen module, differentiating the ``trainable`` collections.

    ``f(params, x, **kw)`` is ``module.apply({**other_collections, "params": params}, x,
    **apply_kwargs, **kw)``; when ``mutable`` is set, ``apply`` also returns the updated
    collections and ``f`` keeps only the output.

    Args:
      module: a ``flax.linen.Module``, unbound (then ``variables`` is required) or bound by
        ``module.bind(variables)``.
      variables: the whole dict returned by ``module.init(rng, x)``, e.g. ``{"params": ...,
        "batch_stats": ...}``.
      trainable: the collection differentiated (``params`` is then ``variables[trainable]``), or
        a sequence of collections (``params`` is then ``{name: variables[name]}``). The other
        collections (batch statistics, ...) are constants.
      **apply_kwargs: passed to every ``module.apply`` call: the module's own keyword arguments
        (``train=False``) and apply's (``mutable=["batch_stats"]``, ``rngs={"dropout": key}``,
        ``method=...``).

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, ntkc
      >>> class Net(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x, train):
      ...         x = nn.BatchNorm(use_running_average=not train)(nn.Dense(8)(x))
      ...         return nn.Dense(2)(nn.relu(x))
      >>> x = jnp.ones((3, 4))
      >>> variables = Net().init(jax.random.key(0), x, train=False)
      >>> f, params = ntkc.adapters.from_linen(Net(), variables, train=False)
      >>> sorted(params)      # batch_stats stay constants
      ['BatchNorm_0', 'Dense_0', 'Dense_1']
      >>> ntkc.ntk_fn(f, vmap_axes=0, method="structured")(x, None, params).shape
      (3, 3)
    """
    nn = _require("flax.linen", "flax", "from_linen")
    collections = _linen_collections(trainable)
    module, variables = _linen_variables(nn, module, variables)
    missing = [c for c in collections if c not in variables]
    if missing:
        raise ValueError(
            f"ntkc.adapters.from_linen: `trainable` names collections {missing} that `variables` "
            f"does not have (its keys: {sorted(variables)}); pass the whole dict returned by "
            "module.init, e.g. {'params': ..., 'batch_stats': ...}, not variables['params'].")
    constants = {name: value for name, value in variables.items() if name not in collections}
    single = isinstance(trainable, str)
    params = variables[trainable] if single else {c: variables[c] for c in collections}
    _check_nonempty(params, "trainable", "from_linen")

    def f(params: PyTree, x: PyTree, **kwargs: Any) -> PyTree:
        chosen = {trainable: params} if single else params
        kw = {**apply_kwargs, **kwargs}
        out = module.apply({**constants, **chosen}, x, **kw)
        return out[0] if kw.get("mutable", False) is not False else out

    return f, params


def from_nnx(model: Any, *, wrt: Any = None, **call_kwargs: Any) -> tuple[Callable, PyTree]:
    """``(f, params)`` for a Flax NNX module, differentiating the variables ``wrt`` selects.

    ``graphdef, params, rest = nnx.split(model, wrt, ...)`` and ``f(params, x, **kw)`` is
    ``nnx.merge(graphdef, params, rest, copy=True)(x, **call_kwargs, **kw)``: the model is rebuilt
    on each call, so what it writes (BatchNorm statistics in training mode, RNG counts) is
    discarded and ``model`` itself is never changed. Put the model in evaluation mode
    (``model.eval()``: BatchNorm uses its running averages, Dropout is off) before calling this
    helper when that is the kernel you want; the mode is part of ``rest``.

    Args:
      model: an ``nnx.Module``.
      wrt: an NNX filter choosing the differentiated variables (default ``nnx.Param``; e.g.
        ``nnx.All(nnx.Param, nnx.PathContains("head"))`` for the head only). The rest
        (``nnx.BatchStat``, RNG state, other parameters) are constants.
      **call_kwargs: passed to every ``model(x, ...)`` call.

    Example:
      >>> import jax.numpy as jnp, ntkc
      >>> from flax import nnx
      >>> class Net(nnx.Module):
      ...     def __init__(self, rngs):
      ...         self.lin1, self.bn = nnx.Linear(4, 8, rngs=rngs), nnx.BatchNorm(8, rngs=rngs)
      ...         self.lin2 = nnx.Linear(8, 2, rngs=rngs)
      ...     def __call__(self, x):
      ...         return self.lin2(nnx.relu(self.bn(self.lin1(x))))
      >>> model = Net(nnx.Rngs(0))
      >>> model.eval()
      >>> f, params = ntkc.adapters.from_nnx(model)
      >>> x = jnp.ones((3, 4))
      >>> ntkc.ntk_fn(f, vmap_axes=0, method="structured")(x, None, params).shape
      (3, 3)
    """
    nnx = _require("flax.nnx", "flax", "from_nnx")
    if not isinstance(model, nnx.Module):
        nn = _require("flax.linen", "flax", "from_nnx")
        hint = " For a linen module use ntkc.adapters.from_linen." if isinstance(model, nn.Module) else ""
        raise _type_error("from_nnx", "model", "a flax.nnx.Module", model, hint)
    graphdef, params, rest = nnx.split(model, nnx.Param if wrt is None else wrt, ...)
    _check_nonempty(params, "wrt", "from_nnx")

    def f(params: PyTree, x: PyTree, **kwargs: Any) -> PyTree:
        return nnx.merge(graphdef, params, rest, copy=True)(x, **{**call_kwargs, **kwargs})

    return f, params


def from_equinox(model: Any, state: Any = None, *, filter_spec: Any = None, batch_axis: int | None = 0,
                 axis_name: Any = None, **call_kwargs: Any) -> tuple[Callable, PyTree]:
    """``(f, params)`` for an Equinox model, which is called on one example at a time.

    Equinox models usually take a single example, so ``f`` is batched with ``jax.vmap``:
    ``f(params, x, **kw)`` is ``jax.vmap(model_i)(x)`` over axis ``batch_axis`` of ``x`` (the
    examples come out on axis 0), where ``model_i(xi) = model(xi, **call_kwargs, **kw)``, or
    ``model(xi, state, ...)[0]`` for a stateful model. ``f`` is then a ``vmap`` over examples,
    so ``vmap_axes=0`` is right for the kernel. ``batch_axis=None`` calls the model on ``x`` as
    is (for a model that takes a batch).

    Args:
      model: an ``eqx.Module``.
      state: the ``eqx.nn.State`` of a stateful model (``model, state =
        eqx.nn.make_with_state(Model)(...)``; the model is called as ``model(x, state)`` and
        returns ``(y, state)``). A constant: use ``eqx.nn.inference_mode(model)`` for
        BatchNorm's running averages.
      filter_spec: what ``eqx.partition`` differentiates: a filter function or a pytree of
        bools (default ``eqx.is_inexact_array``: every floating-point array).
      batch_axis: the axis of ``x`` holding examples, or ``None`` for no ``vmap``.
      axis_name: the ``jax.vmap`` axis name, for layers that reduce over the batch (BatchNorm in
        training mode).
      **call_kwargs: passed to every model call (e.g. ``key=...``, shared by all examples).

    Example:
      >>> import jax, jax.numpy as jnp, equinox as eqx, ntkc
      >>> mlp = eqx.nn.MLP(in_size=4, out_size=2, width_size=8, depth=2, key=jax.random.key(0))
      >>> f, params = ntkc.adapters.from_equinox(mlp)
      >>> x = jnp.ones((3, 4))
      >>> f(params, x).shape
      (3, 2)
      >>> ntkc.ntk_fn(f, vmap_axes=0, method="structured")(x, None, params).shape
      (3, 3)
    """
    eqx = _require("equinox", "equinox", "from_equinox")
    if not isinstance(model, eqx.Module) or not callable(model):
        raise _type_error("from_equinox", "model", "a callable equinox.Module", model)
    if state is not None and not isinstance(state, eqx.nn.State):
        raise _type_error("from_equinox", "state", "an eqx.nn.State (from eqx.nn.make_with_state)",
                          state)
    params, static = eqx.partition(model, eqx.is_inexact_array if filter_spec is None else filter_spec)
    _check_nonempty(params, "filter_spec", "from_equinox")

    def call(m: Any, x: PyTree, kwargs: dict[str, Any]) -> PyTree:
        return m(x, **kwargs) if state is None else m(x, state, **kwargs)[0]

    def f(params: PyTree, x: PyTree, **kwargs: Any) -> PyTree:
        m, kw = eqx.combine(params, static), {**call_kwargs, **kwargs}
        if batch_axis is None:
            return call(m, x, kw)
        return jax.vmap(lambda xi: call(m, xi, kw), in_axes=batch_axis, axis_name=axis_name)(x)

    return f, params


def _haiku_kind(hk: Any, transformed: Any, state: Any) -> bool:
    """Whether ``transformed`` carries state; checks it and ``state`` agree."""
    if not isinstance(transformed, (hk.Transformed, hk.TransformedWithState)):
        raise _type_error("from_haiku", "transformed", "the result of hk.transform(fn) or "
                          "hk.transform_with_state(fn)", transformed,
                          " Wrap the forward function first: hk.transform(forward).")
    with_state = isinstance(transformed, hk.TransformedWithState)
    if with_state and state is None:
        raise TypeError("ntkc.adapters.from_haiku: `state` is required for hk.transform_with_state: "
                        "pass the state returned by transformed.init(rng, x).")
    if not with_state and state is not None:
        raise TypeError("ntkc.adapters.from_haiku: `state` was given but `transformed` comes from "
                        "hk.transform, which has no state; use hk.transform_with_state.")
    return with_state


def from_haiku(transformed: Any, params: Mapping, state: Mapping | None = None, *, rng: Any = None,
               trainable: Callable[[str, str, Any], bool] | None = None,
               **apply_kwargs: Any) -> tuple[Callable, PyTree]:
    """``(f, params)`` for a Haiku ``hk.transform`` / ``hk.transform_with_state`` model.

    ``f(params, x, **kw)`` is ``transformed.apply(params, [state,] [rng,] x, **apply_kwargs,
    **kw)``, keeping only the output of a stateful apply (the new state is discarded; ``state``
    is a constant). ``rng`` is left out of the call when ``transformed`` was wrapped in
    ``hk.without_apply_rng``.

    Args:
      transformed: ``hk.transform(forward)`` or ``hk.transform_with_state(forward)``.
      params: the parameters returned by ``transformed.init``.
      state: the state returned by ``transformed.init`` (required with state, else ``None``).
      rng: the apply RNG key (``None`` when the forward pass draws no random numbers).
      trainable: optional ``predicate(module_name, name, value)``, as in
        ``hk.data_structures.partition``, choosing the differentiated parameters; the others
        are constants. Default: all of ``params``.
      **apply_kwargs: passed to every apply call (the forward function's keyword arguments,
        e.g. ``is_training=False``).

    Example:
      >>> import jax, jax.numpy as jnp, haiku as hk, ntkc
      >>> net = hk.transform(lambda x: hk.nets.MLP([8, 2])(x))
      >>> x = jnp.ones((3, 4))
      >>> f, params = ntkc.adapters.from_haiku(net, net.init(jax.random.key(0), x))
      >>> ntkc.ntk_fn(f, vmap_axes=0, method="structured")(x, None, params).shape
      (3, 3)
    """
    hk = _require("haiku", "dm-haiku", "from_haiku")
    with_state = _haiku_kind(hk, transformed, state)
    if not isinstance(params, Mapping):
        raise _type_error("from_haiku", "params", "the params mapping returned by transformed.init",
                          params)
    takes_rng = "rng" in inspect.signature(transformed.apply).parameters
    if rng is not None and not takes_rng:
        raise ValueError("ntkc.adapters.from_haiku: `rng` was given but `transformed.apply` takes "
                         "no rng (it was wrapped in hk.without_apply_rng).")
    chosen, frozen = hk.data_structures.partition(trainable, params) if trainable else (params, None)
    _check_nonempty(chosen, "trainable", "from_haiku")
    leading = (state,) * with_state + (rng,) * takes_rng

    def f(params: PyTree, x: PyTree, **kwargs: Any) -> PyTree:
        full = params if frozen is None else hk.data_structures.merge(params, frozen)
        out = transformed.apply(full, *leading, x, **{**apply_kwargs, **kwargs})
        return out[0] if with_state else out

    return f, chosen

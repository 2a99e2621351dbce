"""The zoo's registry and the helpers its entries are made with.

Every model is a pure function ``f(params, x, **kwargs)`` (defined in
:mod:`ntkc.testing.models` and :mod:`ntkc.testing.control`) whose inputs and outputs carry the
batch on axis 0 of every leaf. Models are deliberately tiny (at most a few hundred parameters, at
most 12 outputs per example) so that a brute-force ``jax.jacrev`` oracle in
float64 stays cheap.

Usage::

    from ntkc.testing import ZOO
    for model in ZOO.values():
        inst = model.make(jax.random.PRNGKey(0), dtype=jnp.float64)
        out = inst.f(inst.params, inst.x1, **inst.kwargs)

Random values are drawn with NumPy from a generator seeded by the bits of the
JAX key: this is deterministic per key and avoids compiling one XLA program per
random shape (which made ``make`` take seconds). Values are drawn in float64
and then cast, so a float32 instance is exactly the float64 one rounded (the
float32 results can be compared with a float64 oracle). ``params`` and the two
input batches use independent streams, so ``x1`` does not depend on ``n2`` and
the first rows of ``x1`` do not depend on ``n1``.

Nothing here touches ``jax.config`` except the self-check, run with
``python -m ntkc.testing``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


__all__ = ["ZooModel", "ZooInstance", "ZOO", "get", "register"]


@dataclasses.dataclass(frozen=True)
class ZooInstance:
    """A concrete model: function, parameters, and two input batches.

    Attributes:
      f: ``f(params, x, **kwargs)`` returning an array or a pytree of arrays,
        with the batch on axis 0 of ``x`` and of every output leaf.
      params: pytree of float arrays of the requested dtype.
      x1: batch of ``n1`` inputs (array or pytree), batch axis 0.
      x2: batch of ``n2`` inputs with the same non-batch shapes as ``x1``.
      kwargs: extra keyword arguments for ``f`` (usually empty).
    """

    f: Callable
    params: Any
    x1: Any
    x2: Any
    kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """A named entry of the zoo.

    Attributes:
      name: unique snake_case name.
      description: one-line description.
      make: ``make(key, dtype=jnp.float32, n1=3, n2=2) -> ZooInstance``.
      batch_independent: whether ``f(params, x)[i]`` depends only on ``x[i]``
        (so ``vmap_axes=0`` semantics are valid).
      tags: feature tags such as ``"conv"``, ``"gather"``, ``"pytree_out"``.
    """

    name: str
    description: str
    make: Callable[..., ZooInstance]
    batch_independent: bool = True
    tags: tuple[str, ...] = ()


ZOO: dict[str, ZooModel] = {}


def get(name: str) -> ZooModel:
    """Return the zoo model called ``name``; KeyError lists the valid names."""
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; valid names: {', '.join(ZOO)}") from None


def register(name, description, *, batch_independent=True, tags=()):
    """Decorator adding a ``make`` function to ``ZOO`` under ``name``."""

    def decorator(make):
        if name in ZOO:
            raise ValueError(f"duplicate zoo model name {name!r}")
        ZOO[name] = ZooModel(name=name, description=description, make=make,
                             batch_independent=batch_independent, tags=tuple(tags))
        return make

    return decorator


# ----------------------------------------------------------------------------
# Random initialisation.


class Rng:
    """Deterministic NumPy sampler seeded by a JAX key and a stream id.

    Produces ``jnp`` arrays of ``dtype``; weights are standard normal scaled by
    ``1/sqrt(fan_in)`` and biases are small (``0.1 *`` normal) but non-zero so
    that they contribute to the NTK.
    """

    def __init__(self, key, dtype, batch=0, leaf=0):
        # Streams: batch 0 = params, 1 = x1, 2 = x2; leaf indexes dict inputs.
        seed = np.asarray(jax.random.key_data(key)).ravel().tolist()
        self._gen = np.random.default_rng(seed + [batch, leaf])
        self._dtype = np.dtype(dtype)

    def _cast(self, values):
        return jnp.asarray(values.astype(self._dtype))

    def normal(self, *shape, scale=1.0, offset=0.0):
        """``offset + scale * standard_normal(shape)``, computed in float64 then
        cast, so float32 values are exactly the float64 ones rounded."""
        return self._cast(offset + scale * self._gen.standard_normal(shape))

    def weight(self, *shape, fan_in):
        """Normal weight of ``shape`` scaled by ``1/sqrt(fan_in)``."""
        return self.normal(*shape, scale=1.0 / math.sqrt(fan_in))

    def bias(self, *shape):
        """Small non-zero bias of ``shape``."""
        return self.normal(*shape, scale=0.1)

    def dense(self, fan_in, fan_out, bias=True):
        """Dense layer ``{"w": (fan_in, fan_out), "b": (fan_out,)}`` (``b`` optional)."""
        layer = {"w": self.weight(fan_in, fan_out, fan_in=fan_in)}
        if bias:
            layer["b"] = self.bias(fan_out)
        return layer

    def conv(self, *shape, fan_in):
        """Convolution kernel of ``shape`` scaled by ``1/sqrt(fan_in)``."""
        return self.weight(*shape, fan_in=fan_in)

    def ints(self, *shape, high):
        """Integer ids in ``[0, high)`` of ``shape`` as int32."""
        return jnp.asarray(self._gen.integers(0, high, size=shape).astype(np.int32))


def inputs(key, dtype, n, shape, batch):
    """Standard normal batch of ``n`` inputs of per-example ``shape``.

    ``shape`` is a tuple, or a dict of tuples for dict inputs; every leaf uses
    its own stream (identified by ``batch``, 1 for x1 and 2 for x2).
    """
    if isinstance(shape, dict):
        return {name: Rng(key, dtype, batch, index).normal(n, *leaf_shape)
                for index, (name, leaf_shape) in enumerate(shape.items())}
    return Rng(key, dtype, batch).normal(n, *shape)


def instance(f, params, key, dtype, n1, n2, shape, kwargs=None):
    """ZooInstance with standard normal inputs of per-example ``shape``."""
    return ZooInstance(f=f, params=params, x1=inputs(key, dtype, n1, shape, 1),
                       x2=inputs(key, dtype, n2, shape, 2), kwargs=dict(kwargs or {}))


def mlp_params(rng, sizes, bias=True):
    """``{"hidden": [...], "head": layer}`` for layer widths ``sizes``."""
    layers = [rng.dense(fan_in, fan_out, bias) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
    return {"hidden": layers[:-1], "head": layers[-1]}

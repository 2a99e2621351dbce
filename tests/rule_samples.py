"""Sample equations for every structure rule: ``SAMPLES[primitive] -> list of RuleSample``.

A sample is a function ``fn(theta, other)`` linear in ``theta`` in which the primitive reads
``theta`` directly (it is traced as written, not linearized), plus concrete ``theta`` (an array)
and ``other`` (any pytree of arrays, or None) values. ``tests/test_rules.py``
loops over :data:`ntkc.rules.RULES` and fails for a rule without samples.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


@dataclasses.dataclass(frozen=True)
class RuleSample:
    id: str
    fn: Callable
    theta: Any
    other: Any = None


def rand(seed: int, *shape):
    return np.random.default_rng(seed).normal(size=shape)


SAMPLES: dict[str, list[RuleSample]] = {}


def add(name: str, *samples: RuleSample) -> None:
    SAMPLES.setdefault(name, []).extend(samples)


def _dot(dn):
    return lambda t, o: lax.dot_general(t, o, dn)


add("dot_general",
    RuleSample("matmul-theta-rhs", lambda t, o: o @ t, rand(0, 4, 5), rand(1, 3, 4)),
    RuleSample("matmul-theta-lhs", lambda t, o: t @ o, rand(0, 3, 4), rand(1, 4, 5)),
    RuleSample("batched", _dot((((2,), (1,)), ((0,), (0,)))), rand(0, 2, 3, 4), rand(1, 2, 4, 5)),
    RuleSample("batch-theta-rhs", lambda t, o: lax.dot_general(o, t, (((1,), (2,)), ((0,), (1,)))),
               rand(0, 5, 2, 4), rand(1, 2, 4, 3)))
add("mul",
    RuleSample("elementwise", lambda t, o: t * o, rand(0, 3, 4), rand(1, 3, 4)),
    RuleSample("scalar", lambda t, o: t * o, rand(0, 3, 4), np.float64(1.5)),
    RuleSample("theta-scalar", lambda t, o: t * o, np.float64(1.5), rand(1, 3, 4)))
add("div", RuleSample("elementwise", lambda t, o: t / o, rand(0, 3, 4), rand(1, 3, 4) + 3.0))
for _name, _fn in {
    "add": lambda t, o: t + 2.0 * t, "sub": lambda t, o: 2.0 * t - t, "neg": lambda t, o: -t,
    "convert_element_type": lambda t, o: lax.convert_element_type(t, jnp.float32),
    "copy": lambda t, o: jnp.array(t, copy=True),
    "device_put": lambda t, o: jax.device_put(t),
    "reduce_precision": lambda t, o: lax.reduce_precision(t, exponent_bits=11, mantissa_bits=52),
}.items():
    add(_name, RuleSample("basic", _fn, rand(0, 3, 4), rand(1, 3, 4)))
add("add_any", RuleSample("vjp-of-fan-out", lambda t, o: jax.vjp(lambda a: (a, 2 * a), o)[1]((t, t))[0],
                          rand(0, 3, 4), rand(1, 3, 4)))
add("broadcast_in_dim",
    RuleSample("new-axis", lambda t, o: jnp.broadcast_to(t, (2, 3, 4)), rand(0, 3, 4)),
    RuleSample("size-one", lambda t, o: lax.broadcast_in_dim(t, (3, 4), (0, 1)), rand(0, 1, 4)))
add("reduce_sum", RuleSample("two-axes", lambda t, o: t.sum(axis=(0, 2)), rand(0, 2, 3, 4)))
add("transpose", RuleSample("perm", lambda t, o: jnp.transpose(t, (2, 0, 1)), rand(0, 2, 3, 4)))

from rule_samples_conv import register as _register_conv  # noqa: E402
from rule_samples_index import register as _register_index  # noqa: E402

_register_conv(add)
_register_index(add)

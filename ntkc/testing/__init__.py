"""A zoo of small JAX models for testing and benchmarking NTK computations.

``ZOO`` maps a name to a :class:`ZooModel` whose ``make(key, dtype=..., n1=3, n2=2)`` gives a
:class:`ZooInstance` (``f``, ``params``, ``x1``, ``x2``, ``kwargs``). Models are tiny (at most a
few hundred parameters, at most 12 outputs per example) so that a brute-force float64 oracle
stays cheap; together they cover every structure rule family, control flow, pytrees of inputs,
parameters and outputs, keyword arguments and batch-coupled models.

>>> import jax, jax.numpy as jnp
>>> inst = ZOO["mlp"].make(jax.random.PRNGKey(0), dtype=jnp.float32)
>>> inst.f(inst.params, inst.x1).shape
(3, 3)
"""

from ntkc.testing import control, custom_vjp, makers  # noqa: F401  (register the models)
from ntkc.testing.zoo import ZOO, ZooInstance, ZooModel, get

__all__ = ["ZooModel", "ZooInstance", "ZOO", "get"]

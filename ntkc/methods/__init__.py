"""Registry of NTK methods: name -> function ``(problem, params, *, memory_limit) -> kernels``.

Every method has the same signature, so tests loop over :data:`METHODS` and compare each with
the oracle; a new method is tested by registering it.
"""

from __future__ import annotations

from typing import Any, Callable

from ntkc.methods.jacobian import jacobian_kernel
from ntkc.methods.ntvp import ntvp_kernel
from ntkc.methods.structured import structured_kernel

MethodFn = Callable[[Any, Any], Any]

METHODS: dict[str, MethodFn] = {}


def register(name: str, fn: MethodFn) -> None:
    """Add a method; registering a name twice is an error."""
    if name in METHODS:
        raise ValueError(f"NTK method {name!r} is already registered.")
    METHODS[name] = fn


register("jacobian", jacobian_kernel)
register("ntvp", ntvp_kernel)
register("structured", structured_kernel)

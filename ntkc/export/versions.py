"""The JAX versions an exported module runs on, as its header states them.

A module written in the public vocabulary of :mod:`ntkc.export.public_forms` runs on every JAX
from :data:`OLDEST_JAX` (the oldest ``pyproject.toml`` allows; CI runs modules written under the
newest JAX there, and the reverse). A module that needed something else says what and which
JAX it needs (:meth:`ntkc.export.values.ConstantPool.limit`).
"""

from __future__ import annotations

import jax

#: The oldest JAX ntkc supports (``jax>=`` in ``pyproject.toml``).
OLDEST_JAX = "0.4.30"


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def runs_on(limits: dict[str, str | None]) -> list[str]:
    """The header lines saying which JAX wrote the module and which versions run it."""
    here = jax.__version__
    lines = [f"Generated with jax {here}."]
    if not limits:
        return lines + [f"Runs on jax {OLDEST_JAX} and later: every primitive is written as its public jax.lax /",
                        f"jax.numpy call, with only the arguments that every release since {OLDEST_JAX} accepts."]
    reasons = "; ".join(sorted(limits))
    if any(v is None for v in limits.values()):
        return lines + [f"Runs on jax {here} only: {reasons}."]
    oldest = max(limits.values(), key=_key)
    return lines + [f"Runs on jax {oldest} and later (not {OLDEST_JAX}): it uses {reasons}."]

"""The linearized program as ntkc sees it: vars with shapes, and flat equations.

A :class:`Graph` is one example's forward pass ``(params, x) -> residuals`` (the *primal*
equations) followed by the linear map ``θ̇ -> ẏ`` (the *linear* equations, which read residuals
as constants). Nested call-like equations have been inlined by :mod:`ntkc.ir.from_jaxpr`.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, eq=False)
class Var:
    """A value of the program. Identity-compared (``eq=False``): two vars are never equal."""

    id: int
    shape: tuple[int, ...]
    dtype: Any

    def __repr__(self) -> str:
        return f"v{self.id}:{self.dtype}{list(self.shape)}"


@dataclasses.dataclass(frozen=True)
class Lit:
    """A literal constant appearing as an equation input."""

    value: Any

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(getattr(self.value, "shape", ()))


@dataclasses.dataclass(frozen=True, eq=False)
class Eqn:
    """One primitive application ``outputs = primitive.bind(*inputs, **params)``.

    ``linear`` is true when some input depends on the parameter tangents; ``source`` names the
    user's code line the primitive came from (for warnings).
    """

    primitive: Any
    inputs: tuple[Any, ...]
    outputs: tuple[Var, ...]
    params: dict[str, Any]
    linear: bool
    source: str = ""

    @property
    def name(self) -> str:
        return self.primitive.name


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """One example's linearized program.

    Attributes:
      primal_inputs: vars of the flattened ``(params, x, kwargs)``.
      tangent_inputs: one var per parameter leaf (θ̇_l), in ``params`` leaf order.
      consts: closed-over constants of the traced program, var -> value.
      eqns: primal and linear equations in a valid evaluation order.
      outputs: the linear outputs ẏ, one per output leaf of ``f``.
    """

    primal_inputs: tuple[Var, ...]
    tangent_inputs: tuple[Var, ...]
    consts: dict[Var, Any]
    eqns: tuple[Eqn, ...]
    outputs: tuple[Any, ...]

    def users(self) -> dict[Var, list[tuple[Eqn, int]]]:
        """For every var, the (equation, input position) pairs that read it."""
        out: dict[Var, list[tuple[Eqn, int]]] = {}
        for eqn in self.eqns:
            for pos, v in enumerate(eqn.inputs):
                if isinstance(v, Var):
                    out.setdefault(v, []).append((eqn, pos))
        return out

    def pretty(self) -> str:
        lines = [f"graph(primal={list(self.primal_inputs)}, tangent={list(self.tangent_inputs)})"]
        for e in self.eqns:
            tag = "lin" if e.linear else "   "
            ins = ", ".join(repr(v) if isinstance(v, Var) else repr(v.value) for v in e.inputs)
            lines.append(f"  {tag} {', '.join(map(repr, e.outputs))} = {e.name}({ins})")
        lines.append(f"  out {list(self.outputs)}")
        return "\n".join(lines)

"""The linearized program as ntkc sees it: vars with shapes, and flat equations.

A :class:`Graph` is one example's forward pass ``(params, x) -> residuals`` (the *primal*
equations) followed by the linear map ``θ̇ -> ẏ`` (the *linear* equations, which read residuals
as constants). Nested call-like equations have been inlined by :mod:`ntkc.ir.from_jaxpr`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


#: Primitives of a linear program that JAX cannot transpose: a ``while`` whose trip count
#: depends on the data (a ``fori_loop`` with static bounds is a ``scan``, which transposes).
NOT_TRANSPOSABLE = frozenset({"while"})
#: Linear primitives with a transpose rule only: ``custom_lin`` is a ``jax.custom_vjp``
#: function's backward rule in a linearized program — it runs in reverse mode, never forward.
NOT_FORWARD = frozenset({"custom_lin"})


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
    """A literal constant appearing as an equation input; ``dtype`` is the one the traced
    program gives it (a NumPy ``float64`` scalar in a float32 program is a float32 literal)."""

    value: Any
    dtype: Any = None

    def array(self):
        """The literal as a NumPy array of its program's dtype."""
        if self.dtype is None or np.dtype(self.dtype).kind == "V":  # no dtype, or float0
            return np.asarray(self.value)
        return np.asarray(self.value, self.dtype)

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
    loop: "Loop | None" = None

    @property
    def name(self) -> str:
        return self.primitive.name


@dataclasses.dataclass(frozen=True, eq=False)
class Loop:
    """A linear ``scan`` kept whole: its body's equations over body vars, run ``length`` times.

    The scan equation that owns it reads ``consts + carry + xs`` (outer atoms) and the body
    reads them as ``consts``, ``carry`` and ``xs`` (body vars; ``xs[j]`` is slice t of the
    outer array at iteration t). The body's outputs are ``carry_out + ys``. ``theta`` maps a
    body input var to the parameter leaf whose tangent the scan receives there, and whether it
    is ``stacked`` (an ``xs`` slice: the scan-over-layers idiom, iteration t reads θ[t]) or
    shared (a const: every iteration reads all of θ).
    """

    length: int
    reverse: bool
    consts: tuple[Var, ...]
    carry: tuple[Var, ...]
    xs: tuple[Var, ...]
    eqns: tuple[Eqn, ...]
    carry_out: tuple[Any, ...]
    ys: tuple[Any, ...]
    theta: dict[Var, tuple[int, bool]]

    @property
    def inputs(self) -> tuple[Var, ...]:
        return self.consts + self.carry + self.xs

    @property
    def outputs(self) -> tuple[Any, ...]:
        return self.carry_out + self.ys

    def users(self) -> dict[Var, list[tuple[Eqn, int]]]:
        return _users(self.eqns)


def _users(eqns) -> dict[Var, list[tuple[Eqn, int]]]:
    out: dict[Var, list[tuple[Eqn, int]]] = {}
    for eqn in eqns:
        for pos, v in enumerate(eqn.inputs):
            if isinstance(v, Var):
                out.setdefault(v, []).append((eqn, pos))
    return out


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
        return _users(self.eqns)

    def reverse_blockers(self) -> list[Eqn]:
        """Linear equations reverse mode cannot run (:data:`NOT_TRANSPOSABLE`): with any, only
        forward-mode Jacobians of this program exist."""
        return [e for e, _, _ in self.walk() if e.linear and e.name in NOT_TRANSPOSABLE]

    def forward_blockers(self) -> list[Eqn]:
        """Linear equations forward mode cannot run (:data:`NOT_FORWARD`): with any, no
        Jacobian-vector product of this program exists, only reverse mode."""
        return [e for e, _, _ in self.walk() if e.linear and e.name in NOT_FORWARD]

    def complex_eqns(self) -> list[Eqn]:
        """Linear equations with a complex output (the structured method's factors, cotangents
        and einsums are real-valued; such programs are computed by Jacobian contraction)."""
        return [e for e, _, _ in self.walk()
                if e.linear and any(np.issubdtype(np.dtype(o.dtype), np.complexfloating) for o in e.outputs)]

    def walk(self):
        """Every equation that runs, as ``(eqn, times, reads_theta)``: a kept loop's body
        equations run ``length`` times each (the loop equation itself is not listed);
        ``reads_theta`` tells whether the equation reads a parameter tangent directly."""
        tangents = set(self.tangent_inputs)
        for eqn in self.eqns:
            if eqn.loop is None:
                yield eqn, 1, any(isinstance(v, Var) and v in tangents for v in eqn.inputs)
                continue
            for inner in eqn.loop.eqns:
                yield inner, eqn.loop.length, any(isinstance(v, Var) and v in eqn.loop.theta for v in inner.inputs)

    def pretty(self) -> str:
        lines = [f"graph(primal={list(self.primal_inputs)}, tangent={list(self.tangent_inputs)})"]
        for e in self.eqns:
            lines.append(_pretty_eqn(e, "  "))
            if e.loop is not None:
                lines.append(f"    body × {e.loop.length}: in {list(e.loop.inputs)}")
                lines.extend(_pretty_eqn(inner, "      ") for inner in e.loop.eqns)
                lines.append(f"      out {list(e.loop.outputs)}")
        lines.append(f"  out {list(self.outputs)}")
        return "\n".join(lines)


def _pretty_eqn(e: Eqn, indent: str) -> str:
    tag = "lin" if e.linear else "   "
    ins = ", ".join(repr(v) if isinstance(v, Var) else repr(v.value) for v in e.inputs)
    return f"{indent}{tag} {', '.join(map(repr, e.outputs))} = {e.name}({ins})"

"""The compilation: everything the passes know about one NTK problem, built from shapes only.

A :class:`Compilation` holds the problem (both sides' specs, output axes), one :class:`SideIR`
per physical side (its lowered graph, its parameter uses, the cotangents its plan needs) and,
once the terms pass has run, one :class:`~ntkc.ir.terms.KernelPlan` per output leaf. It holds no
array of any call: sides carry ``jax.ShapeDtypeStruct`` specs, and graph constants come from
``f`` itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ntkc.ir.graph import Graph, Var
from ntkc.ir.terms import KernelPlan
from ntkc.ir.uses import Use


@dataclasses.dataclass(frozen=True)
class CotangentTarget:
    """A consumer output whose cotangent ∂f/∂z the backward sweep produces; ``summed`` are z's
    axes summed out before storing (output-tiled for every use reading it). ``loop`` is the kept
    loop equation whose body defines z (its cotangent then has a leading iteration axis)."""

    var: Var
    summed: tuple[int, ...] = ()
    loop: Any = None


@dataclasses.dataclass(frozen=True, eq=False)
class SideIR:
    """One side's linear program, its parameter uses and the cotangents its plan needs.
    ``side`` is the :class:`ntkc.batching.Side` it was lowered from (shape specs, no values)."""

    side: Any
    graph: Graph
    out_tree: Any
    uses: tuple[Use, ...] = ()
    targets: tuple[CotangentTarget, ...] = ()

    @property
    def vmapped(self) -> bool:
        return self.side.vmap is not None

    def target_of(self, use: Use) -> CotangentTarget:
        return next(t for t in self.targets if t.var is use.output)


@dataclasses.dataclass(frozen=True, eq=False)
class Compilation:
    """Everything the passes know. ``sides`` has one entry when x2 is x1 (side 2 = side 1), and
    two entries sharing one graph when both sides run the same per-example program."""

    problem: Any
    theta_shapes: tuple[tuple[int, ...], ...]
    memory_limit: int | None = None
    sides: tuple[SideIR, ...] = ()
    kernels: tuple[KernelPlan, ...] = ()

    def side(self, k: int) -> SideIR:
        return self.sides[0] if k == 1 or len(self.sides) == 1 else self.sides[1]

    @property
    def shared_graph(self) -> bool:
        """Two sides running one per-example program (one lowered graph)."""
        return len(self.sides) == 2 and self.sides[0].graph is self.sides[1].graph

    def replace(self, **changes) -> "Compilation":
        return dataclasses.replace(self, **changes)

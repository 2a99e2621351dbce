"""The NTK plan: per output leaf, a sum of einsum terms over named operands.

An :class:`Operand` names an array one side produces for one example batch: the cotangent
∂f/∂z of a consumer output z, a factor of a consumer's Jacobian form, (outside-in weight
sharing) a whole per-leaf Jacobian ∂f/∂θ_l built by a :class:`SideJacobian`, or an intermediate
several contractions of a kernel share (:data:`SHARED`, computed once: ``KernelPlan.shared``). A :class:`Term`
contracts operands of both sides into the kernel's result labels; a :class:`KernelPlan` sums its
terms, divides by the traced size and casts. Labels are readable strings (``"θ0.1"`` is axis 1 of
parameter leaf 0; ``"1:3:d0"`` is label ``d0`` of use 3 on side 1; single letters are the result's
labels from :meth:`ntkc.axes.KernelAxes.labels`). The plan is inert data built from shapes only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

Labels = tuple[str, ...]

#: Operand kinds.
COTANGENT, FACTOR, JACOBIAN, SHARED = "cotangent", "factor", "jacobian", "shared"


@dataclasses.dataclass(frozen=True)
class Operand:
    """One array of one side.

    Attributes:
      side: 1 (x1) or 2 (x2); 0 for a shared intermediate (it reads both sides).
      kind: :data:`COTANGENT` (of use ``index``), :data:`FACTOR` (number ``factor`` of use
        ``index``'s form), :data:`JACOBIAN` (of parameter leaf ``index``) or :data:`SHARED`
        (the kernel's shared intermediate ``index``).
      index: the use (or leaf) it belongs to.
      factor: the factor's position in the use's form, for :data:`FACTOR`.
      labels: one label per axis.
      shape: the array's shape, batch axis included.
    """

    side: int
    kind: str
    index: int
    labels: Labels
    shape: tuple[int, ...]
    factor: int | None = None

    @property
    def key(self) -> tuple:
        """What identifies the array (independent of the labels it carries in a term)."""
        return (self.kind, self.index, self.factor)


@dataclasses.dataclass(frozen=True)
class Contraction:
    """``output = scale · einsum(*operands -> output)`` along ``path`` (opt_einsum format)."""

    operands: tuple[Operand, ...]
    output: Labels
    scale: float = 1.0
    path: tuple[tuple[int, ...], ...] | None = None
    flops: int | None = None
    largest: int | None = None


@dataclasses.dataclass(frozen=True)
class Term:
    """The contribution of parameter leaf ``leaf`` through uses ``uses = (use on side 1, use on
    side 2)``, or through the leaf's whole Jacobians when ``uses`` is None (outside-in)."""

    leaf: int
    uses: tuple[int, int] | None
    contraction: Contraction
    note: str = ""


@dataclasses.dataclass(frozen=True)
class SideJacobian:
    """Outside-in weight sharing: ∂f/∂θ_leaf on one side as a sum of per-use contractions."""

    side: int
    leaf: int
    labels: Labels
    shape: tuple[int, ...]
    parts: tuple[Contraction, ...]


@dataclasses.dataclass(frozen=True)
class KernelPlan:
    """The kernel of output leaf ``output``: ``Σ terms / trace_size`` cast to ``dtype``.
    ``shared`` are intermediates computed once and read by several contractions (as
    :data:`SHARED` operands, by index), before the Jacobians and the terms."""

    output: int
    result: Labels
    result_shape: tuple[int, ...]
    trace_size: int
    dtype: Any
    terms: tuple[Term, ...]
    jacobians: tuple[SideJacobian, ...] = ()
    shared: tuple[Contraction, ...] = ()

    def label_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = dict(zip(self.result, self.result_shape))
        for c in self.contractions():
            for op in c.operands:
                sizes.update(zip(op.labels, op.shape))
        return sizes

    def contractions(self):
        yield from self.shared
        for jac in self.jacobians:
            yield from jac.parts
        for term in self.terms:
            yield term.contraction

    @property
    def flops(self) -> int | None:
        counts = [c.flops for c in self.contractions()]
        return None if any(f is None for f in counts) else sum(counts)

"""Output-axis semantics of the kernel: ``trace_axes`` and ``diagonal_axes``.

The empirical NTK of an output leaf with shape ``S = (s_0, ..., s_{k-1})`` is, before any
reduction, an array of shape ``S + S`` (x1's output axes, then x2's). ntkc follows
neural-tangents' ``empirical_ntk_fn`` exactly:

* an axis in ``trace_axes`` is traced (x1's and x2's copies identified and **averaged**, i.e.
  summed and divided by its size) and disappears from the result;
* an axis in ``diagonal_axes`` keeps only its diagonal and appears **once**;
* every other axis appears as the pair (x1's, x2's);
* result axes are in "zip" order: output axis by output axis, in increasing order.

Worked examples, for an output of shape ``(N, O)``:

>>> KernelAxes.create(2, trace_axes=(-1,), diagonal_axes=()).result_shape((3, 5), (4, 5))
(3, 4)
>>> KernelAxes.create(2, trace_axes=(), diagonal_axes=()).result_shape((3, 5), (4, 5))
(3, 4, 5, 5)
>>> KernelAxes.create(2, trace_axes=(), diagonal_axes=(0,)).result_shape((3, 5), (3, 5))
(3, 5, 5)
>>> KernelAxes.create(2, trace_axes=(-1,), diagonal_axes=(0,)).result_shape((3, 5), (3, 5))
(3,)

and for an image-shaped output ``(N, H, W, C)`` with the channel traced:

>>> KernelAxes.create(4, trace_axes=(3,), diagonal_axes=(1,)).result_shape((2, 6, 7, 8), (5, 6, 7, 8))
(2, 5, 6, 7, 7)

Every method expresses the kernel as an einsum whose labels come from :meth:`KernelAxes.labels`,
so these rules are implemented exactly once.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Sequence

Axes = Sequence[int]


def canonicalize_axes(axes: Axes | int | None, ndim: int, *, argname: str) -> tuple[int, ...]:
    """Normalise possibly negative, unsorted axes to a sorted tuple of non-negative ints.

    >>> canonicalize_axes((-1, 0), 3, argname="trace_axes")
    (0, 2)
    >>> canonicalize_axes(None, 3, argname="trace_axes")
    ()
    """
    if axes is None:
        return ()
    if isinstance(axes, int):
        axes = (axes,)
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"`{argname}` must be an int or a sequence of ints, got {axes!r}.") from None
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, int):
            raise TypeError(f"`{argname}` must contain ints, got {a!r} in {axes!r}.")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"`{argname}` contains axis {a}, out of range for an output with {ndim} "
                f"dimension(s) (valid: {-ndim} .. {ndim - 1})."
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"`{argname}` contains the same axis more than once: {axes!r}.")
    return tuple(sorted(out))


@dataclasses.dataclass(frozen=True)
class KernelAxes:
    """How the output axes of one output leaf map to axes of its kernel.

    Attributes:
      ndim: number of axes of the (full, batched) output leaf.
      trace: canonical traced axes.
      diagonal: canonical diagonal axes.

    Example:
      >>> import ntkc
      >>> axes = ntkc.KernelAxes.create(2, trace_axes=(-1,), diagonal_axes=())  # outputs (N, O)
      >>> axes.trace, axes.result_shape((5, 10), (7, 10))
      ((1,), (5, 7))
      >>> ntkc.KernelAxes.create(2, trace_axes=(), diagonal_axes=(0,)).result_shape((5, 10), (5, 10))
      (5, 10, 10)
    """

    ndim: int
    trace: tuple[int, ...]
    diagonal: tuple[int, ...]

    @classmethod
    def create(cls, ndim: int, trace_axes: Axes, diagonal_axes: Axes) -> "KernelAxes":
        trace = canonicalize_axes(trace_axes, ndim, argname="trace_axes")
        diagonal = canonicalize_axes(diagonal_axes, ndim, argname="diagonal_axes")
        both = sorted(set(trace) & set(diagonal))
        if both:
            raise ValueError(
                f"Output axis {both[0]} is in both `trace_axes` and `diagonal_axes` "
                f"(canonical trace_axes={trace}, diagonal_axes={diagonal}); an axis can be "
                "traced or diagonal, not both."
            )
        return cls(ndim=ndim, trace=trace, diagonal=diagonal)

    def kind(self, axis: int) -> str:
        """``"trace"``, ``"diagonal"`` or ``"pair"`` for a canonical output axis."""
        if axis in self.trace:
            return "trace"
        if axis in self.diagonal:
            return "diagonal"
        return "pair"

    def labels(self) -> tuple[str, str, str]:
        """Einsum labels ``(side1, side2, result)`` of the output axes.

        ``einsum(f"{side1}P,{side2}P->{result}", J1, J2)`` is the (un-normalised) kernel when
        J1, J2 are Jacobians whose trailing parameter axes are labelled ``P``.

        >>> KernelAxes.create(3, trace_axes=(2,), diagonal_axes=(0,)).labels()
        ('abd', 'acd', 'abc')
        """
        pool = iter(string.ascii_letters)
        side1, side2, result = [], [], []
        for axis in range(self.ndim):
            kind = self.kind(axis)
            first = next(pool)
            if kind == "pair":
                second = next(pool)
                side1.append(first)
                side2.append(second)
                result.extend([first, second])
            else:
                side1.append(first)
                side2.append(first)
                if kind == "diagonal":
                    result.append(first)
        return "".join(side1), "".join(side2), "".join(result)

    def trace_size(self, shape: Sequence[int]) -> int:
        """Product of the traced axes' sizes: the kernel is divided by it (an average)."""
        size = 1
        for axis in self.trace:
            size *= int(shape[axis])
        return size

    def check_shapes(self, shape1: Sequence[int], shape2: Sequence[int], *, leaf: str = "") -> None:
        """Traced and diagonal axes must have equal sizes for x1's and x2's outputs."""
        where = f" of output leaf {leaf}" if leaf else ""
        if len(shape1) != len(shape2):
            raise ValueError(
                f"f(params, x1) and f(params, x2) have outputs{where} of different rank: "
                f"{tuple(shape1)} vs {tuple(shape2)}."
            )
        for axis in (*self.trace, *self.diagonal):
            if shape1[axis] != shape2[axis]:
                argname = "trace_axes" if axis in self.trace else "diagonal_axes"
                raise ValueError(
                    f"Output axis {axis}{where} is in `{argname}` but has size {shape1[axis]} for "
                    f"x1 and {shape2[axis]} for x2 (shapes {tuple(shape1)} and {tuple(shape2)})."
                )

    def result_shape(self, shape1: Sequence[int], shape2: Sequence[int]) -> tuple[int, ...]:
        """Shape of the kernel for outputs of shapes ``shape1`` (x1) and ``shape2`` (x2)."""
        out = []
        for axis in range(self.ndim):
            kind = self.kind(axis)
            if kind == "pair":
                out.extend([int(shape1[axis]), int(shape2[axis])])
            elif kind == "diagonal":
                out.append(int(shape1[axis]))
        return tuple(out)

"""Build the NTK plan: Θ = Σ_l Σ_{k1,k2} cot1_k1 · A_k1 · A_k2ᵀ · cot2_k2ᵀ  (paper §3.3).

For every output leaf, parameter leaf l and pair of uses (k1 on side 1, k2 on side 2) of l, one
:class:`~ntkc.ir.terms.Term` joins side 1's cotangent and factors with side 2's. Labels decide
everything: θ's axes get the shared labels ``θl.a``, so they are contracted between the sides;
the output axes get the letters of :meth:`ntkc.axes.KernelAxes.labels`, so traced axes are summed
and diagonal axes kept as label identifications; the example axes of x1 and x2 carry the batch
letters. A θ axis neither use mentions is summed over a constant: it multiplies the scale.

Needs: uses and cotangent targets. Guarantees: one :class:`KernelPlan` per output leaf whose
terms cover every (k1, k2) pair of every leaf (but pairs reading disjoint parts of the leaf,
exactly zero), with operand labels and shapes from :mod:`ntkc.ir.operands`.
"""

from __future__ import annotations

import math

import numpy as np

from ntkc.ir.operands import SideLabels, output_leaves, side_labels_for
from ntkc.ir.terms import Contraction, KernelPlan, Term
from ntkc.ir.uses import theta_axes


def pair_term(comp, s1: SideLabels, s2: SideLabels, i: int, j: int, result) -> Term:
    """The term of use i (side 1) and use j (side 2) of the same parameter leaf."""
    a, b = s1.ir.uses[i], s2.ir.uses[j]
    ops = (s1.cotangent(i), *s1.factors(i), s2.cotangent(j), *s2.factors(j))
    used = {l for op in ops for l in op.labels}
    theta_shape = comp.theta_shapes[a.leaf]
    untouched = math.prod(n for ax, n in enumerate(theta_shape) if f"θ{a.leaf}.{ax}" not in used)
    note = f"{a.primitives} [{a.form.kind}] × {b.primitives} [{b.form.kind}]"
    return Term(leaf=a.leaf, uses=(i, j),
                contraction=Contraction(operands=ops, output=tuple(result),
                                        scale=a.form.scale * b.form.scale * untouched),
                note=note)


def theta_support(use, theta_ndim: int) -> list:
    """Per θ axis, which indices the use reads (a boolean vector), or None for all of them.

    A constant factor (``slice``'s selection, a gather window) carrying exactly one θ label is
    zero at every θ index the use does not read along that axis.
    """
    support = [None] * theta_ndim
    axis_of = theta_axes(use)
    for spec in use.form.factors:
        theta_labels = [l for l in spec.labels if l in axis_of]
        if not spec.constant or spec.value is None or len(theta_labels) != 1:
            continue
        axis = axis_of[theta_labels[0]]
        position = list(spec.labels).index(theta_labels[0])
        others = tuple(a for a in range(np.ndim(spec.value)) if a != position)
        reads = np.any(np.asarray(spec.value) != 0, axis=others)
        support[axis] = reads if support[axis] is None else support[axis] & reads
    return support


def disjoint(support_a: list, support_b: list) -> bool:
    """Whether two uses of one leaf, with :func:`theta_support` ``support_a``/``support_b``, read
    disjoint parts of it (then their term is exactly 0: ``Σ_θ J_a[θ] J_b[θ]`` with one factor
    zero at every θ). Slices of a stacked parameter, the scan-over-layers idiom, are the common
    case.

    >>> from types import SimpleNamespace as NS
    >>> pick = lambda i: theta_support(NS(loop=None, form=NS(theta_labels=("l", "w"), factors=(NS(
    ...     constant=True, labels=("o", "l"), value=np.eye(3)[i:i + 1]),))), 2)
    >>> disjoint(pick(0), pick(1)), disjoint(pick(1), pick(1))
    (True, False)
    """
    return any(sa is not None and sb is not None and not np.any(sa & sb)
               for sa, sb in zip(support_a, support_b))


def kernel_plans(comp) -> tuple[KernelPlan, ...]:
    plans = []
    for u, (out1, out2, ka, fx) in enumerate(output_leaves(comp)):
        result = ka.labels()[2]
        s1, s2 = side_labels_for(comp, u)
        support = {k: [theta_support(use, len(comp.theta_shapes[use.leaf])) for use in side.ir.uses]
                   for k, side in ((1, s1), (2, s2))}
        terms = [
            pair_term(comp, s1, s2, i, j, result)
            for i, a in enumerate(s1.ir.uses) for j, b in enumerate(s2.ir.uses)
            if a.leaf == b.leaf and not disjoint(support[1][i], support[2][j])
        ]
        plans.append(KernelPlan(
            output=u, result=tuple(result), result_shape=ka.result_shape(out1.shape, out2.shape),
            trace_size=ka.trace_size(out1.shape), dtype=out1.dtype, terms=tuple(terms),
        ))
    return tuple(plans)


def terms_pass(comp):
    """Needs: uses and targets. Guarantees: ``comp.kernels``, one plan per output leaf."""
    return comp.replace(kernels=kernel_plans(comp))

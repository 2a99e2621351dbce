"""Per parameter leaf: structured terms, or Jacobian contraction of its own Jacobian.

A parameter leaf read by K consumers (tied embeddings, convolutions applied twice, recurrent
weights) gives K1·K2 structured terms. Outside-in instead contracts each side to the leaf's
Jacobian first (its materialised per-leaf Jacobian, from the shared cotangents),

    J_s = Σ_k cot_k · A_k   (labels: batch, outputs, θ),     Θ_l = J_1 · J_2ᵀ,

which is Jacobian contraction for that leaf alone: cheaper when K is large and θ small, or when
a leaf's structure gains nothing (a dense fallback). The pass prices both for every leaf with
opt_einsum's optimal paths and keeps the cheaper per (output leaf, parameter leaf), so one plan
mixes the methods per parameter. Under a memory limit, outside-in is only chosen when its
Jacobians fit.

Needs: kernel plans with pairwise terms. Guarantees: each leaf's contribution is either all its
pairwise terms or one term over two :data:`~ntkc.ir.terms.JACOBIAN` operands (plus their
:class:`~ntkc.ir.terms.SideJacobian` definitions).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ntkc.ir.terms import JACOBIAN, Contraction, Operand, SideJacobian, Term
from ntkc.ir.operands import SideLabels, side_labels_for
from ntkc.passes.order import best_path


def _side_jacobian(comp, kernel, side: SideLabels, leaf: int) -> SideJacobian:
    theta = tuple(f"θ{leaf}.{a}" for a in range(len(comp.theta_shapes[leaf])))
    labels = side.batch + side.out + theta
    shape = side.batch_shape + side.out_shape + comp.theta_shapes[leaf]
    parts = tuple(
        Contraction(operands=(side.cotangent(i), *side.factors(i)), output=labels, scale=use.form.scale)
        for i, use in enumerate(side.ir.uses) if use.leaf == leaf
    )
    return SideJacobian(side=side.k, leaf=leaf, labels=labels, shape=shape, parts=parts)


def _cost(contractions) -> int:
    return sum(best_path(c).flops for c in contractions)


def outside_in(comp, kernel, sides, leaf: int):
    """(jacobians, term) computing leaf's contribution outside-in."""
    jacs = [_side_jacobian(comp, kernel, s, leaf) for s in sides[: len(comp.sides)]]
    j1 = jacs[0]
    j2 = jacs[-1] if len(jacs) == 2 else _side_jacobian(comp, kernel, sides[1], leaf)
    ops = tuple(Operand(side=j.side, kind=JACOBIAN, index=leaf, labels=j.labels, shape=j.shape) for j in (j1, j2))
    term = Term(leaf=leaf, uses=None, contraction=Contraction(operands=ops, output=kernel.result),
                note=f"outside-in over {len(j1.parts)}×{len(j2.parts)} uses")
    return tuple(jacs), term


def weight_sharing_pass(comp):
    """Needs: kernel plans from the terms pass. Guarantees: see module docstring."""
    kernels = []
    for kernel in comp.kernels:
        limit = None if comp.memory_limit is None else comp.memory_limit // np.dtype(kernel.dtype).itemsize
        sides = side_labels_for(comp, kernel.output)
        by_leaf: dict[int, list[Term]] = {}
        for t in kernel.terms:
            by_leaf.setdefault(t.leaf, []).append(t)
        terms, jacobians = [], list(kernel.jacobians)
        for leaf, group in by_leaf.items():
            jacs, term = outside_in(comp, kernel, sides, leaf)
            fits = limit is None or sum(math.prod(j.shape) for j in jacs) <= limit
            if fits and _cost([*(p for j in jacs for p in j.parts), term.contraction]) < _cost(t.contraction for t in group):
                terms.append(term)
                jacobians.extend(jacs)
                continue
            terms.extend(group)
        kernels.append(dataclasses.replace(kernel, terms=tuple(terms), jacobians=tuple(jacobians)))
    return comp.replace(kernels=tuple(kernels))

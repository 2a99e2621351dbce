"""Labels and shapes of the arrays one side contributes to a kernel's einsum terms.

Labels decide everything: θ's axes get the shared labels ``θl.a``, so they are contracted
between the sides; the output axes get the letters of :meth:`ntkc.axes.KernelAxes.labels`, so
traced axes are summed and diagonal axes kept; the example axes of x1 and x2 carry the batch
letters; every other label is private to one use of one side (``"1:3:d0"``).
"""

from __future__ import annotations

import jax

from ntkc.ir.terms import COTANGENT, FACTOR, Operand
from ntkc.ir.uses import theta_axes


def output_leaves(comp):
    """Per output leaf: (batched out1, batched out2, KernelAxes, example axis or None)."""
    problem = comp.problem
    out1_leaves, treedef = jax.tree_util.tree_flatten(problem.out1)
    out2_leaves = treedef.flatten_up_to(problem.out2)
    axes_leaves = treedef.flatten_up_to(problem.axes)
    vmap = problem.side1.vmap
    fx_axes = treedef.flatten_up_to(vmap.out) if vmap is not None else [None] * len(out1_leaves)
    return list(zip(out1_leaves, out2_leaves, axes_leaves, fx_axes))


def example_shape(shape, fx_axis) -> tuple[int, ...]:
    """An output leaf's shape without its example axis (unchanged without ``vmap_axes``)."""
    return tuple(n for i, n in enumerate(shape) if i != fx_axis)


class SideLabels:
    """Labels and shapes of one side's operands for one output leaf."""

    def __init__(self, comp, k: int, letters: str, out_shape, fx_axis):
        self.ir = comp.side(k)
        self.k = k
        self.batch = (letters[fx_axis],) if fx_axis is not None else ()
        self.batch_shape = (out_shape[fx_axis],) if fx_axis is not None else ()
        self.out = tuple(c for i, c in enumerate(letters) if i != fx_axis)
        self.out_shape = example_shape(out_shape, fx_axis)

    def name(self, use_index: int, use, label: str) -> str:
        theta = theta_axes(use)
        if label in theta:
            return f"θ{use.leaf}.{theta[label]}"
        return f"{self.k}:{use_index}:{label}"

    def iteration(self, i: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(label, size) of a loop use's iteration axis, or empty. Stacked: θ's axis 0, so both
        sides' iterations are identified (Σ_t, the layers pair with themselves only); shared: a
        label of this side's own, summed on each side (Σ_t Σ_s, weight sharing across steps)."""
        use = self.ir.uses[i]
        if use.loop is None:
            return (), ()
        label = f"θ{use.leaf}.0" if use.loop.stacked else f"{self.k}:{i}:iteration"
        return (label,), (use.loop.length,)

    def cotangent(self, i: int) -> Operand:
        use = self.ir.uses[i]
        summed = self.ir.target_of(use).summed
        z = [(self.name(i, use, l), n) for ax, (l, n) in enumerate(zip(use.form.out_labels, use.output.shape))
             if ax not in summed]
        it, it_shape = self.iteration(i)
        return Operand(side=self.k, kind=COTANGENT, index=i,
                       labels=self.batch + self.out + it + tuple(l for l, _ in z),
                       shape=self.batch_shape + self.out_shape + it_shape + tuple(n for _, n in z))

    def factors(self, i: int) -> list[Operand]:
        use = self.ir.uses[i]
        it, it_shape = self.iteration(i)
        ops = []
        for f, spec in enumerate(use.form.factors):
            per_example = not spec.constant
            ops.append(Operand(
                side=self.k, kind=FACTOR, index=i, factor=f,
                labels=(self.batch + it if per_example else ()) + tuple(self.name(i, use, l) for l in spec.labels),
                shape=(self.batch_shape + it_shape if per_example else ()) + tuple(spec.shape),
            ))
        return ops


def side_labels_for(comp, u: int) -> tuple[SideLabels, SideLabels]:
    """Both sides' labels for output leaf ``u``."""
    out1, out2, ka, fx = output_leaves(comp)[u]
    l1, l2, _ = ka.labels()
    return SideLabels(comp, 1, l1, out1.shape, fx), SideLabels(comp, 2, l2, out2.shape, fx)

"""Structured derivatives (paper §3.3): Θ = Σ_l Σ_{k1,k2} cot1_k1 · A_k1 · A_k2ᵀ · cot2_k2ᵀ.

For every parameter leaf l and every pair of its uses (consumer equations k1, k2), one einsum
term joins x1's cotangent ∂y/∂z_k1 and factor of ∂z_k1/∂θ_l with x2's, where the structure
rules' labels decide what is contracted: θ's labels are shared between the sides, trace and
diagonal axes are label identifications (:meth:`ntkc.axes.KernelAxes.labels`), and the x1/x2
example axes carry the batch labels. opt_einsum picks each term's contraction order.

Status: a first compiler path (lower → find uses → per-side arrays → einsum terms); not yet
registered in :data:`ntkc.METHODS` (the cost model, propagation and order search of issue #3
are still to come).
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import opt_einsum

from ntkc.backends.jax_program import side_arrays
from ntkc.batching import shape_structs
from ntkc.ir.from_jaxpr import lower
from ntkc.passes.consumers import find_uses
from ntkc.problem import NTKProblem

PyTree = Any


def _example_struct(tree, axes):
    """ShapeDtypeStructs of one example: the batch axis removed from every batched leaf."""
    def one(axis, leaf):
        shape = jnp.shape(leaf)
        if axis is not None:
            shape = shape[:axis] + shape[axis + 1:]
        return jax.ShapeDtypeStruct(shape, jnp.result_type(leaf))
    return jax.tree_util.tree_map(one, axes, tree, is_leaf=lambda a: a is None)


class _Side:
    """One side lowered and evaluated: arrays[out_index] = (factors, cotangents) per use."""

    def __init__(self, side, params):
        self.side = side
        if side.vmap is None:
            fn = lambda p, xx, **kw: side.f(p, xx, **kw)
            x, kw = shape_structs(side.x), shape_structs(side.kwargs)
        else:
            batched, _ = side.batched_kwargs()
            fn = lambda p, xx, **kw: side.example(p, xx, kw)
            x = _example_struct(side.x, side.vmap.x)
            kw = {k: _example_struct(v, side.vmap.kwargs[k]) for k, v in batched.items()}
        self.graph, self.out_tree = lower(fn, shape_structs(params), x, kw)
        self.uses = find_uses(self.graph)
        self.params = params

    def arrays(self, out_index: int, out_shape):
        graph, uses, params = self.graph, self.uses, self.params
        if self.side.vmap is None:
            values = jax.tree_util.tree_leaves((params, self.side.x, self.side.kwargs))
            return side_arrays(graph, uses, out_index, out_shape, values)

        def one(x_i, kw_i):
            values = jax.tree_util.tree_leaves((params, x_i, kw_i))
            return side_arrays(graph, uses, out_index, out_shape, values)

        return self.side.map_examples(one)


def structured_kernel(problem: NTKProblem, params: PyTree) -> PyTree:
    """The NTK by structured derivatives; one kernel per output leaf."""
    side1 = _Side(problem.side1, params)
    side2 = side1 if problem.side2 is None else _Side(problem.side2, params)
    theta_shapes = [jnp.shape(p) for p in jax.tree_util.tree_leaves(params)]
    out1_leaves, treedef = jax.tree_util.tree_flatten(problem.out1)
    out2_leaves = treedef.flatten_up_to(problem.out2)
    axes_leaves = treedef.flatten_up_to(problem.axes)
    vmapped = problem.side1.vmap is not None
    out_axes = treedef.flatten_up_to(problem.side1.vmap.out) if vmapped else [None] * len(out1_leaves)
    kernels = []
    for u, (out1, out2, ka, fx_axis) in enumerate(zip(out1_leaves, out2_leaves, axes_leaves, out_axes)):
        example_shape = lambda shape: tuple(d for i, d in enumerate(shape) if i != fx_axis)
        arr1 = side1.arrays(u, example_shape(out1.shape))
        arr2 = arr1 if side2 is side1 else side2.arrays(u, example_shape(out2.shape))
        l1, l2, result = ka.labels()
        total = None
        for term in _terms(side1.uses, side2.uses, l1, l2, fx_axis, theta_shapes):
            ops = []
            for side_arr, kind, index in term["operands"]:
                factors, cots = arr1 if side_arr == 1 else arr2
                ops.append(cots[index] if kind == "cot" else factors[index][kind])
            spec = ",".join(term["specs"]) + "->" + result
            value = jnp.einsum(spec, *ops, optimize="optimal", precision=jax.lax.Precision.HIGHEST)
            value = value * jnp.asarray(term["scale"], value.dtype)
            total = value if total is None else total + value
        if total is None:  # f does not depend on params at all
            total = jnp.zeros(ka.result_shape(out1.shape, out2.shape), out1.dtype)
        kernels.append((total / ka.trace_size(out1.shape)).astype(out1.dtype))
    return jax.tree_util.tree_unflatten(treedef, kernels)


def _terms(uses1, uses2, l1: str, l2: str, fx_axis, theta_shapes):
    """Einsum terms: operand references, subscripts and scale, for every pair of uses of a leaf."""
    symbols: dict[str, str] = {c: c for c in l1 + l2}
    counter = itertools.count(60)

    def sym(name: str) -> str:
        if name not in symbols:
            symbols[name] = opt_einsum.get_symbol(next(counter))
        return symbols[name]

    def side_specs(use, index, side, labels):
        ex = labels[fx_axis] if fx_axis is not None else ""
        out = "".join(c for i, c in enumerate(labels) if i != fx_axis)
        theta = {t: f"P{a}" for a, t in enumerate(use.form.theta_labels)}
        name = lambda lbl: sym(theta.get(lbl, f"{lbl}#{side}:{index}"))
        ops = [(side, "cot", index)]
        specs = [ex + out + "".join(name(l) for l in use.form.out_labels)]
        for k, spec in enumerate(use.form.factors):
            ops.append((side, k, index))
            specs.append(ex + "".join(name(l) for l in spec.labels))
        return ops, specs

    for i, a in enumerate(uses1):
        for j, b in enumerate(uses2):
            if a.leaf != b.leaf:
                continue
            ops1, specs1 = side_specs(a, i, 1, l1)
            ops2, specs2 = side_specs(b, j, 2, l2)
            used = set("".join(specs1 + specs2))
            scale = a.form.scale * b.form.scale
            for axis, size in enumerate(theta_shapes[a.leaf]):
                if sym(f"P{axis}") not in used:
                    scale *= size
            yield {"operands": ops1 + ops2, "specs": specs1 + specs2, "scale": scale}

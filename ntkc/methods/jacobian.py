"""Jacobian contraction (paper §3.1): Θ = Σ_leaves J1_l · J2_lᵀ.

Each side's Jacobian is built once — reverse mode (one VJP per output entry) when the outputs
are fewer than the parameters, forward mode otherwise or when ``f`` cannot run in reverse (a
``while`` with a data-dependent trip count); under ``vmap_axes`` per example and vmapped. The
kernel is the sum over parameter leaves of one einsum each. Cost: ``N·O·[FP] + N1·N2·O²·P``
time, ``N·O·P`` memory.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from ntkc.backends.program import Call, Einsum, Finish, Program, Sum
from ntkc.batching import same_examples
from ntkc.methods.calls import SideArgs, program_inputs
from ntkc.methods.contract import param_labels

PyTree = Any


def _size(tree: PyTree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def _jacobian_fn(args: SideArgs, reverse: bool):
    """``(params, x, kwargs) leaves -> [∂out_o/∂θ_l for o, for l]`` of one example (or batch)."""
    side = args.side
    transform = jax.jacrev if reverse else jax.jacfwd

    def jacobian(*leaves):
        params, x, kwargs = args.unflatten(leaves)
        if side.vmap is None:
            out = lambda p: side.call(p, x, kwargs)
        else:
            out = lambda p: side.example(p, x, kwargs)
        return jax.tree_util.tree_leaves(transform(out)(params))

    return jacobian


def side_jacobian_step(args: SideArgs, params_spec, forward: bool, fn=None) -> Call:
    """The :class:`Call` computing one side's Jacobian leaves ``j{k}_{o}_{l}`` (batch axis at
    each output leaf's batch axis)."""
    side, k = args.side, args.k
    n_params = len(jax.tree_util.tree_leaves(params_spec))
    out_axes = jax.tree_util.tree_leaves(side.vmap.out) if side.vmap is not None else None
    x, kwargs = side.example_specs()
    outs = jax.eval_shape(lambda p, xx, kw: (side.call if side.vmap is None else side.example)(p, xx, kw),
                          params_spec, x, kwargs)
    n_out = len(jax.tree_util.tree_leaves(outs))
    names = tuple(f"j{k}_{o}_{l}" for o in range(n_out) for l in range(n_params))
    reverse = not forward and _size(outs) <= _size(params_spec)
    fn = fn or _jacobian_fn(args, reverse)
    mode = "reverse" if reverse else "forward"
    if side.vmap is None:
        return Call(outputs=names, fn=fn, args=args.names, name=f"jacobian{k}",
                    doc=f"∂f/∂params of side {k}'s whole batch ({mode} mode).")
    return Call(outputs=names, fn=fn, args=args.names, name=f"jacobian{k}", in_axes=args.in_axes(),
                out_axes=tuple(axis for axis in out_axes for _ in range(n_params)),
                doc=f"∂f/∂params of one example of side {k} ({mode} mode).")


def jacobian_program(plan) -> Program:
    """Both sides' Jacobians, then one einsum per (output leaf, parameter leaf)."""
    problem = plan.problem
    inputs, one, two = program_inputs(problem, plan.params)
    forward = plan.forward
    steps = [side_jacobian_step(one, plan.params, forward)]
    second = 1
    if two is not None:
        shared = steps[0].fn if same_examples(problem.side1, problem.side2) else None
        steps.append(side_jacobian_step(two, plan.params, forward, fn=shared))
        second = 2
    out1, treedef = jax.tree_util.tree_flatten(problem.out1)
    axes = treedef.flatten_up_to(problem.axes)
    outputs = []
    for o, (ka, leaf) in enumerate(zip(axes, out1)):
        l1, l2, result = ka.labels()
        terms = []
        for l, p in enumerate(jax.tree_util.tree_leaves(plan.params)):
            pl = param_labels(ka, len(p.shape))
            terms.append(f"k{o}_leaf{l}")
            steps.append(Einsum(output=terms[-1], spec=f"{l1}{pl},{l2}{pl}->{result}",
                                args=(f"j1_{o}_{l}", f"j{second}_{o}_{l}")))
        steps.append(Sum(output=f"k{o}_sum", args=tuple(terms)))
        # In f's output dtype, as every method returns it (a Jacobian w.r.t. float32
        # parameters is float32 even when float64 inputs make the outputs float64).
        steps.append(Finish(output=f"k{o}", arg=f"k{o}_sum", divisor=ka.trace_size(leaf.shape),
                            dtype=np.dtype(leaf.dtype)))
        outputs.append(f"k{o}")
    return Program(inputs=inputs, steps=tuple(steps), outputs=tuple(outputs))

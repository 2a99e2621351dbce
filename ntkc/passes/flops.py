"""FLOP counts of graph equations and of a whole structured compilation.

One table, primitive name → count, with families for the common cases: contractions count a
multiply-add as 2 (XLA's and opt_einsum's convention), data movement counts 0, reductions count
one add per input element, everything else one FLOP per output element. Counts are plain
integers of concrete shapes; the symbolic cost model builds on the same rules.

:func:`compilation_flops` prices everything the structured program runs: the primal forward
passes, the shared backward sweeps (one per output entry of one example, so ``O`` sweeps), any
dense fallback factors and the contraction plan.
"""

from __future__ import annotations

from typing import Callable

from ntkc.ir.graph import Eqn, Lit


def size_of_shape(shape, dim=int):
    """Product of ``dim(d)`` over a shape (``dim`` names sizes symbolically, see ``cost.py``)."""
    total = 1
    for d in shape:
        total = total * dim(d)
    return total


def dot_general_flops(eqn: Eqn, dim=int):
    """``2 · |out| · |contracted|``.

    >>> import jax, jax.numpy as jnp
    >>> from ntkc.ir.graph import Eqn, Lit, Var
    >>> a, b, c = Var(0, (4, 3), jnp.float32), Var(1, (3, 5), jnp.float32), Var(2, (4, 5), jnp.float32)
    >>> dims = (((1,), (0,)), ((), ()))
    >>> dot_general_flops(Eqn(jax.lax.dot_general_p, (a, b), (c,), {"dimension_numbers": dims}, True))
    120
    """
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.inputs[0].shape
    return 2 * size_of_shape(eqn.outputs[0].shape, dim) * size_of_shape((lhs[d] for d in lhs_contract), dim)


def conv_flops(eqn: Eqn, dim=int):
    """``2 · |out| · |kernel| / out_features``: every output reads one kernel slice of its group."""
    rhs = eqn.inputs[1].shape
    out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
    read = [d for i, d in enumerate(rhs) if i != out_feature_dim]
    return 2 * size_of_shape(eqn.outputs[0].shape, dim) * size_of_shape(read, dim)


def reduction_flops(eqn: Eqn, dim=int):
    """One add per input element."""
    return size_of_shape(eqn.inputs[0].shape, dim)


def free(eqn: Eqn, dim=int):
    """Data movement: no arithmetic."""
    return 0


def elementwise_flops(eqn: Eqn, dim=int):
    """One FLOP per output element (the default)."""
    return sum(size_of_shape(o.shape, dim) for o in eqn.outputs)


#: primitive name -> ``rule(eqn, dim)``; ``dim`` maps each concrete size to an int or a symbol.
FLOP_RULES: dict[str, Callable] = {
    "dot_general": dot_general_flops,
    "conv_general_dilated": conv_flops,
    **{name: reduction_flops for name in (
        "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin",
        "reduce_window_sum", "cumsum", "cumprod", "cummax",
    )},
    **{name: free for name in (
        "reshape", "squeeze", "expand_dims", "transpose", "broadcast_in_dim", "convert_element_type",
        "copy", "copy_p", "device_put", "slice", "dynamic_slice", "dynamic_update_slice", "pad",
        "rev", "concatenate", "gather", "iota", "select_n", "stop_gradient",
    )},
}


def eqn_flops(eqn: Eqn, dim=int):
    """FLOPs of one equation (an int, or a sympy expression when ``dim`` names sizes)."""
    return FLOP_RULES.get(eqn.name, elementwise_flops)(eqn, dim)


def compilation_flops(comp, dim=int, examples=None, outputs=None) -> dict:
    """FLOPs of a structured compilation, by part: ``primal`` (forward passes), ``sweep`` (the
    backward sweeps producing the cotangents: one per output entry of one example),
    ``fallback`` (dense factors of consumers without a rule) and ``contractions`` (the plan's
    einsums, replayed along their recorded paths). When ``x2`` is ``x1`` there is one physical
    side, counted once.

    ``dim`` maps concrete sizes to symbols; ``examples(side_ir)`` and ``outputs(size)`` name the
    batch size and the per-example output sizes (see :mod:`ntkc.passes.cost`).
    """
    from ntkc.passes.cost import path_cost

    examples = examples or (lambda side_ir: side_ir.side.n_examples())
    outputs = outputs or dim
    parts = {"primal": 0, "sweep": 0, "fallback": 0, "contractions": 0}
    for side_ir in comp.sides:
        n, graph = examples(side_ir), side_ir.graph
        primal = sum(times * eqn_flops(e, dim) for e, times, _ in graph.walk() if not e.linear)
        backward = sum(times * eqn_flops(e, dim) for e, times, reads_theta in graph.walk()
                       if e.linear and not reads_theta)
        n_out = sum(outputs(size_of_shape(o.shape)) for o in graph.outputs)
        parts["primal"] += n * primal
        parts["sweep"] += n * backward * n_out
        parts["fallback"] += n * sum(2 * size_of_shape(u.output.shape, dim) * size_of_shape(comp.theta_shapes[u.leaf], dim)
                                     for u in side_ir.uses if not u.has_rule)
    for kernel in comp.kernels:
        sizes = {label: dim(size) for label, size in kernel.label_sizes().items()}
        for jac in kernel.jacobians:
            sizes.update({label: dim(size) for label, size in zip(jac.labels, jac.shape)})
        for c in kernel.contractions():
            parts["contractions"] += path_cost([op.labels for op in c.operands], c.output, c.path, sizes)[0]
    return parts

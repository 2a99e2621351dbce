"""Contraction-order search: an opt_einsum path for every contraction of the plan.

Planning is separate from execution: this pass only records ``path``, ``flops`` and
``largest`` (elements of the largest intermediate) on each
:class:`~ntkc.ir.terms.Contraction`; the backend replays the path. ``'optimal'`` is used for
up to :data:`OPTIMAL_MAX_OPERANDS` operands, ``'dp'`` beyond. An optional memory limit (bytes)
excludes orders whose intermediates exceed it (opt_einsum then contracts what remains in one
step; then the order with the smallest largest intermediate is taken instead, so the limit is a
preference for lean intermediates, not a hard guarantee).

Needs: contractions with labelled, shaped operands. Guarantees: every contraction has a path
valid for its operand count, and its FLOP count (opt_einsum's convention: a multiply-add
counts 2 when there is a summation).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import opt_einsum

from ntkc.ir.terms import Contraction

OPTIMAL_MAX_OPERANDS = 6


def einsum_spec(contraction: Contraction) -> tuple[str, dict[str, str]]:
    """The einsum string of a contraction, with a symbol per readable label.

    >>> from ntkc.ir.terms import Contraction, Operand
    >>> a = Operand(side=1, kind="factor", index=0, factor=0, labels=("a", "θ0.0"), shape=(2, 3))
    >>> b = Operand(side=2, kind="factor", index=0, factor=0, labels=("b", "θ0.0"), shape=(4, 3))
    >>> einsum_spec(Contraction(operands=(a, b), output=("a", "b")))[0]
    'ab,cb->ac'
    """
    symbols: dict[str, str] = {}
    sym = lambda l: symbols.setdefault(l, opt_einsum.get_symbol(len(symbols)))
    ins = ",".join("".join(sym(l) for l in op.labels) for op in contraction.operands)
    present = {l for op in contraction.operands for l in op.labels}
    out = "".join(sym(l) for l in contraction.output if l in present)
    return f"{ins}->{out}", symbols


def pairwise(path) -> tuple[tuple[int, ...], ...]:
    """Split every step of an opt_einsum path that contracts three or more operands into pairwise
    steps (``jnp.einsum`` accepts only those). Each step removes its operands and appends the
    result last, so a later operand of the step shifts down by the removed ones before it.

    >>> pairwise([(0, 1, 3), (0, 1)])
    ((0, 1), (1, 2), (0, 1))
    """
    count = sum(len(step) - 1 for step in path) + 1
    steps = []
    for step in path:
        first, *rest = step
        if not rest:
            steps.append((first,))
            continue
        removed = [first, rest[0]]
        steps.append((first, rest[0]))
        count -= 1
        for index in rest[1:]:
            steps.append((index - sum(r < index for r in removed), count - 1))
            removed.append(index)
            count -= 1
    return tuple(steps)


def best_path(contraction: Contraction, memory_limit_elements: int | None = None) -> Contraction:
    """The contraction with its cheapest path (under the memory limit) recorded."""
    spec, _ = einsum_spec(contraction)
    shapes = [op.shape for op in contraction.operands]
    method = "optimal" if len(shapes) <= OPTIMAL_MAX_OPERANDS else "dp"
    if len(shapes) == 1:
        return dataclasses.replace(contraction, path=((0,),), flops=0, largest=0)
    path, info = opt_einsum.contract_path(spec, *shapes, shapes=True, optimize=method,
                                          memory_limit=memory_limit_elements)
    if any(len(step) > 2 for step in path):  # no pairwise order fits: take the leanest one
        path, info = opt_einsum.contract_path(spec, *shapes, shapes=True,
                                              optimize=opt_einsum.DynamicProgramming(minimize="size"))
        path, info = opt_einsum.contract_path(spec, *shapes, shapes=True,
                                              optimize=list(pairwise(path)))
    return dataclasses.replace(contraction, path=tuple(tuple(p) for p in path),
                               flops=int(info.opt_cost), largest=int(info.largest_intermediate))


def _limit(comp, kernel) -> int | None:
    if comp.memory_limit is None:
        return None
    return max(1, comp.memory_limit // np.dtype(kernel.dtype).itemsize)


def order_pass(comp):
    """Needs: kernel plans. Guarantees: a path and FLOP count on every contraction."""
    kernels = []
    for kernel in comp.kernels:
        limit = _limit(comp, kernel)
        terms = tuple(dataclasses.replace(t, contraction=best_path(t.contraction, limit)) for t in kernel.terms)
        jacobians = tuple(
            dataclasses.replace(j, parts=tuple(best_path(p, limit) for p in j.parts)) for j in kernel.jacobians
        )
        kernels.append(dataclasses.replace(kernel, terms=terms, jacobians=jacobians))
    return comp.replace(kernels=tuple(kernels))

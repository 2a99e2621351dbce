"""The symbolic cost model: FLOPs and peak memory of contraction paths as sympy expressions.

Sizes are ints or sympy expressions. The same small functions price the structured plan's
einsums (replaying each contraction's recorded path), so one model can price every method.
Conventions follow opt_einsum (and XLA): a pairwise step with a summed index costs
``2 · Π sizes`` (multiply and add), without one ``Π sizes``; memory is counted in elements.

Each function is pure; substituting concrete sizes into a symbolic result gives the integer the
same function returns for those sizes (tested against opt_einsum's own counts).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Sequence, Union

import sympy

Size = Union[int, sympy.Expr]
Labels = Sequence[str]


def size_of(labels: Iterable[str], sizes: Mapping[str, Size]) -> Size:
    """The number of elements of an array with these labels.

    >>> W = sympy.Symbol("W")
    >>> size_of("ab", {"a": 3, "b": W})
    3*W
    """
    total: Size = 1
    for label in labels:
        total = total * sizes[label]
    return total


def step_flops(involved: Iterable[str], inner: bool, n_terms: int, sizes: Mapping[str, Size]) -> Size:
    """FLOPs of one contraction step over the ``involved`` labels (opt_einsum's convention).

    >>> step_flops("abc", True, 2, {"a": 2, "b": 3, "c": 5})
    60
    >>> N, W = sympy.symbols("N W")
    >>> step_flops("nw", False, 2, {"n": N, "w": W})
    N*W
    """
    factor = max(1, n_terms - 1) + (1 if inner else 0)
    return factor * size_of(involved, sizes)


def path_cost(inputs: Sequence[Labels], output: Labels, path: Sequence[Sequence[int]],
              sizes: Mapping[str, Size]) -> tuple[Size, Size]:
    """(FLOPs, largest intermediate in elements) of contracting ``inputs`` to ``output`` along
    ``path`` (opt_einsum's format: each step removes its operands and appends the result).

    >>> path_cost(["ij", "jk", "kl"], "il", [(0, 1), (0, 1)], {"i": 2, "j": 3, "k": 4, "l": 5})
    (128, 10)
    >>> N, W = sympy.symbols("N W", positive=True)
    >>> path_cost(["nw", "mw"], "nm", [(0, 1)], {"n": N, "m": N, "w": W})
    (2*N**2*W, N**2)
    """
    operands = [tuple(labels) for labels in inputs]
    flops: Size = 0
    largest: Size = 0
    if len(operands) == 1:
        return 0, 0
    for step in path:
        picked = [operands[i] for i in step]
        for i in sorted(step, reverse=True):
            del operands[i]
        involved = list(dict.fromkeys(label for op in picked for label in op))
        still_needed = set(output).union(*map(set, operands)) if operands else set(output)
        kept = tuple(label for label in involved if label in still_needed)
        inner = len(kept) < len(involved)
        flops = flops + step_flops(involved, inner, len(picked), sizes)
        largest = sympy.Max(largest, size_of(kept, sizes)) if _symbolic(largest, kept, sizes) \
            else max(largest, size_of(kept, sizes))
        operands.append(kept)
    return flops, largest


def _symbolic(current: Size, labels: Labels, sizes: Mapping[str, Size]) -> bool:
    return isinstance(current, sympy.Expr) or any(isinstance(sizes[label], sympy.Expr) for label in labels)


def evaluate(expr: Size, values: Mapping[str, int]) -> int:
    """An expression's integer value at concrete sizes (``values`` keyed by symbol name).

    >>> evaluate(2 * sympy.Symbol("N") ** 2, {"N": 8})
    128
    """
    if not isinstance(expr, sympy.Expr):
        return int(expr)
    subs = {s: values[s.name] for s in expr.free_symbols}
    return int(expr.subs(subs))


# ---------------------------------------------------------------------------------------------
# Naming sizes, and the three methods priced from one compilation.


@dataclasses.dataclass(frozen=True)
class SizeNames:
    """Which concrete sizes are named by which symbol (``dim(8) -> N`` and so on).

    Sizes are named by value: the batch sizes (``N``, or ``N1``/``N2`` when they differ), the
    per-example output size ``O``, and whatever ``dims`` names. Two names for one value are
    ambiguous and rejected; a size nobody names stays an int.
    """

    symbols: Mapping[int, sympy.Symbol]
    factor: bool = False  # named sizes are distinct primes: read products of them back too

    def dim(self, value) -> Size:
        """A size as an int or an expression of the names.

        >>> names = SizeNames.create({"D": 11, "F": 13}, factor=True)
        >>> names.dim(11 * 11 * 13), names.dim(6)
        (D**2*F, 6)
        """
        value = int(value)
        if value in self.symbols or not self.factor:
            return self.symbols.get(value, value)
        rest, expr = value, 1
        for prime, symbol in self.symbols.items():
            while sympy.isprime(prime) and rest % prime == 0:
                rest //= prime
                expr = expr * symbol
        return value if expr == 1 else rest * expr

    def values(self) -> dict[str, int]:
        return {s.name: v for v, s in self.symbols.items()}

    @classmethod
    def create(cls, named: Mapping[str, int], factor: bool = False) -> "SizeNames":
        """``named``: symbol name -> concrete size.

        >>> SizeNames.create({"N": 8, "W": 512}).dim(512)
        W
        >>> SizeNames.create({"N": 8, "O": 8})
        Traceback (most recent call last):
        ...
        ValueError: sizes 'N' and 'O' are both 8, so a cost in terms of them is ambiguous; give them distinct sizes (or trace with symbolic shapes)
        """
        symbols: dict[int, sympy.Symbol] = {}
        for name, value in named.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`dims[{name!r}]` must be a positive int, got {value!r}")
            if value in symbols and symbols[value].name != name:
                raise ValueError(
                    f"sizes {symbols[value].name!r} and {name!r} are both {value}, so a cost in terms of "
                    "them is ambiguous; give them distinct sizes (or trace with symbolic shapes)")
            if value > 1:
                symbols[value] = sympy.Symbol(name, positive=True, integer=True)
        return cls(symbols=symbols, factor=factor)


@dataclasses.dataclass(frozen=True)
class MethodCost:
    """A method's predicted cost: FLOPs and peak memory (elements), each split into named parts."""

    flops: Mapping[str, Size]
    memory: Mapping[str, Size]

    @property
    def total_flops(self) -> Size:
        return sympy.expand(sum(self.flops.values()))

    @property
    def total_memory(self) -> Size:
        return sympy.expand(sum(self.memory.values()))


def _linear_flops(graph, dim, *, with_theta: bool) -> Size:
    from ntkc.passes.flops import eqn_flops

    return sum((times * eqn_flops(e, dim) for e, times, reads_theta in graph.walk()
                if e.linear and (with_theta or not reads_theta)), 0)


def _primal(graph, dim) -> tuple[Size, Size]:
    """(FLOPs, elements of residuals) of one forward pass."""
    from ntkc.passes.flops import eqn_flops, size_of_shape

    eqns = [(e, times) for e, times, _ in graph.walk() if not e.linear]
    return (sum((times * eqn_flops(e, dim) for e, times in eqns), 0),
            sum((times * size_of_shape(o.shape, dim) for e, times in eqns for o in e.outputs), 0))


def method_costs(comp, names: SizeNames, examples) -> dict[str, MethodCost]:
    """Every method's cost for one compilation; ``examples(side_ir)`` is a side's batch size
    as a :data:`Size` (1 without ``vmap_axes``: the graph is then the whole batch)."""
    from ntkc.passes.flops import compilation_flops, size_of_shape

    dim = names.dim
    sides = [comp.side(1), comp.side(2)]
    n = [examples(s) for s in sides]
    outs = [sum((size_of_shape(o.shape, dim) for o in s.graph.outputs), 0) for s in sides]
    n_params = sum((size_of_shape(shape, dim) for shape in comp.theta_shapes), 0)
    primal = [_primal(s.graph, dim) for s in sides]
    full = [_linear_flops(s.graph, dim, with_theta=True) for s in sides]
    physical = range(len(comp.sides))
    result = sum((size_of_shape(k.result_shape, dim) * dim(k.trace_size) for k in comp.kernels), 0)

    structured = compilation_flops(comp, dim=dim, examples=examples)
    arrays = {}
    largest = 0
    for kernel in comp.kernels:
        for c in kernel.contractions():
            for op in c.operands:
                arrays[(kernel.output, op.side if len(comp.sides) == 2 else 1, op.key)] = size_of_shape(op.shape, dim)
            largest = largest + dim(c.largest or 0)
    operands = sum(arrays.values(), 0)
    costs = {
        "structured": MethodCost(
            flops=structured,
            memory={"residuals": sum((n[i] * primal[i][1] for i in physical), 0),
                    "operands": operands, "intermediates": largest, "result": result}),
        "jacobian": MethodCost(
            flops={"primal": sum((n[i] * primal[i][0] for i in physical), 0),
                   "jacobians": sum((n[i] * outs[i] * full[i] for i in physical), 0),
                   "contractions": 2 * result * n_params},
            memory={"residuals": sum((n[i] * primal[i][1] for i in physical), 0),
                    "jacobians": sum((n[i] * outs[i] * n_params for i in physical), 0), "result": result}),
        "ntvp": MethodCost(
            flops={"primal": sum((n[i] * primal[i][0] for i in physical), 0),
                   "products": n[1] * outs[1] * (n[0] * full[0] + n[1] * full[1])},
            memory={"residuals": sum((n[i] * primal[i][1] for i in physical), 0),
                    "columns": n_params, "result": result}),
    }
    return costs

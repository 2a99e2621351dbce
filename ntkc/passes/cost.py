"""The cost model: FLOPs and peak memory of programs and contraction paths, as sympy expressions.

Sizes are ints or sympy expressions. Three layers, each made of small pure functions:

* **equations** (:data:`FLOP_RULES`): FLOPs of one primitive application — contractions count a
  multiply-add as 2 (XLA's and opt_einsum's convention), data movement 0, reductions one add per
  input element, everything else one FLOP per output element;
* **contraction paths** (:func:`path_cost`): FLOPs and the largest intermediate of an einsum
  along a recorded pairwise path (opt_einsum's convention: a step with a summed index costs
  ``2 · Π sizes``, without one ``Π sizes``); memory is counted in elements;
* **methods** (:func:`structured_cost`, :func:`jacobian_cost`, :func:`ntvp_cost`): every method
  priced from one structured compilation, so one model prices them all.

Substituting concrete sizes into a symbolic result gives the integer the same function returns
for those sizes (tested against opt_einsum's own counts).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Mapping, Sequence, Union

import sympy

from ntkc.ir.graph import Eqn

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
# Equations.


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


# ---------------------------------------------------------------------------------------------
# Naming sizes.


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
        >>> names.dim(11 * 11 * 13), names.dim(6), names.dim(0)
        (D**2*F, 6, 0)
        """
        value = int(value)
        if value in self.symbols or not self.factor or value < 2:  # 0 and 1 have no prime factors
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


# ---------------------------------------------------------------------------------------------
# Methods, priced from one structured compilation.


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


def compilation_flops(comp, dim=int, examples=None, outputs=None) -> dict:
    """FLOPs of a structured compilation, by part: ``primal`` (forward passes), ``sweep`` (the
    backward sweeps producing the cotangents: one per output entry of one example),
    ``fallback`` (dense factors of consumers without a rule) and ``contractions`` (the plan's
    einsums, replayed along their recorded paths). When ``x2`` is ``x1`` there is one physical
    side, counted once.

    ``dim`` maps concrete sizes to symbols; ``examples(side_ir)`` and ``outputs(size)`` name the
    batch size and the per-example output sizes.
    """
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


def _primal(graph, dim) -> tuple[Size, Size]:
    """(FLOPs, elements of residuals) of one forward pass."""
    eqns = [(e, times) for e, times, _ in graph.walk() if not e.linear]
    return (sum((times * eqn_flops(e, dim) for e, times in eqns), 0),
            sum((times * size_of_shape(o.shape, dim) for e, times in eqns for o in e.outputs), 0))


@dataclasses.dataclass(frozen=True)
class Common:
    """Sizes every method's price is made of, per side (index 0: x1, 1: x2): ``n`` examples,
    ``outs`` outputs per example, ``primal`` (FLOPs, residual elements) of one forward pass,
    ``linear`` FLOPs of one application of the linear map; ``params`` parameters, ``result``
    kernel entries before tracing, ``physical`` the sides that run (one when x2 is x1)."""

    n: tuple
    outs: tuple
    primal: tuple
    linear: tuple
    params: Size
    result: Size
    physical: range

    @classmethod
    def of(cls, comp, names: SizeNames, examples) -> "Common":
        dim = names.dim
        sides = (comp.side(1), comp.side(2))
        linear = lambda g: sum((t * eqn_flops(e, dim) for e, t, _ in g.walk() if e.linear), 0)
        return cls(
            n=tuple(examples(s) for s in sides),
            outs=tuple(sum((size_of_shape(o.shape, dim) for o in s.graph.outputs), 0) for s in sides),
            primal=tuple(_primal(s.graph, dim) for s in sides),
            linear=tuple(linear(s.graph) for s in sides),
            params=sum((size_of_shape(shape, dim) for shape in comp.theta_shapes), 0),
            result=sum((size_of_shape(k.result_shape, dim) * dim(k.trace_size) for k in comp.kernels), 0),
            physical=range(len(comp.sides)))

    def residuals(self) -> Size:
        return sum((self.n[i] * self.primal[i][1] for i in self.physical), 0)

    def forward(self) -> Size:
        return sum((self.n[i] * self.primal[i][0] for i in self.physical), 0)


def structured_cost(comp, names: SizeNames, examples) -> MethodCost:
    """Structured derivatives: the compilation's own program (:func:`compilation_flops`); memory
    of the residuals, every operand array, the largest intermediate of each contraction and the
    result."""
    dim = names.dim
    common = Common.of(comp, names, examples)
    arrays, largest = {}, 0
    for kernel in comp.kernels:
        for c in kernel.contractions():
            for op in c.operands:
                arrays[(kernel.output, op.side if len(comp.sides) == 2 else 1, op.key)] = size_of_shape(op.shape, dim)
            largest = largest + dim(c.largest or 0)
    return MethodCost(
        flops=compilation_flops(comp, dim=dim, examples=examples),
        memory={"residuals": common.residuals(), "operands": sum(arrays.values(), 0),
                "intermediates": largest, "result": common.result})


def jacobian_cost(comp, names: SizeNames, examples) -> MethodCost:
    """Jacobian contraction: ``N·O`` applications of the linear map per side, then
    ``2 · result · P`` for the contractions; memory of both Jacobians."""
    c = Common.of(comp, names, examples)
    return MethodCost(
        flops={"primal": c.forward(),
               "jacobians": sum((c.n[i] * c.outs[i] * c.linear[i] for i in c.physical), 0),
               "contractions": 2 * c.result * c.params},
        memory={"residuals": c.residuals(),
                "jacobians": sum((c.n[i] * c.outs[i] * c.params for i in c.physical), 0), "result": c.result})


def ntvp_cost(comp, names: SizeNames, examples) -> MethodCost:
    """NTK-vector products: one VJP (side 2) and one JVP (side 1) per output column of side 2."""
    c = Common.of(comp, names, examples)
    return MethodCost(
        flops={"primal": c.forward(),
               "products": c.n[1] * c.outs[1] * (c.n[0] * c.linear[0] + c.n[1] * c.linear[1])},
        memory={"residuals": c.residuals(), "columns": c.params, "result": c.result})

"""The one equation printer: Python source for the equations of a traced program.

Each equation the outputs depend on becomes one line ``out = <call>``, the call being the
public ``jax.lax`` / ``jax.numpy`` form of :mod:`ntkc.export.public_forms`, so the module reads
as a person would write it and runs on every supported JAX. Equations that only copy or place
data write no line (their outputs take their inputs' names). Control flow (``scan``, ``cond``,
``while``: :data:`NESTED`) becomes nested Python functions passed to ``lax.scan``,
``lax.switch`` and ``lax.while_loop``. Literals and constants keep the dtypes the traced program
gives them; outputs nobody reads are ``_``.

An equation no rule writes is, as a last resort, ``lax.<name>_p.bind(*inputs, **params)`` with
the parameters of the JAX that traced it, flagged by a comment; the module's header then says
it runs on that JAX only. A parameter with no source form raises :class:`ExportError` naming
the primitive and the parameter.
"""

from __future__ import annotations

import re

import jax
import numpy as np

from ntkc.errors import ExportError
from ntkc.export.public_forms import is_identity, public_call
from ntkc.export.values import ConstantPool, primitive_source, scalar_source, value_source
from ntkc.ir.from_jaxpr import read_closed
from ntkc.ir.graph import Eqn, Graph, Lit, Var

__all__ = ["ConstantPool", "Names", "graph_lines", "value_source", "live_eqns", "eqn_lines"]


class Names:
    """Python identifiers for vars: given names first, then ``v1, v2, ...`` in definition order;
    ``_`` for an output nobody reads (``used``: the vars the written lines read)."""

    def __init__(self, pool: ConstantPool) -> None:
        self.pool = pool
        self.of: dict[Var, str] = {}
        self.count = 0
        self.used: set = set()

    def bind(self, var: Var, name: str) -> None:
        self.pool.note(var.dtype)
        self.of[var] = name

    def new(self, var: Var) -> str:
        self.pool.note(var.dtype)
        if var not in self.used:
            return "_"
        self.count += 1
        self.of[var] = f"v{self.count}"
        return self.of[var]

    def atom(self, atom) -> str:
        if isinstance(atom, Lit):
            value = atom.array()
            self.pool.note(value.dtype)
            return scalar_source(value) if value.ndim == 0 else self.pool.add(value)
        return self.of[atom]

    def child(self) -> "Names":
        """Names for a nested function: the same pool, numbering continued."""
        inner = Names(self.pool)
        inner.count = self.count
        return inner


def _comment(eqn: Eqn) -> str:
    """The user's source line of an equation (none for lines inside ntkc itself)."""
    if not eqn.source or eqn.source.startswith("<") or "/ntkc/" in eqn.source:
        return ""
    return "  # " + re.sub(r"^.*/", "", eqn.source)


def bind_source(eqn: Eqn, ins: list[str], pool: ConstantPool) -> str:
    """``lax.<name>_p.bind(*ins, **params)`` with this JAX's parameters (the last resort)."""
    try:
        params = [f"{k}={value_source(v, pool)}" for k, v in eqn.params.items()]
    except ExportError as e:
        raise ExportError(f"cannot export primitive {eqn.name!r} ({eqn.source or 'unknown source'}): {e}") from None
    pool.limit(f"{eqn.name} is bound with the parameters of jax {jax.__version__}")
    return f"{primitive_source(eqn.primitive)}.bind({', '.join(ins + params)})"


def _targets(outs: list[str], groups: list[int] | None) -> str:
    if groups is None:
        return "".join(o + ", " for o in outs)
    parts, start = [], 0
    for size in groups:
        parts.append(_tuple(outs[start:start + size]))
        start += size
    return ", ".join(parts) + " "


def eqn_lines(eqn: Eqn, names: Names, indent: str) -> list[str]:
    """Lines assigning ``eqn``'s outputs."""
    if is_identity(eqn):
        for out, atom in zip(eqn.outputs, eqn.inputs):
            names.of[out] = names.atom(atom)
        return []
    if eqn.name in NESTED:
        defs, call, groups = NESTED[eqn.name](eqn, names, indent)
        outs = [names.new(v) for v in eqn.outputs]
        return defs + [f"{indent}{_targets(outs, groups)}= {call}{_comment(eqn)}"]
    ins = [names.atom(a) for a in eqn.inputs]
    found = public_call(eqn, ins, names.pool)
    if found is None:
        call, note = bind_source(eqn, ins, names.pool), f"no public form for {eqn.name} with these parameters"
    else:
        call, note = found
    lines = [f"{indent}# {note}"] if note else []
    outs = [names.new(v) for v in eqn.outputs]
    if eqn.primitive.multiple_results:
        return lines + [f"{indent}{_targets(outs, None)}= {call}{_comment(eqn)}"]
    return lines + [f"{indent}{outs[0]} = {call}{_comment(eqn)}"]


def live_eqns(graph: Graph) -> list[Eqn]:
    """The equations the graph's outputs depend on, in order (dead code is not written)."""
    producer = {v: e for e in graph.eqns for v in e.outputs}
    needed, stack = set(), [o for o in graph.outputs if isinstance(o, Var) and o in producer]
    while stack:
        eqn = producer[stack.pop()]
        if eqn in needed:
            continue
        needed.add(eqn)
        stack.extend(v for v in eqn.inputs if isinstance(v, Var) and v in producer)
    return [e for e in graph.eqns if e in needed]


def _reads(eqns: list[Eqn], graph: Graph) -> set:
    """The vars that ``eqns`` and the graph's outputs read."""
    return {v for e in eqns for v in e.inputs if isinstance(v, Var)} | \
        {v for v in graph.outputs if isinstance(v, Var)}


def graph_lines(graph: Graph, names: Names, inputs: list[str], indent: str) -> tuple[list[str], list[str]]:
    """(lines computing ``graph`` from the sources ``inputs`` of its primal inputs, the sources
    of its outputs)."""
    bind_consts(graph, names)
    for var, source in zip(graph.primal_inputs, inputs):
        names.bind(var, source)
    live = live_eqns(graph)
    names.used = _reads(live, graph)
    lines = [line for eqn in live for line in eqn_lines(eqn, names, indent)]
    return lines, [names.atom(o) for o in graph.outputs]


# ---------------------------------------------------------------------------------------------
# Control flow: ``scan``, ``cond`` and ``while`` as nested functions. Their bodies are jaxprs in
# the equation's params, read as graphs (nothing is traced). Identities: ``scan`` binds
# ``(consts, carry, xs)`` in that order and returns ``(carry, ys)``; ``cond``'s first input is
# the branch index, which ``lax.switch`` clamps (a no-op for the in-range indices ``cond``
# receives); ``while``'s inputs are ``cond_consts + body_consts + init``.


def bind_consts(graph: Graph, names: Names) -> None:
    """Name a graph's constants by pool entries, in the dtype of the var they stand for."""
    for var, value in graph.consts.items():
        names.bind(var, names.pool.add(np.asarray(value, var.dtype)))


def _tuple(items: list[str]) -> str:
    return f"({''.join(i + ', ' for i in items)})"


def nested_function(name: str, closed, names: Names, indent: str, consts: list[str],
                    groups: list[int]) -> tuple[list[str], list[str]]:
    """(lines of ``def name(arg0, arg1, ...)`` up to its return, its output sources): the
    jaxpr's inputs after ``consts`` arrive as tuples ``arg0, arg1, ...`` of sizes ``groups``."""
    graph = read_closed(closed)
    inner = names.child()
    bind_consts(graph, inner)
    inputs = list(graph.primal_inputs)
    for var, source in zip(inputs, consts):
        inner.bind(var, source)
    live = live_eqns(graph)
    inner.used = _reads(live, graph)
    body = indent + "    "
    lines = [f"{indent}def {name}({', '.join(f'arg{g}' for g in range(len(groups)))}):"]
    start = len(consts)
    for g, size in enumerate(groups):
        group = inputs[start:start + size]
        start += size
        if group:
            lines.append(f"{body}{''.join(inner.new(v) + ', ' for v in group)}= arg{g}")
    for eqn in live:
        lines += eqn_lines(eqn, inner, body)
    names.count = inner.count
    return lines, [inner.atom(a) for a in graph.outputs]


def scan_source(eqn, names: Names, indent: str):
    """``(carry...), (ys...) = lax.scan(body, (init...), (xs...))``, with ``length``,
    ``reverse`` and ``unroll`` only where they are not the defaults."""
    params = eqn.params
    ins = [names.atom(a) for a in eqn.inputs]
    n_consts, n_carry = params["num_consts"], params["num_carry"]
    consts, init, xs = ins[:n_consts], ins[n_consts:n_consts + n_carry], ins[n_consts + n_carry:]
    name = f"scan_body{names.count + 1}"
    lines, outs = nested_function(name, params["jaxpr"], names, indent, consts, [n_carry, len(xs)])
    lines.append(f"{indent}    return {_tuple(outs[:n_carry])}, {_tuple(outs[n_carry:])}")
    options = "".join([f", length={params['length']}" if not xs else "",
                       ", reverse=True" if params["reverse"] else "",
                       f", unroll={params['unroll']!r}" if params["unroll"] not in (1, False) else ""])
    call = f"lax.scan({name}, {_tuple(init)}, {_tuple(xs) if xs else None}{options})"
    return lines, call, [n_carry, len(eqn.outputs) - n_carry]


def cond_source(eqn, names: Names, indent: str):
    ins = [names.atom(a) for a in eqn.inputs]
    index, operands = ins[0], ins[1:]
    lines, branches = [], []
    for k, branch in enumerate(eqn.params["branches"]):
        name = f"branch{names.count + 1}_{k}"
        branch_lines, outs = nested_function(name, branch, names, indent, [], [len(operands)])
        lines += branch_lines + [f"{indent}    return {_tuple(outs)}"]
        branches.append(name)
    return lines, f"lax.switch({index}, [{', '.join(branches)}], {_tuple(operands)})", None


def while_source(eqn, names: Names, indent: str):
    params = eqn.params
    ins = [names.atom(a) for a in eqn.inputs]
    n_cond, n_body = params["cond_nconsts"], params["body_nconsts"]
    cond_consts, body_consts, init = ins[:n_cond], ins[n_cond:n_cond + n_body], ins[n_cond + n_body:]
    cond_name, body_name = f"while_cond{names.count + 1}", f"while_body{names.count + 1}"
    cond_lines, (predicate,) = nested_function(cond_name, params["cond_jaxpr"], names, indent, cond_consts, [len(init)])
    body_lines, outs = nested_function(body_name, params["body_jaxpr"], names, indent, body_consts, [len(init)])
    lines = cond_lines + [f"{indent}    return {predicate}"] + body_lines + [f"{indent}    return {_tuple(outs)}"]
    return lines, f"lax.while_loop({cond_name}, {body_name}, {_tuple(init)})", None


def reduce_source(eqn, names: Names, indent: str):
    """``lax.reduce((xs...), (inits...), reducer, dimensions)`` with the reducer written out (a
    reduction JAX does not recognize as a sum, product, max or min)."""
    ins = [names.atom(a) for a in eqn.inputs]
    n = len(ins) // 2
    name = f"reducer{names.count + 1}"
    lines, outs = nested_function(name, eqn.params["jaxpr"], names, indent, [], [n, n])
    lines.append(f"{indent}    return {_tuple(outs)}")
    dims = tuple(int(d) for d in eqn.params["dimensions"])
    return lines, f"lax.reduce({_tuple(ins[:n])}, {_tuple(ins[n:])}, {name}, {dims})", None


#: Primitives whose params hold jaxprs: name -> ``(eqn, names, indent) -> (lines defining nested
#: functions, source of the call, sizes of the output groups or None)``.
NESTED = {"scan": scan_source, "cond": cond_source, "while": while_source, "reduce": reduce_source}

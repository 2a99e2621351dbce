"""Source of control-flow equations: ``scan``, ``cond`` and ``while`` as nested Python functions
passed to ``lax.scan``, ``lax.switch`` and ``lax.while_loop``.

Their bodies are jaxprs in the equation's params; :func:`ntkc.ir.from_jaxpr.read_closed` turns
each into a graph (nothing is traced), written out as a nested function whose constants are
the enclosing scope's names (closures). Identities: ``scan`` binds ``(consts, carry, xs)`` in that
order and returns ``(carry, ys)``; ``cond``'s first input is the branch index, which
``lax.switch`` clamps (a no-op for the in-range indices ``cond`` receives); ``while``'s inputs are
``cond_consts + body_consts + init``.
"""

from __future__ import annotations

from ntkc.backends.source_eqns import NESTED, Names, eqn_lines
from ntkc.ir.from_jaxpr import read_closed


def _tuple(items: list[str]) -> str:
    return f"({''.join(i + ', ' for i in items)})"


def nested_function(name: str, closed, names: Names, indent: str, consts: list[str],
                    groups: list[int]) -> tuple[list[str], list[str]]:
    """(lines of ``def name(arg0, arg1, ...)`` up to its return, its output sources): the
    jaxpr's inputs after ``consts`` arrive as tuples ``arg0, arg1, ...`` of sizes ``groups``."""
    graph = read_closed(closed)
    inner = Names(names.pool)
    inner.count = names.count
    for var, value in graph.consts.items():
        inner.bind(var, names.pool.add(value))
    inputs = list(graph.primal_inputs)
    for var, source in zip(inputs, consts):
        inner.bind(var, source)
    body = indent + "    "
    lines = [f"{indent}def {name}({', '.join(f'arg{g}' for g in range(len(groups)))}):"]
    start = len(consts)
    for g, size in enumerate(groups):
        group = inputs[start:start + size]
        start += size
        if group:
            lines.append(f"{body}{''.join(inner.new(v) + ', ' for v in group)}= arg{g}")
    for eqn in graph.eqns:
        lines += eqn_lines(eqn, inner, body)
    names.count = inner.count
    return lines, [inner.atom(a) for a in graph.outputs]


def scan_source(eqn, names: Names, indent: str):
    params = eqn.params
    ins = [names.atom(a) for a in eqn.inputs]
    n_consts, n_carry = params["num_consts"], params["num_carry"]
    consts, init, xs = ins[:n_consts], ins[n_consts:n_consts + n_carry], ins[n_consts + n_carry:]
    name = f"scan_body{names.count + 1}"
    lines, outs = nested_function(name, params["jaxpr"], names, indent, consts, [n_carry, len(xs)])
    lines.append(f"{indent}    return {_tuple(outs[:n_carry])}, {_tuple(outs[n_carry:])}")
    call = (f"lax.scan({name}, {_tuple(init)}, {_tuple(xs)}, length={params['length']}, "
            f"reverse={params['reverse']}, unroll={params['unroll']!r})")
    return lines, f"(lambda carry_ys: (*carry_ys[0], *carry_ys[1]))({call})"


def cond_source(eqn, names: Names, indent: str):
    ins = [names.atom(a) for a in eqn.inputs]
    index, operands = ins[0], ins[1:]
    lines, branches = [], []
    for k, branch in enumerate(eqn.params["branches"]):
        name = f"branch{names.count + 1}_{k}"
        branch_lines, outs = nested_function(name, branch, names, indent, [], [len(operands)])
        lines += branch_lines + [f"{indent}    return {_tuple(outs)}"]
        branches.append(name)
    return lines, f"lax.switch({index}, [{', '.join(branches)}], {_tuple(operands)})"


def while_source(eqn, names: Names, indent: str):
    params = eqn.params
    ins = [names.atom(a) for a in eqn.inputs]
    n_cond, n_body = params["cond_nconsts"], params["body_nconsts"]
    cond_consts, body_consts, init = ins[:n_cond], ins[n_cond:n_cond + n_body], ins[n_cond + n_body:]
    cond_name, body_name = f"while_cond{names.count + 1}", f"while_body{names.count + 1}"
    cond_lines, (predicate,) = nested_function(cond_name, params["cond_jaxpr"], names, indent, cond_consts, [len(init)])
    body_lines, outs = nested_function(body_name, params["body_jaxpr"], names, indent, body_consts, [len(init)])
    lines = cond_lines + [f"{indent}    return {predicate}"] + body_lines + [f"{indent}    return {_tuple(outs)}"]
    return lines, f"lax.while_loop({cond_name}, {body_name}, {_tuple(init)})"


NESTED.update({"scan": scan_source, "cond": cond_source, "while": while_source})

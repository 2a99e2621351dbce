"""The one equation printer: Python source for the equations of a traced program.

Each equation becomes one line ``out = <call>``. A few primitives have a readable form
(:data:`PRETTY`: ``a + b``, ``lax.tanh(a)``, ``lax.dot_general(...)``) used when their params
are exactly what that form binds; every other equation is written as
``lax.<name>_p.bind(*inputs, **params)`` — the same primitive with the same parameters, so
the exported program computes what the in-memory one computes (sharding annotations, which
place data but do not change values, are dropped: an exported module runs on one device).
Control flow (``scan``, ``cond``,
``while``: :data:`NESTED`) becomes nested Python functions passed to ``lax.scan``,
``lax.switch`` and ``lax.while_loop``. Literals and constants keep the dtypes the traced
program gives them. Parameters are written as Python expressions by :func:`value_source`; a
parameter with no source form raises :class:`ExportError` naming the primitive and the parameter.

>>> import numpy as np
>>> value_source((1, (2, 3)), ConstantPool())
'(1, (2, 3))'
>>> value_source(np.float32(0.5), ConstantPool())
'np.float32(0.5)'
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re

import jax
import numpy as np

from ntkc.errors import ExportError
from ntkc.ir.from_jaxpr import is_primitive, read_closed
from ntkc.ir.graph import Eqn, Graph, Lit, Var

#: Arrays with at most this many elements are written inline; larger ones go to the pool.
INLINE_ELEMENTS = 16


def _dtype_source(dtype, module: str = "np") -> str:
    name = np.dtype(dtype).name
    if name == "bool":
        return f"{module}.bool_"
    return f"{module}.{name}" if hasattr(np, name) else f"jnp.dtype({name!r})"


def _scalar_source(value) -> str:
    value = np.asarray(value)
    dtype = _dtype_source(value.dtype)
    item = value.item()
    if isinstance(item, float) and not math.isfinite(item):
        return f"{dtype}({str(item)!r})"
    return f"{dtype}({item!r})"


#: Types that exist only with ``jax_enable_x64``: a program using one needs that mode to run.
WIDE = frozenset({"int64", "uint64", "float64", "complex128"})


class ConstantPool:
    """Module-level constants, named ``C0, C1, ...`` in order of first use (equal arrays share).
    ``wide`` records whether any value written so far has a 64-bit type (see :data:`WIDE`)."""

    def __init__(self) -> None:
        self.names: dict[tuple, str] = {}
        self.lines: list[str] = []
        self.wide = False

    def note(self, dtype) -> None:
        """Record a dtype the written program uses."""
        try:
            self.wide = self.wide or np.dtype(dtype).name in WIDE
        except TypeError:  # not a NumPy dtype (e.g. a key type)
            pass

    def add(self, array) -> str:
        array = np.asarray(array)
        self.note(array.dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self.names:
            name = f"C{len(self.names)}"
            self.names[key] = name
            if array.size <= INLINE_ELEMENTS:
                body = f"jnp.asarray(np.array({array.tolist()!r}, {_dtype_source(array.dtype)}))"
            else:
                body = f"_array({array.tobytes().hex()!r}, {array.dtype.name!r}, {array.shape!r})"
            self.lines.append(f"{name} = {body}")
        return self.names[key]


def _lax_class(value) -> str | None:
    cls = type(value)
    return f"lax.{cls.__name__}" if getattr(jax.lax, cls.__name__, None) is cls else None


def value_source(value, pool: ConstantPool) -> str:
    """A Python expression (over ``np``, ``jnp``, ``lax``) equal to a primitive parameter."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, (np.integer, np.bool_)):  # a static index or flag: its type is immaterial
        return repr(value.item())
    if isinstance(value, jax.sharding.Sharding):  # placement only: one device in exported code
        return "None"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        pool.note(value)
        return _dtype_source(value, "jnp")
    if is_primitive(value):
        return primitive_source(value)
    if isinstance(value, enum.Enum):
        owner = _lax_class(value)
        if owner is None:
            raise ExportError(f"no source form for enum {type(value).__name__}.{value.name}")
        return f"{owner}.{value.name}"
    owner = _lax_class(value)
    if owner is not None and hasattr(value, "_fields"):
        fields = ", ".join(f"{k}={value_source(getattr(value, k), pool)}" for k in value._fields)
        return f"{owner}({fields})"
    if owner is not None and dataclasses.is_dataclass(value):
        fields = ", ".join(f"{f.name}={value_source(getattr(value, f.name), pool)}"
                           for f in dataclasses.fields(value))
        return f"{owner}({fields})"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(value_source(v, pool) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {value_source(v, pool)}" for k, v in value.items()) + "}"
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        array = np.asarray(value)
        pool.note(array.dtype)
        return _scalar_source(array) if array.ndim == 0 else pool.add(array)
    raise ExportError(f"no source form for a value of type {type(value).__name__}")


def _public_primitives() -> dict:
    found = {}
    for prefix, module in (("lax.linalg", jax.lax.linalg), ("lax", jax.lax)):
        for attr in dir(module):
            value = getattr(module, attr, None)
            if attr.endswith("_p") and is_primitive(value):
                found[value] = f"{prefix}.{attr}"
    return found


def primitive_source(primitive) -> str:
    """The public name of a primitive: ``lax.<attr>`` (or ``lax.linalg.<attr>``) that is it
    (``scatter-add`` is ``lax.scatter_add_p``)."""
    if not _PUBLIC:
        _PUBLIC.update(_public_primitives())
    if primitive in _PUBLIC:
        return _PUBLIC[primitive]
    raise ExportError(f"primitive {primitive.name!r} is not public in jax.lax; the source backend cannot name it")


_PUBLIC: dict = {}


def _binary(op: str):
    return lambda ins, params, src: None if any(v is not None for v in params.values()) else f"{ins[0]} {op} {ins[1]}"


def _unary(fn: str):
    def form(ins, params, src):
        return f"{fn}({ins[0]})" if set(params) <= {"accuracy"} and params.get("accuracy") is None else None
    return form


def _dot_general(ins, params, src):
    if set(params) != {"dimension_numbers", "precision", "preferred_element_type", "out_sharding"} \
            or params["out_sharding"] is not None:
        return None
    return (f"lax.dot_general({ins[0]}, {ins[1]}, {src(params['dimension_numbers'])}, "
            f"precision={src(params['precision'])}, "
            f"preferred_element_type={src(params['preferred_element_type'])})")


def _convert(ins, params, src):
    # The public function binds the same primitive; weak typing and placement do not change the
    # value, and every later equation's input dtype is fixed by the traced program.
    return f"lax.convert_element_type({ins[0]}, {src(params['new_dtype'])})"


def _scatter(fn: str):
    """``lax.scatter_add(...)`` and friends: the public function builds the ``update_jaxpr``."""
    def form(ins, params, src):
        if params.get("update_consts"):
            return None
        return (f"lax.{fn}({', '.join(ins)}, {src(params['dimension_numbers'])}, "
                f"indices_are_sorted={params['indices_are_sorted']!r}, unique_indices={params['unique_indices']!r}, "
                f"mode={src(params['mode'])})")
    return form


#: Readable forms: primitive name -> (input sources, params, value_source) -> source, or None
#: to fall back to ``bind``. Each binds its primitive with ``params``.
PRETTY = {
    "convert_element_type": _convert,
    **{name: _scatter(fn) for name, fn in (("scatter-add", "scatter_add"), ("scatter", "scatter"),
                                            ("scatter-mul", "scatter_mul"), ("scatter-min", "scatter_min"),
                                            ("scatter-max", "scatter_max"))},
    "add": _binary("+"), "add_any": _binary("+"), "sub": _binary("-"), "mul": _binary("*"),
    "neg": lambda ins, params, src: None if params else f"-{ins[0]}",
    "max": lambda ins, params, src: None if params else f"lax.max({ins[0]}, {ins[1]})",
    "dot_general": _dot_general,
    **{name: _unary(f"lax.{name}") for name in
       ("exp", "log", "tanh", "logistic", "sin", "cos", "sqrt", "rsqrt", "abs", "sign", "log1p",
        "expm1", "erf", "exp2")},
}


class Names:
    """Python identifiers for vars: given names first, then ``v1, v2, ...`` in definition order."""

    def __init__(self, pool: ConstantPool) -> None:
        self.pool = pool
        self.of: dict[Var, str] = {}
        self.count = 0

    def bind(self, var: Var, name: str) -> None:
        self.pool.note(var.dtype)
        self.of[var] = name

    def new(self, var: Var) -> str:
        self.pool.note(var.dtype)
        self.count += 1
        self.of[var] = f"v{self.count}"
        return self.of[var]

    def atom(self, atom) -> str:
        if isinstance(atom, Lit):
            value = atom.array()
            self.pool.note(value.dtype)
            return _scalar_source(value) if value.ndim == 0 else self.pool.add(value)
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


def eqn_call(eqn: Eqn, names: Names) -> str:
    """The source of the call computing ``eqn``'s outputs (a value or a list of values)."""
    ins = [names.atom(a) for a in eqn.inputs]
    pretty = PRETTY.get(eqn.name)
    try:
        text = pretty(ins, eqn.params, lambda v: value_source(v, names.pool)) if pretty else None
        if text is not None:
            return text
        params = [f"{k}={value_source(v, names.pool)}" for k, v in eqn.params.items()]
    except ExportError as e:
        raise ExportError(f"cannot export primitive {eqn.name!r} ({eqn.source or 'unknown source'}): {e}") from None
    return f"{primitive_source(eqn.primitive)}.bind({', '.join(ins + params)})"


def eqn_lines(eqn: Eqn, names: Names, indent: str) -> list[str]:
    """Lines assigning ``eqn``'s outputs."""
    if eqn.name in NESTED:
        defs, call = NESTED[eqn.name](eqn, names, indent)
        outs = [names.of.get(v) or names.new(v) for v in eqn.outputs]
        return defs + [f"{indent}{''.join(o + ', ' for o in outs)}= {call}{_comment(eqn)}"]
    call = eqn_call(eqn, names)
    outs = [names.of.get(v) or names.new(v) for v in eqn.outputs]
    if eqn.primitive.multiple_results:
        return [f"{indent}{''.join(o + ', ' for o in outs)}= {call}{_comment(eqn)}"]
    return [f"{indent}{outs[0]} = {call}{_comment(eqn)}"]


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


def graph_lines(graph: Graph, names: Names, inputs: list[str], indent: str) -> tuple[list[str], list[str]]:
    """(lines computing ``graph`` from the sources ``inputs`` of its primal inputs, the sources
    of its outputs)."""
    bind_consts(graph, names)
    for var, source in zip(graph.primal_inputs, inputs):
        names.bind(var, source)
    lines = [line for eqn in live_eqns(graph) for line in eqn_lines(eqn, names, indent)]
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
    body = indent + "    "
    lines = [f"{indent}def {name}({', '.join(f'arg{g}' for g in range(len(groups)))}):"]
    start = len(consts)
    for g, size in enumerate(groups):
        group = inputs[start:start + size]
        start += size
        if group:
            lines.append(f"{body}{''.join(inner.new(v) + ', ' for v in group)}= arg{g}")
    for eqn in live_eqns(graph):
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


#: Primitives whose params hold jaxprs: name -> ``(eqn, names, indent) -> (lines defining nested
#: functions, source of the call)``.
NESTED = {"scan": scan_source, "cond": cond_source, "while": while_source}

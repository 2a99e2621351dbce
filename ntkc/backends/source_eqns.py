"""Python source for IR values and equations: the lax calls of an exported module.

Each equation becomes one line ``out = <call>``. A few primitives have a readable form
(:data:`PRETTY`: ``a + b``, ``lax.tanh(a)``, ``lax.dot_general(...)``) used when their params
are exactly what that form binds; every other equation is written as
``lax.<name>_p.bind(*inputs, **params)`` — the same primitive with the same parameters, so
the exported program computes what the in-memory one computes. Parameters are written as
Python expressions by :func:`value_source`; a parameter with no source form (a jaxpr, a
sharding) raises :class:`ExportError` naming the primitive and the parameter.

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

from ntkc.ir.from_jaxpr import is_primitive
from ntkc.ir.graph import Eqn, Lit, Var

#: Arrays with at most this many elements are written inline; larger ones go to the pool.
INLINE_ELEMENTS = 16


class ExportError(ValueError):
    """The program contains something the source backend cannot write as Python."""


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


class ConstantPool:
    """Module-level constants, named ``C0, C1, ...`` in order of first use (equal arrays share)."""

    def __init__(self) -> None:
        self.names: dict[tuple, str] = {}
        self.lines: list[str] = []

    def add(self, array) -> str:
        array = np.asarray(array)
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
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
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
        return _scalar_source(array) if array.ndim == 0 else pool.add(array)
    raise ExportError(f"no source form for a value of type {type(value).__name__}")


def primitive_source(primitive) -> str:
    """``lax.<name>_p`` (or ``lax.linalg.<name>_p``) when that public name is this primitive."""
    attr = f"{primitive.name}_p"
    for prefix, module in (("lax", jax.lax), ("lax.linalg", jax.lax.linalg)):
        if getattr(module, attr, None) is primitive:
            return f"{prefix}.{attr}"
    raise ExportError(f"primitive {primitive.name!r} is not public as jax.lax.{attr}; "
                      "the source backend cannot name it")


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


#: Readable forms: primitive name -> (input sources, params, value_source) -> source, or None
#: to fall back to ``bind``. Each binds its primitive with exactly ``params``.
PRETTY = {
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
        self.of[var] = name

    def new(self, var: Var) -> str:
        self.count += 1
        self.of[var] = f"v{self.count}"
        return self.of[var]

    def atom(self, atom) -> str:
        if isinstance(atom, Lit):
            value = np.asarray(atom.value)
            return _scalar_source(value) if value.ndim == 0 else self.pool.add(value)
        return self.of[atom]


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


#: Primitives whose params hold jaxprs (``scan``, ``cond``, ``while``): name -> function
#: ``(eqn, names, indent) -> (lines defining nested functions, source of the call)``, registered
#: by :mod:`ntkc.backends.source_control`.
NESTED: dict = {}


def eqn_lines(eqn: Eqn, names: Names, indent: str, add: dict | None = None) -> list[str]:
    """Lines assigning ``eqn``'s outputs; ``add`` maps an output var to a source added to it."""
    if eqn.name in NESTED:
        defs, call = NESTED[eqn.name](eqn, names, indent)
        outs = [names.of.get(v) or names.new(v) for v in eqn.outputs]
        lines = defs + [f"{indent}{''.join(o + ', ' for o in outs)}= {call}{_comment(eqn)}"]
        return lines + [f"{indent}{v} = {v} + {add[var]}" for var, v in zip(eqn.outputs, outs) if add and var in add]
    call = eqn_call(eqn, names)
    outs = [names.of.get(v) or names.new(v) for v in eqn.outputs]
    extra = [f" + {add[v]}" if add and v in add else "" for v in eqn.outputs]
    if eqn.primitive.multiple_results:
        lines = [f"{indent}{', '.join(outs)}, = {call}{_comment(eqn)}"]
        return lines + [f"{indent}{o} = {o}{e}" for o, e in zip(outs, extra) if e]
    return [f"{indent}{outs[0]} = {call}{extra[0]}{_comment(eqn)}"]


from ntkc.backends import source_control  # noqa: E402,F401  (registers NESTED)

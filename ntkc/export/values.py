"""Python source for the values an exported module holds: dtypes, scalars, arrays (a pool of
module-level constants) and primitive parameters.

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

import jax
import numpy as np

from ntkc.errors import ExportError
from ntkc.ir.from_jaxpr import is_primitive

#: Arrays with at most this many elements are written inline; larger ones go to the pool.
INLINE_ELEMENTS = 16

#: Types that exist only with ``jax_enable_x64``: a program using one needs that mode to run.
WIDE = frozenset({"int64", "uint64", "float64", "complex128"})


def dtype_source(dtype, module: str = "np") -> str:
    """``np.float32`` (or ``jnp.float32``); a type NumPy lacks is JAX's: ``jnp.bfloat16``."""
    name = np.dtype(dtype).name
    if name == "bool":
        return f"{module}.bool_"
    if hasattr(np, name):
        return f"{module}.{name}"
    return f"jnp.{name}" if hasattr(jax.numpy, name) else f"jnp.dtype({name!r})"


def scalar_source(value) -> str:
    """A typed scalar: ``np.float32(0.5)``, ``np.float32('-inf')``."""
    value = np.asarray(value)
    dtype = dtype_source(value.dtype)
    item = value.item()
    if isinstance(item, float) and not math.isfinite(item):
        return f"{dtype}({str(item)!r})"
    return f"{dtype}({item!r})"


class ConstantPool:
    """Module-level constants, named ``C0, C1, ...`` in order of first use (equal arrays share).

    ``wide`` records whether any value written so far has a 64-bit type (see :data:`WIDE`);
    ``limits`` records why the module would not run on every supported JAX (reason -> the
    oldest JAX it needs, or None for only the JAX that wrote it)."""

    def __init__(self) -> None:
        self.names: dict[tuple, str] = {}
        self.lines: list[str] = []
        self.wide = False
        self.limits: dict[str, str | None] = {}

    def note(self, dtype) -> None:
        """Record a dtype the written program uses."""
        try:
            self.wide = self.wide or np.dtype(dtype).name in WIDE
        except TypeError:  # not a NumPy dtype (e.g. a key type)
            pass

    def limit(self, reason: str, oldest: str | None = None) -> None:
        """Record that the module needs JAX ``oldest`` or later (None: the writing JAX)."""
        self.limits[reason] = oldest

    def add(self, array) -> str:
        array = np.asarray(array)
        self.note(array.dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self.names:
            name = f"C{len(self.names)}"
            self.names[key] = name
            if array.size <= INLINE_ELEMENTS:
                body = f"jnp.asarray(np.array({array.tolist()!r}, {dtype_source(array.dtype)}))"
            else:
                body = f"_array({array.tobytes().hex()!r}, {array.dtype.name!r}, {array.shape!r})"
            self.lines.append(f"{name} = {body}")
        return self.names[key]


def _lax_class(value) -> str | None:
    cls = type(value)
    return f"lax.{cls.__name__}" if getattr(jax.lax, cls.__name__, None) is cls else None


def value_source(value, pool: ConstantPool) -> str:
    """A Python expression (over ``np``, ``jnp``, ``lax``) equal to a primitive parameter."""
    if isinstance(value, enum.Enum):
        owner = _lax_class(value)
        if owner is None:
            raise ExportError(f"no source form for enum {type(value).__name__}.{value.name}")
        return f"{owner}.{value.name}"
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
        return dtype_source(value, "jnp")
    if is_primitive(value):
        return primitive_source(value)
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
        return scalar_source(array) if array.ndim == 0 else pool.add(array)
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

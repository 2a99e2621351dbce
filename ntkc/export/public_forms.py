"""The public call that computes each primitive: the vocabulary of exported source.

:data:`FORMS` maps a primitive's name to a rule (one small function per family, as JAX keeps
its own rule tables) that writes an equation as the ``jax.lax`` / ``jax.numpy`` call a person
would write — ``lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=('NHWC',
'HWIO', 'NHWC'))`` rather than ``lax.conv_general_dilated_p.bind(...)`` with every internal
parameter. A rule passes only the arguments that differ from the public function's defaults,
and only arguments that every supported JAX accepts (:data:`ntkc.export.versions.OLDEST_JAX`
on), so a module written under one JAX runs under any other in the range. Parameters that
only place data (:data:`PLACEMENT`) are dropped: an exported module runs on one device.

A rule reads the parameters it understands through :class:`Call`; a parameter it leaves
unread (one a newer JAX added) or a value it cannot write portably makes it return None, and
the equation is written with ``bind`` (flagged, and the module's header says it runs on the
writing JAX only). Primitives with no public function of their own (a max pool's tangent and
gradient; primitives newer than the oldest supported JAX) are written in the most portable
public form that computes the same values, under a comment that says so.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ntkc.export.values import ConstantPool, dtype_source, scalar_source, value_source
from ntkc.ir.graph import Eqn, Lit

#: Parameters that only say where data lives; exported code runs on one device.
PLACEMENT = frozenset({"sharding", "out_sharding"})
_MISSING = object()


class Call:
    """One equation as a rule sees it: input sources ``args``, its params (read through
    :meth:`param`, which records what was read), shapes and dtypes, and the module's pool."""

    def __init__(self, eqn: Eqn, args: list[str], pool: ConstantPool) -> None:
        self.eqn, self.args, self.pool = eqn, args, pool
        self.read: set[str] = set()
        self.note = ""  # a comment line written above the equation

    def param(self, name: str, default=_MISSING):
        self.read.add(name)
        if default is _MISSING:
            return self.eqn.params[name]
        return self.eqn.params.get(name, default)

    def is_default(self, name: str, default) -> bool:
        """Whether param ``name`` is absent or equals ``default`` (a param newer JAX added)."""
        value = self.param(name, default)
        return value is default or (not isinstance(value, np.ndarray) and value == default)

    def unread(self) -> set[str]:
        return set(self.eqn.params) - self.read - PLACEMENT

    def src(self, value) -> str:
        return value_source(value, self.pool)

    def shape(self, i: int) -> tuple[int, ...]:
        return tuple(self.eqn.inputs[i].shape)

    def dtype(self, i: int) -> np.dtype:
        atom = self.eqn.inputs[i]
        return np.dtype(atom.array().dtype if isinstance(atom, Lit) else atom.dtype)

    @property
    def out_dtype(self) -> np.dtype:
        return np.dtype(self.eqn.outputs[0].dtype)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.eqn.outputs[0].shape)


Form = Callable[[Call], "str | None"]
FORMS: dict[str, Form] = {}


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _tuple(items) -> str:
    items = list(items)
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _keywords(pairs) -> str:
    """``, k=v`` for every pair whose value source is not None."""
    return "".join(f", {k}={v}" for k, v in pairs if v is not None)


def _call(fn: str, c: Call, *extra: str, **keywords) -> str:
    return f"{fn}({', '.join(list(c.args) + list(extra))}{_keywords(keywords.items())})"


# ---------------------------------------------------------------------------------------------
# Elementwise.

def _operator(op: str) -> Form:
    """``a + b``: the operator of two same-typed arrays binds exactly this primitive."""
    def form(c: Call):
        if not c.is_default("out_dtype", None):
            return None
        return f"{c.args[0]} {op} {c.args[1]}"
    return form


def _named(fn: str, **defaults) -> Form:
    """``lax.<fn>(*args)``; ``defaults`` are params that must have these values (``accuracy``,
    which newer JAX added to transcendental functions)."""
    def form(c: Call):
        if not all(c.is_default(k, v) for k, v in defaults.items()):
            return None
        return _call(fn, c)
    return form


UNARY = ("abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "bessel_i0e", "bessel_i1e", "cbrt",
         "ceil", "clz", "cos", "cosh", "digamma", "erf", "erf_inv", "erfc", "exp", "exp2", "expm1", "floor",
         "is_finite", "lgamma", "log", "log1p", "logistic", "population_count", "rsqrt", "sign", "sin", "sinh",
         "sqrt", "square", "tan", "tanh", "stop_gradient")
BINARY = ("atan2", "max", "min", "nextafter", "pow", "rem", "shift_left", "shift_right_arithmetic",
          "shift_right_logical", "igamma", "igammac", "polygamma", "zeta")

FORMS.update({name: _named(f"lax.{name}", accuracy=None) for name in UNARY})
FORMS.update({name: _named(f"lax.{name}") for name in BINARY})
FORMS.update({"add": _operator("+"), "add_any": _operator("+"), "sub": _operator("-"), "mul": _operator("*"),
              "eq": _operator("=="), "ne": _operator("!="), "lt": _operator("<"), "le": _operator("<="),
              "gt": _operator(">"), "ge": _operator(">="), "and": _operator("&"), "or": _operator("|"),
              "xor": _operator("^")})
FORMS["neg"] = lambda c: f"-{c.args[0]}"
FORMS["not"] = lambda c: f"~{c.args[0]}"
FORMS["select_n"] = _named("lax.select_n")
FORMS["clamp"] = _named("lax.clamp")


def _div(c: Call) -> str:
    """``a / b`` for floats; ``lax.div`` (rounding toward zero) for integers, which ``/`` would
    promote to floats."""
    return f"{c.args[0]} / {c.args[1]}" if c.out_dtype.kind in "fc" else _call("lax.div", c)


def _integer_pow(c: Call) -> str:
    return f"lax.integer_pow({c.args[0]}, {int(c.param('y'))})"


def _round(c: Call) -> str:
    method = c.param("rounding_method")
    return _call("lax.round", c, *([] if int(method) == 0 else [c.src(method)]))


def _convert(c: Call) -> str:
    """Weak typing does not change the value, and every later equation's input dtype is fixed
    by the traced program."""
    c.param("weak_type", None)
    return f"lax.convert_element_type({c.args[0]}, {c.src(c.param('new_dtype'))})"


def _bitcast(c: Call) -> str:
    return f"lax.bitcast_convert_type({c.args[0]}, {c.src(c.param('new_dtype'))})"


def _reduce_precision(c: Call) -> str:
    return (f"lax.reduce_precision({c.args[0]}, exponent_bits={int(c.param('exponent_bits'))}, "
            f"mantissa_bits={int(c.param('mantissa_bits'))})")


FORMS.update({"div": _div, "integer_pow": _integer_pow, "round": _round, "convert_element_type": _convert,
              "bitcast_convert_type": _bitcast, "reduce_precision": _reduce_precision})


# ---------------------------------------------------------------------------------------------
# Shapes: broadcasting, reshapes, slices, joins.

def _broadcast_in_dim(c: Call) -> str:
    """``jnp.broadcast_to`` when the dims are NumPy's trailing alignment, ``lax.expand_dims``
    when only size-1 axes are inserted, else ``lax.broadcast_in_dim``."""
    shape, dims = _ints(c.param("shape")), _ints(c.param("broadcast_dimensions"))
    operand = c.shape(0)
    if dims == tuple(range(len(shape) - len(operand), len(shape))):
        return f"jnp.broadcast_to({c.args[0]}, {shape})"
    inserted = tuple(d for d in range(len(shape)) if d not in dims)
    if list(dims) == sorted(dims) and operand == tuple(shape[d] for d in dims) and all(shape[d] == 1 for d in inserted):
        return f"lax.expand_dims({c.args[0]}, {inserted})"
    return f"lax.broadcast_in_dim({c.args[0]}, {shape}, {dims})"


def _reshape(c: Call) -> str:
    dims = c.param("dimensions", None)
    extra = [] if dims is None else [f"dimensions={_ints(dims)}"]
    return f"lax.reshape({c.args[0]}, {_ints(c.param('new_sizes'))}{''.join(', ' + e for e in extra)})"


def _squeeze(c: Call) -> str:
    return f"lax.squeeze({c.args[0]}, {_ints(c.param('dimensions'))})"


def _transpose(c: Call) -> str:
    return f"lax.transpose({c.args[0]}, {_ints(c.param('permutation'))})"


def _rev(c: Call) -> str:
    return f"lax.rev({c.args[0]}, {_ints(c.param('dimensions'))})"


def _concatenate(c: Call) -> str:
    return f"lax.concatenate([{', '.join(c.args)}], {int(c.param('dimension'))})"


def _pad(c: Call) -> str:
    config = tuple(_ints(p) for p in c.param("padding_config"))
    return f"lax.pad({c.args[0]}, {c.args[1]}, {config})"


def _slice(c: Call) -> str:
    """``lax.slice_in_dim`` when one axis is sliced, else ``lax.slice``."""
    start, limit = _ints(c.param("start_indices")), _ints(c.param("limit_indices"))
    strides = c.param("strides", None)
    strides = (1,) * len(start) if strides is None else _ints(strides)
    sliced = [a for a, (s, l, n, k) in enumerate(zip(start, limit, c.shape(0), strides)) if (s, l, k) != (0, n, 1)]
    if len(sliced) == 1:
        a = sliced[0]
        stride = f", {strides[a]}" if strides[a] != 1 else ""
        return f"lax.slice_in_dim({c.args[0]}, {start[a]}, {limit[a]}{stride}, axis={a})"
    extra = f", {strides}" if any(k != 1 for k in strides) else ""
    return f"lax.slice({c.args[0]}, {start}, {limit}{extra})"


def _dynamic_slice(c: Call) -> str:
    """Start indices are in bounds in a traced program (JAX's indexing normalizes them first),
    where the public function's wrapping of negative indices is a no-op."""
    sizes = _ints(c.param("slice_sizes"))
    return f"lax.dynamic_slice({c.args[0]}, {_tuple(c.args[1:])}, {sizes})"


def _dynamic_update_slice(c: Call) -> str:
    return f"lax.dynamic_update_slice({c.args[0]}, {c.args[1]}, {_tuple(c.args[2:])})"


def _iota(c: Call) -> str:
    dtype, shape, dimension = c.param("dtype"), _ints(c.param("shape")), int(c.param("dimension"))
    if len(shape) == 1:
        return f"lax.iota({c.src(dtype)}, {shape[0]})"
    return f"lax.broadcasted_iota({c.src(dtype)}, {shape}, {dimension})"


def _split(c: Call) -> str:
    """No ``lax.split`` before JAX 0.4.36: ``jnp.split`` at the cumulative sizes."""
    sizes = _ints(c.param("sizes"))
    cuts = tuple(int(v) for v in np.cumsum(sizes)[:-1])
    return f"jnp.split({c.args[0]}, {list(cuts)}, axis={int(c.param('axis'))})"


def _stack(c: Call) -> str:
    return f"jnp.stack([{', '.join(c.args)}], axis={int(c.param('axis'))})"


def _unstack(c: Call) -> str:
    return f"jnp.unstack({c.args[0]}, axis={int(c.param('axis'))})"


def _tile(c: Call) -> str:
    return f"jnp.tile({c.args[0]}, {_ints(c.param('reps'))})"


FORMS.update({"broadcast_in_dim": _broadcast_in_dim, "reshape": _reshape, "squeeze": _squeeze,
              "transpose": _transpose, "rev": _rev, "concatenate": _concatenate, "pad": _pad, "slice": _slice,
              "dynamic_slice": _dynamic_slice, "dynamic_update_slice": _dynamic_update_slice, "iota": _iota,
              "split": _split, "stack": _stack, "unstack": _unstack, "tile": _tile})


# ---------------------------------------------------------------------------------------------
# Reductions and scans along an axis.

_JNP_REDUCE = {"reduce_sum": "jnp.sum", "reduce_prod": "jnp.prod", "reduce_max": "jnp.max", "reduce_min": "jnp.min"}
_LAX_MONOID = {"reduce_sum": ("lax.add", 0), "reduce_prod": ("lax.mul", 1), "reduce_max": ("lax.max", "min"),
               "reduce_min": ("lax.min", "max"), "reduce_and": ("lax.bitwise_and", True),
               "reduce_or": ("lax.bitwise_or", False), "reduce_xor": ("lax.bitwise_xor", False)}


def _identity(dtype: np.dtype, which) -> str:
    """The typed identity of a monoid: a number, or the lowest (``"min"``) / highest value."""
    if which in ("min", "max"):
        if dtype.kind == "f" or dtype.name == "bfloat16":
            value = -np.inf if which == "min" else np.inf
        elif dtype.kind == "b":
            value = which == "max"
        else:
            value = getattr(np.iinfo(dtype), which)
        which = value
    return scalar_source(np.asarray(which, dtype))


def _reduce(name: str) -> Form:
    """``jnp.sum(x, axis=...)`` (and ``prod``, ``max``, ``min``) on 32- and 64-bit numbers, which
    bind exactly this primitive (an integer sum names its dtype: ``jnp.sum`` would widen it);
    ``lax.reduce`` with the monoid's operation otherwise (booleans, 16-bit floats, which
    ``jnp.sum`` would accumulate in float32)."""
    def form(c: Call) -> str:
        axes = _ints(c.param("axes"))
        dtype = c.dtype(0)
        if name in _JNP_REDUCE and dtype.kind in "fiu" and dtype.itemsize >= 4:
            keep = f", dtype={dtype_source(dtype, 'jnp')}" if dtype.kind in "iu" and name in ("reduce_sum", "reduce_prod") else ""
            return f"{_JNP_REDUCE[name]}({c.args[0]}, axis={axes}{keep})"
        op, identity = _LAX_MONOID[name]
        return f"lax.reduce({c.args[0]}, {_identity(dtype, identity)}, {op}, {axes})"
    return form


def _arg_reduce(fn: str) -> Form:
    def form(c: Call) -> str:
        (axis,) = _ints(c.param("axes"))
        return f"{fn}({c.args[0]}, {axis}, {c.src(c.param('index_dtype'))})"
    return form


def _cumulative(fn: str) -> Form:
    def form(c: Call) -> str:
        axis, reverse = int(c.param("axis")), bool(c.param("reverse"))
        return _call(fn, c, axis=str(axis) if axis else None, reverse="True" if reverse else None)
    return form


def _sort(c: Call) -> str:
    dimension, stable, keys = int(c.param("dimension")), bool(c.param("is_stable")), int(c.param("num_keys"))
    last = len(c.shape(0)) - 1
    return (f"lax.sort({_tuple(c.args)}" + _keywords([("dimension", str(dimension) if dimension != last else None),
                                                       ("is_stable", None if stable else "False"),
                                                       ("num_keys", str(keys) if keys != 1 else None)]) + ")")


def _top_k(c: Call) -> str | None:
    axis = int(c.param("axis", -1))
    if axis not in (-1, len(c.shape(0)) - 1):
        return None
    return f"lax.top_k({c.args[0]}, {int(c.param('k'))})"


FORMS.update({name: _reduce(name) for name in _LAX_MONOID})
FORMS.update({"argmax": _arg_reduce("lax.argmax"), "argmin": _arg_reduce("lax.argmin"),
              "sort": _sort, "top_k": _top_k})
FORMS.update({name: _cumulative(f"lax.{name}") for name in ("cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp")})


# ---------------------------------------------------------------------------------------------
# Contractions.

def _precision(c: Call):
    """The source of ``precision`` when not the default (None)."""
    precision = c.param("precision")
    return None if precision is None else c.src(precision)


def _preferred(c: Call):
    """``preferred_element_type`` when it changes the result (it names the output dtype; for
    inputs of that same dtype it is the default)."""
    preferred = c.param("preferred_element_type")
    if preferred is None or all(c.dtype(i) == np.dtype(preferred) for i in range(len(c.args))):
        return None
    return c.src(preferred)


def _dot_general(c: Call) -> str:
    dn = c.param("dimension_numbers")
    dims = tuple(tuple(_ints(side) for side in pair) for pair in dn)
    return _call("lax.dot_general", c, c.src(dims), precision=_precision(c), preferred_element_type=_preferred(c))


_SPATIAL = "DHW"


def conv_specs(dn, ndim: int) -> tuple[str, str, str] | None:
    """A conv's dimension numbers as the strings a person writes, ``('NHWC', 'HWIO', 'NHWC')``
    (None when they are not expressible that way: spatial axes of the kernel out of order).

    >>> from jax import lax
    >>> conv_specs(lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2)), 4)
    ('NHWC', 'HWIO', 'NHWC')
    """
    n_spatial = ndim - 2
    if list(dn.rhs_spec[2:]) != sorted(dn.rhs_spec[2:]):
        return None
    letters = _SPATIAL[-n_spatial:] if n_spatial <= len(_SPATIAL) else "ABDEFGHJKLMPQRSTUVXYZ"[:n_spatial]

    def spec(perm, first: str, second: str) -> str:
        chars = [""] * ndim
        chars[perm[0]], chars[perm[1]] = first, second
        for k, axis in enumerate(perm[2:]):
            chars[axis] = letters[k]
        return "".join(chars)

    return spec(dn.lhs_spec, "N", "C"), spec(dn.rhs_spec, "O", "I"), spec(dn.out_spec, "N", "C")


def _same_pads(sizes, window, strides) -> list[tuple[int, int]]:
    """The explicit padding of ``'SAME'`` (output size ceil(n / stride), the extra pad high)."""
    pads = []
    for n, k, s in zip(sizes, window, strides):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def _conv(c: Call) -> str:
    """``'VALID'``/``'SAME'`` padding where it is that, string dimension numbers, and only the
    dilations, group counts, precision and element type that are not the defaults."""
    strides = _ints(c.param("window_strides"))
    padding = [_ints(p) for p in c.param("padding")]
    lhs_dilation, rhs_dilation = _ints(c.param("lhs_dilation")), _ints(c.param("rhs_dilation"))
    dn = c.param("dimension_numbers")
    ndim = len(c.shape(0))
    lhs_spec, rhs_spec = tuple(dn.lhs_spec), tuple(dn.rhs_spec)
    sizes = [c.shape(0)[a] for a in lhs_spec[2:]]
    window = [(c.shape(1)[a] - 1) * d + 1 for a, d in zip(rhs_spec[2:], rhs_dilation)]
    if all(p == (0, 0) for p in padding):
        pad = "'VALID'"
    elif all(d == 1 for d in lhs_dilation) and padding == _same_pads(sizes, window, strides):
        pad = "'SAME'"
    else:
        pad = repr(tuple(tuple(p) for p in padding))
    default = tuple(range(ndim))
    if (lhs_spec, rhs_spec, tuple(dn.out_spec)) == (default, default, default):
        numbers = None
    else:
        specs = conv_specs(dn, ndim)
        numbers = repr(specs) if specs is not None else c.src(dn)
    groups, batches = int(c.param("feature_group_count")), int(c.param("batch_group_count"))
    return _call("lax.conv_general_dilated", c, repr(strides), pad,
                 lhs_dilation=repr(lhs_dilation) if any(d != 1 for d in lhs_dilation) else None,
                 rhs_dilation=repr(rhs_dilation) if any(d != 1 for d in rhs_dilation) else None,
                 dimension_numbers=numbers,
                 feature_group_count=str(groups) if groups != 1 else None,
                 batch_group_count=str(batches) if batches != 1 else None,
                 precision=_precision(c), preferred_element_type=_preferred(c))


FORMS.update({"dot_general": _dot_general, "conv_general_dilated": _conv})


# ---------------------------------------------------------------------------------------------
# Indexing: gather and scatter.

def _index_numbers(c: Call, cls: str, fields: tuple[str, ...], batching: tuple[str, ...]) -> str:
    """``lax.GatherDimensionNumbers(...)`` (or Scatter): batching axes only when present (JAX
    0.4.31 added them; a module that needs them says so in its header)."""
    dn = c.param("dimension_numbers")
    values = [(f, _ints(getattr(dn, f))) for f in fields]
    extra = [(f, _ints(getattr(dn, f, ()))) for f in batching]
    if any(v for _, v in extra):
        c.pool.limit("gather/scatter batching dimensions", "0.4.31")
        values += extra
    return f"lax.{cls}(" + ", ".join(f"{f}={v}" for f, v in values) + ")"


def _mode(c: Call, default: str):
    """``mode`` unless it is the public function's default (``lax.gather``: PROMISE_IN_BOUNDS;
    the scatters: FILL_OR_DROP)."""
    mode = c.param("mode")
    return None if mode is None or mode.name == default else c.src(mode)


def _gather(c: Call) -> str:
    numbers = _index_numbers(c, "GatherDimensionNumbers", ("offset_dims", "collapsed_slice_dims", "start_index_map"),
                             ("operand_batching_dims", "start_indices_batching_dims"))
    fill = c.param("fill_value", None)
    return _call("lax.gather", c, numbers, repr(_ints(c.param("slice_sizes"))),
                 unique_indices="True" if c.param("unique_indices") else None,
                 indices_are_sorted="True" if c.param("indices_are_sorted") else None,
                 mode=_mode(c, "PROMISE_IN_BOUNDS"), fill_value=None if fill is None else c.src(fill))


def _scatter(fn: str, negate: bool = False) -> Form:
    """``lax.scatter_add(...)`` and friends: the public function builds the ``update_jaxpr``.
    ``scatter-sub`` (no ``lax.scatter_sub`` before JAX 0.4.36) adds the negated updates."""
    def form(c: Call):
        c.param("update_jaxpr", None)
        if c.param("update_consts", ()):
            return None
        numbers = _index_numbers(c, "ScatterDimensionNumbers",
                                 ("update_window_dims", "inserted_window_dims", "scatter_dims_to_operand_dims"),
                                 ("operand_batching_dims", "scatter_indices_batching_dims"))
        operand, indices, updates = c.args
        if negate:
            updates = f"-{updates}"
        return (f"{fn}({operand}, {indices}, {updates}, {numbers}"
                + _keywords([("indices_are_sorted", "True" if c.param("indices_are_sorted") else None),
                             ("unique_indices", "True" if c.param("unique_indices") else None),
                             ("mode", _mode(c, "FILL_OR_DROP"))]) + ")")
    return form


FORMS["gather"] = _gather
FORMS.update({"scatter-add": _scatter("lax.scatter_add"), "scatter": _scatter("lax.scatter"),
              "scatter-mul": _scatter("lax.scatter_mul"), "scatter-min": _scatter("lax.scatter_min"),
              "scatter-max": _scatter("lax.scatter_max"), "scatter-sub": _scatter("lax.scatter_add", negate=True)})


# ---------------------------------------------------------------------------------------------
# Windows: pooling, and the tangent and gradient of a max pool.

_WINDOW_OPS = {"reduce_window_sum": ("lax.add", 0), "reduce_window_max": ("lax.max", "min"),
               "reduce_window_min": ("lax.min", "max")}


def _window_args(c: Call, dilations: bool = True) -> str:
    """``window_dimensions, window_strides, padding[, base_dilation, window_dilation]``."""
    padding = tuple(_ints(p) for p in c.param("padding"))
    pad = "'VALID'" if all(p == (0, 0) for p in padding) else repr(padding)
    text = f"{_ints(c.param('window_dimensions'))}, {_ints(c.param('window_strides'))}, {pad}"
    if dilations:
        base, window = _ints(c.param("base_dilation")), _ints(c.param("window_dilation"))
        if any(d != 1 for d in base + window):
            text += f", {base}, {window}"
    return text


def _reduce_window(name: str) -> Form:
    """``lax.reduce_window(x, identity, lax.max, ...)``: a max (sum, min) pool."""
    op, identity = _WINDOW_OPS[name]

    def form(c: Call) -> str:
        return f"lax.reduce_window({c.args[0]}, {_identity(c.dtype(0), identity)}, {op}, {_window_args(c)})"
    return form


def _chooser(c: Call) -> tuple[str, str]:
    """The pool a ``select_prim`` chooses by: ``ge`` a max pool, ``le`` a min pool."""
    select = c.param("select_prim").name
    return ("lax.max", "min") if select == "ge" else ("lax.min", "max")


def _select_and_gather_add(c: Call) -> str:
    """No public function: the tangent of a max pool at ``operand`` is written as the JVP of
    that pool (JAX's JVP rule of ``reduce_window_max`` is this primitive)."""
    op, identity = _chooser(c)
    tangents, operand = c.args
    c.note = "no public function for select_and_gather_add: the max pool's tangent, as its JVP"
    pool = f"lax.reduce_window(x, {_identity(c.dtype(1), identity)}, {op}, {_window_args(c)})"
    return f"jax.jvp(lambda x: {pool}, ({operand},), ({tangents},))[1]"


def _select_and_scatter_add(c: Call) -> str:
    """No public function: the gradient of a max pool at ``operand`` is written as the VJP of
    that pool (JAX transposes the pool's tangent into this primitive)."""
    op, identity = _chooser(c)
    source, operand = c.args
    c.note = "no public function for select_and_scatter_add: the max pool's gradient, as its VJP"
    pool = f"lax.reduce_window(x, {_identity(c.dtype(1), identity)}, {op}, {_window_args(c, dilations=False)})"
    return f"jax.vjp(lambda x: {pool}, {operand})[1]({source})[0]"


FORMS.update({name: _reduce_window(name) for name in _WINDOW_OPS})
FORMS.update({"select_and_gather_add": _select_and_gather_add, "select_and_scatter_add": _select_and_scatter_add})

#: Primitives whose outputs are their inputs (copies, placement, scheduling): no line is
#: written, the outputs take the inputs' names.
IDENTITY = frozenset({"copy", "copy_p", "device_put", "sharding_constraint", "mesh_cast", "reshard",
                      "optimization_barrier", "pvary"})


def public_call(eqn: Eqn, args: list[str], pool: ConstantPool) -> tuple[str, str] | None:
    """(the public call computing ``eqn``, a comment for the line above it or ""), or None when
    no rule writes it (no rule, or a parameter the rule does not know)."""
    form = FORMS.get(eqn.name)
    if form is None:
        return None
    call = Call(eqn, args, pool)
    try:
        text = form(call)
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    if text is None or call.unread():
        return None
    return text, call.note


def is_identity(eqn: Eqn) -> bool:
    """Whether ``eqn``'s outputs are its inputs: a copy or placement, a ``split`` into one
    piece, a conversion to the dtype the value has (it changes weak typing only)."""
    if eqn.name == "split":
        return len(eqn.outputs) == 1
    if eqn.name == "convert_element_type":
        atom = eqn.inputs[0]
        dtype = atom.array().dtype if isinstance(atom, Lit) else atom.dtype
        return np.dtype(dtype) == np.dtype(eqn.outputs[0].dtype)
    return eqn.name in IDENTITY and len(eqn.inputs) == len(eqn.outputs)


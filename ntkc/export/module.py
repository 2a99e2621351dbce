"""A plan as one standalone Python module that needs only JAX: written from the program that runs.

:func:`module_source` prints a plan's executor program (:mod:`ntkc.backends.program`):

* every :class:`~ntkc.backends.program.Call` — a side's operands (primal pass, factors, the
  shared backward sweep, kept loops as ``lax.scan``), a per-example Jacobian, the NTK-vector
  products — becomes a module-level function: the same Python function, traced by JAX
  (:func:`ntkc.ir.from_jaxpr.lower_plain`) and written equation by equation
  (:mod:`ntkc.export.equations`), called under ``jax.vmap`` where the program maps it over
  examples;
* every other step is written by the step itself (its ``source``, beside its ``run``): one
  ``jnp.einsum`` per term in the planned pairwise order, commented with the parameter, the
  consumers, their structure and the FLOPs; sums; the mean over traced axes.

The header gives the shapes the module is for, the axes and the predicted costs. The module
imports ``jax``, ``jax.numpy``, ``jax.lax`` and ``numpy`` only; constants that are not small are
embedded as hex bytes. The output is deterministic: the same plan gives byte-identical source.
"""

from __future__ import annotations

import math
import re
from typing import Any

import jax
import numpy as np

from ntkc.backends import program as programs
from ntkc.batching import partition_kwargs, split_kwargs
from ntkc.errors import ExportError
from ntkc.export.equations import ConstantPool, Names, graph_lines, value_source
from ntkc.export.versions import runs_on
from ntkc.ir.from_jaxpr import lower_plain
from ntkc.methods.calls import input_values, program_inputs

PyTree = Any

PRELUDE = '''import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

HIGHEST = lax.Precision.HIGHEST


def _array(hex_bytes, dtype, shape):
    return jnp.asarray(np.frombuffer(bytes.fromhex(hex_bytes), dtype=dtype).reshape(shape))


def _leaves(tree, expected, name):
    """The leaves of an argument, checked against the (shape, dtype) it was compiled for."""
    leaves = jax.tree_util.tree_leaves(tree)
    if len(leaves) != len(expected):
        raise ValueError(f"`{name}` has {len(leaves)} leaves, but the kernel was compiled for {len(expected)}.")
    for i, (leaf, (shape, dtype)) in enumerate(zip(leaves, expected)):
        if tuple(jnp.shape(leaf)) != shape or jnp.result_type(leaf) != jnp.dtype(dtype):
            raise ValueError(f"`{name}` leaf {i} is {jnp.result_type(leaf)}{list(jnp.shape(leaf))}, but the kernel "
                             f"was compiled for {dtype}{list(shape)}.")
    return leaves
'''


def identifier(path: str, prefix: str) -> str:
    """A Python name for a pytree key path: ``[0]['w']`` -> ``p_0_w``.

    >>> identifier("[0]['w']", "p")
    'p_0_w'
    """
    body = re.sub(r"\W+", "_", path).strip("_")
    return f"{prefix}_{body}" if body else prefix


def leaf_names(tree: PyTree, prefix: str) -> list[str]:
    """One identifier per leaf, from its key path (distinct: a clash gets the leaf's index)."""
    names = [identifier(jax.tree_util.keystr(path), prefix)
             for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    return [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]


def spec_source(tree: PyTree) -> str:
    """``((shape, dtype), ...)`` of every leaf, as source."""
    items = [f"({tuple(jax.numpy.shape(l))!r}, {np.dtype(jax.numpy.result_type(l)).name!r})"
             for l in jax.tree_util.tree_leaves(tree)]
    return "(" + "".join(f"{i}, " for i in items) + ")"


def skeleton_source(treedef) -> str:
    """Source of a pytree of zeros with structure ``treedef`` (tuples, lists, dicts, None)."""
    def render(node) -> str:
        if isinstance(node, dict):
            return "{" + ", ".join(f"{k!r}: {render(v)}" for k, v in node.items()) + "}"
        if type(node) in (tuple, list):
            inner = [render(v) for v in node]
            return f"[{', '.join(inner)}]" if isinstance(node, list) else f"({''.join(i + ', ' for i in inner)})"
        if node is None:
            return "None"
        if node == 0:
            return "0"
        raise ExportError(f"the output pytree node {type(node).__name__} has no source form; "
                          "exported kernels support outputs made of arrays, tuples, lists and dicts")
    return render(jax.tree_util.tree_unflatten(treedef, [0] * treedef.num_leaves))


def _tuple(items) -> str:
    return "(" + "".join(f"{i}, " for i in items) + ")"


def _reads(step) -> tuple[str, ...]:
    """The named arrays a step reads."""
    return tuple(getattr(step, "args", ())) + ((step.arg,) if hasattr(step, "arg") else ())


def _example_spec(spec, axis):
    """One example of a batched argument (``axis`` removed); unbatched arguments whole."""
    if axis is None:
        return spec
    return jax.ShapeDtypeStruct(spec.shape[:axis] + spec.shape[axis + 1:], spec.dtype)


class _Printer:
    """Writes a program's functions and the lines of ``ntk``'s body."""

    def __init__(self, program: programs.Program, specs: dict, aliases: dict, pool: ConstantPool):
        self.program, self.pool = program, pool
        self.shapes = programs.shapes(program, specs)
        self.alias = dict(aliases)
        self.functions: dict = {}  # fn -> (name, lines)
        self.users: dict = {}
        for step in program.steps:
            for arg in _reads(step):
                self.users.setdefault(arg, []).append(step)

    def ref(self, name: str) -> str:
        return self.alias.get(name, name)

    def value(self, v) -> str:
        return value_source(v, self.pool)

    def function(self, call: programs.Call) -> str:
        """The module-level function of a call's ``fn`` (written once per function)."""
        if call.fn not in self.functions:
            arg_specs = [self.shapes[a] for a in call.args]
            if call.in_axes is not None:
                arg_specs = [_example_spec(s, axis) for s, axis in zip(arg_specs, call.in_axes)]
            graph = lower_plain(call.fn, *arg_specs)
            params = [self.ref(a) for a in call.args]
            names = Names(self.pool)
            body, outs = graph_lines(graph, names, params, "    ")
            doc = call.doc or f"{call.name} of the kernel."
            lines = [f"def {call.name}({', '.join(params)}):", f'    """{doc}"""'] + body
            lines.append(f"    return {_tuple(outs)}")
            self.functions[call.fn] = (call.name, lines)
        return self.functions[call.fn][0]

    def call_lines(self, call: programs.Call) -> list[str]:
        name = self.function(call)
        args = ", ".join(self.ref(a) for a in call.args)
        if call.in_axes is None:
            target = f"{name}({args})"
        else:
            out_axes = "" if call.out_axes == 0 else f", out_axes={call.out_axes!r}"
            target = f"jax.vmap({name}, in_axes={call.in_axes!r}{out_axes})({args})"
        return [f"    {_tuple(self.ref(o) for o in call.outputs)} = {target}"]

    def inlined(self, step) -> bool:
        """An einsum read by one sum only is written inside that sum, with its comment."""
        users = self.users.get(step.output, [])
        return isinstance(step, programs.Einsum) and len(users) == 1 and isinstance(users[0], programs.Sum) \
            and step.output not in self.program.outputs

    def body(self) -> list[str]:
        lines, pending = [], {}
        for step in self.program.steps:
            if isinstance(step, programs.Call):
                lines += self.call_lines(step)
            elif isinstance(step, programs.Constant):
                self.alias[step.output] = step.source(self.ref, self.value)
            elif self.inlined(step):
                pending[step.output] = step
            elif isinstance(step, programs.Sum) and any(a in pending for a in step.args):
                lines.append(f"    {self.ref(step.output)} = (")
                for i, arg in enumerate(step.args):
                    einsum = pending.pop(arg, None)
                    if einsum is not None and einsum.note:
                        lines.append(f"        # {einsum.note}")
                    text = self.ref(arg) if einsum is None else einsum.source(self.ref, self.value)
                    lines.append(f"        {'+ ' if i else ''}{text}")
                lines.append("    )")
            else:
                if getattr(step, "note", ""):
                    lines.append(f"    # {step.note}")
                lines.append(f"    {self.ref(step.output)} = {step.source(self.ref, self.value)}")
        return lines


def _entry(plan, pool: ConstantPool) -> tuple[dict, list[str]]:
    """(input name -> its identifier in ``ntk``, the lines of ``ntk`` unpacking its arguments)."""
    specs = plan.specs
    _, one, two = program_inputs(plan.problem, specs.params)
    aliases = {}
    groups = [("params", "PARAMS", one.names[:one.n_params], specs.params, "p"),
              ("x1", "X1", one.names[one.n_params:one.n_params + one.n_x], specs.x1, "a")]
    if two is not None:
        groups.append(("x2", "X2", two.names[two.n_params:two.n_params + two.n_x], specs.x2, "b"))
    lines = []
    for argument, expected, names, tree, prefix in groups:
        aliases.update(zip(names, leaf_names(tree, prefix)))
        lines.append(f"    {_tuple(aliases[n] for n in names)} = _leaves({argument}, {expected}, {argument!r})")
    if two is None:
        lines.append("    if x2 is not None:\n        raise ValueError('`x2` was None at compile time, but is given now.')")
    return aliases, lines


def module_source(plan, kwargs: dict, summary: list[str], name: str = "f") -> str:
    """The standalone module of ``plan`` with keyword arguments ``kwargs`` bound as constants;
    ``summary`` lines go into the header."""
    if plan.complex is not None:
        raise TypeError("exported source needs a real model (real parameters and outputs); this model is "
                        "complex. `ntk_fn` and `ntkc.compile` handle complex models (see ntkc.complex_models).")
    program, problem, specs = plan.program, plan.problem, plan.specs
    pool = ConstantPool()
    kw1, kw2 = (partition_kwargs(side)[0] for side in split_kwargs(kwargs))
    values = dict(zip(program.inputs, input_values(problem, specs.params, specs.x1, kw1, specs.x2, kw2), strict=True))
    input_specs = {n: jax.ShapeDtypeStruct(jax.numpy.shape(v), jax.numpy.result_type(v)) for n, v in values.items()}
    aliases, unpack = _entry(plan, pool)
    for n, value in values.items():  # keyword arguments: constants of the module
        if n not in aliases:
            aliases[n] = value_source(np.asarray(value, jax.numpy.result_type(value)), pool)
    for spec in input_specs.values():
        pool.note(spec.dtype)
    printer = _Printer(program, input_specs, aliases, pool)
    body = printer.body()
    out_tree = jax.tree_util.tree_structure(problem.out1)
    outputs = [printer.ref(o) for o in program.outputs]
    single = out_tree.num_leaves == 1 and out_tree.num_nodes == 1
    result = outputs[0] if single else \
        f"jax.tree_util.tree_unflatten(jax.tree_util.tree_structure({skeleton_source(out_tree)}), [{', '.join(outputs)}])"
    signature = ["", "", "def ntk(x1, x2, params):",
                 f'    """The NTK Θ(x1, x2) for the shapes above; returns {"an array" if single else "a pytree like f`s output"}."""']
    if pool.wide:
        signature += ["    if not jax.config.jax_enable_x64:",
                      "        raise RuntimeError('this kernel was generated with 64-bit types (jax_enable_x64=True); '",
                      "                           \"enable them first: jax.config.update('jax_enable_x64', True)\")"]
    specs_src = [f"PARAMS = {spec_source(specs.params)}", f"X1 = {spec_source(specs.x1)}"] + \
        ([] if specs.x2 is None else [f"X2 = {spec_source(specs.x2)}"])
    parts = [header(name, plan, summary, pool), "", PRELUDE, "\n".join(specs_src)]
    if pool.lines:
        parts.append("\n".join(pool.lines))
    parts += ["\n\n" + "\n".join(lines) for _, lines in printer.functions.values()]
    parts.append("\n".join(signature + unpack + body + [f"    return {result}", ""]))
    return "\n".join(parts)


def header(name: str, plan, summary: list[str], pool: ConstantPool) -> str:
    specs = plan.specs

    def shapes(tree):
        return ", ".join(f"{np.dtype(l.dtype).name}{list(l.shape)}" for l in jax.tree_util.tree_leaves(tree))

    n_params = sum(math.prod(l.shape) for l in jax.tree_util.tree_leaves(specs.params))
    lines = [f'"""NTK of `{name}`, generated by ntkc (method {plan.method!r}). Needs only jax and numpy.', "",
             *runs_on(pool.limits), "",
             f"Compiled for x1: {shapes(specs.x1)}",
             f"             x2: {'None (x2 = x1)' if specs.x2 is None else shapes(specs.x2)}",
             f"             params: {len(jax.tree_util.tree_leaves(specs.params))} leaves, {n_params:,} parameters",
             "Axes: " + ", ".join(f"{k}={v!r}" for k, v in plan.options.axes().items()), "",
             "Usage:", "    kernel = ntk(x1, x2, params)  # x2=None for x2 = x1; params: any pytree with these leaves",
             ""] + summary + ['"""']
    return "\n".join(lines)

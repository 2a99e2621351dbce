"""The source backend: a compiled NTK as one standalone Python module that needs only JAX.

:func:`module_source` writes, from the plan the in-memory program runs (with linear scans
unrolled: the source has no loop form of the sweep, so a scan over T steps is written out T
times), a module with

* a header docstring: the shapes it was compiled for, the axes, and the cost summary;
* for ``structured``: per graph, a function computing one example's operands — the primal
  ``lax`` calls the factors and the sweep need, every use's factor (commented with its
  parameter, consumer primitive and structure), and one shared backward sweep giving ∂f/∂z for
  every consumer output z; then ``ntk(x1, x2, params)`` contracting them, one einsum per term
  in the planned pairwise order with its FLOP count;
* for ``jacobian`` / ``ntvp``: ``f`` itself as ``lax`` calls and the method written out
  (:mod:`ntkc.backends.source_methods`).

The module imports ``jax``, ``jax.numpy``, ``jax.lax`` and ``numpy`` only; constants that are
not small are embedded as hex bytes. The output is deterministic: the same compilation gives
byte-identical source. Executing it needs no ntkc.
"""

from __future__ import annotations

import math
import re
from typing import Any

import jax
import numpy as np

from ntkc.backends.factors import FACTOR_OPS
from ntkc.backends.source_eqns import ConstantPool, ExportError, Names, eqn_lines, value_source
from ntkc.ir.from_jaxpr import lower_plain
from ntkc.ir.graph import Graph, Lit, Var
from ntkc.ir.terms import COTANGENT, FACTOR, JACOBIAN, Contraction
from ntkc.passes.build_terms import CONSTANT_RECIPES, output_leaves
from ntkc.passes.order import einsum_spec

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


def leaf_names(tree, prefix: str) -> list[str]:
    return [identifier(jax.tree_util.keystr(path), prefix)
            for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def spec_source(tree) -> str:
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


def bind_inputs(graph: Graph, names: Names, args: list[str]) -> None:
    for var, name in zip(graph.primal_inputs, args):
        names.bind(var, name)
    for var, value in graph.consts.items():
        names.bind(var, names.pool.add(value))


def inline_graph(graph: Graph, names: Names, inputs: list[str], outputs: list[str], indent: str) -> list[str]:
    """Lines computing ``graph`` (no tangents) from ``inputs`` into variables ``outputs``."""
    bind_inputs(graph, names, inputs)
    for atom, name in zip(graph.outputs, outputs):
        if isinstance(atom, Var) and atom not in names.of:
            names.bind(atom, name)
    lines = [line for eqn in graph.eqns for line in eqn_lines(eqn, names, indent)]
    for atom, name in zip(graph.outputs, outputs):
        if names.atom(atom) != name:
            lines.append(f"{indent}{name} = {names.atom(atom)}")
    return lines


def needed_primal(graph: Graph, roots: set) -> set:
    """The primal equations whose outputs ``roots`` depend on (dead code is not written)."""
    producer = {v: e for e in graph.eqns if not e.linear for v in e.outputs}
    needed, stack = set(), [v for v in roots if v in producer]
    while stack:
        eqn = producer[stack.pop()]
        if eqn in needed:
            continue
        needed.add(eqn)
        stack.extend(v for v in eqn.inputs if isinstance(v, Var) and v in producer)
    return needed


def _struct(atom):
    return jax.ShapeDtypeStruct(atom.shape, atom.dtype)


def factor_lines(use, i: int, names: Names, primal_linear: set, indent: str) -> list[str]:
    """Lines computing use ``i``'s non-constant factors ``fac_i_f`` from its equation's inputs."""
    lines = []
    for f, (spec, eqn) in enumerate(zip(use.form.factors, use.factor_eqns)):
        if spec.recipe in CONSTANT_RECIPES:
            continue
        primal = [a for a in eqn.inputs if isinstance(a, Var) and a not in primal_linear]

        def recipe(*values, spec=spec, eqn=eqn, primal=primal):
            env = dict(zip(primal, values))
            read = lambda a: jax.numpy.asarray(a.value) if isinstance(a, Lit) else env[a]
            zero = lambda a: jax.numpy.zeros(a.shape, a.dtype) if isinstance(a, Var) and a in primal_linear else read(a)
            return FACTOR_OPS[spec.recipe](spec, eqn, read, zero)

        graph = lower_plain(recipe, *[_struct(a) for a in primal])
        lines.append(f"{indent}# factor {f} of use {i}: {spec.recipe}({', '.join(spec.labels)})")
        lines += inline_graph(graph, names, [names.atom(a) for a in primal], [f"fac_{i}_{f}"], indent)
    return lines


def sweep_lines(side_ir, out_index: int, out_shape, names: Names, indent: str) -> list[str]:
    """The shared backward sweep: ∂f/∂z of every target z, as ``cot_<use>`` variables."""
    graph, targets = side_ir.graph, side_ir.targets
    if not targets:
        return []
    inner = indent + "    "
    deltas = [f"d{k}" for k in range(len(targets))]
    lines = [f"{indent}# one backward sweep: the linear map with θ̇ = 0 and δ_z added at every consumer "
             "output z;", f"{indent}# its VJP w.r.t. the δ's, one per output entry, is ∂f/∂z.",
             f"{indent}def linear(deltas):",
             f"{inner}{''.join(d + ', ' for d in deltas)}= deltas"]
    for leaf, var in enumerate(graph.tangent_inputs):  # θ̇ = 0: only the δ's move the output
        names.bind(var, f"dθ{leaf}")
        lines.append(f"{inner}dθ{leaf} = jnp.zeros({var.shape!r}, {value_source(np.dtype(var.dtype), names.pool)})")
    add = {t.var: d for t, d in zip(targets, deltas)}
    for eqn in graph.eqns:
        if eqn.linear:
            lines += eqn_lines(eqn, names, inner, add)
    out = graph.outputs[out_index]
    linear_out = isinstance(out, Var) and out in names.of and any(out in e.outputs for e in graph.eqns if e.linear)
    lines.append(f"{inner}return {names.atom(out) if linear_out else 'jnp.zeros(())'}")
    n_out = math.prod(out_shape)
    zeros = ", ".join(f"jnp.zeros({t.var.shape!r}, {value_source(np.dtype(t.var.dtype), names.pool)})" for t in targets)
    lines += [f"{indent}out, pullback = jax.vjp(linear, [{zeros}])",
              f"{indent}basis = jnp.eye({n_out}, dtype=out.dtype).reshape({(n_out,) + tuple(out_shape)!r})",
              f"{indent}cots = jax.vmap(lambda e: pullback(e)[0])(basis)"]
    for k, t in enumerate(targets):
        full = tuple(out_shape) + t.var.shape
        summed = tuple(len(out_shape) + a for a in t.summed)
        total = f".sum(axis={summed!r})" if summed else ""
        lines.append(f"{indent}cot_t{k} = cots[{k}].reshape({full!r}){total}")
    return lines


def operands_function(side_ir, out_index: int, out_shape, name: str, args: list[str], pool: ConstantPool,
                      leaf_label) -> list[str]:
    """``def name(*args)``: one example's (or batch's) factors and cotangents, as a dict."""
    graph, uses = side_ir.graph, side_ir.uses
    names = Names(pool)
    bind_inputs(graph, names, args)
    linear = {v for e in graph.eqns if e.linear for v in e.outputs} | set(graph.tangent_inputs)
    roots = {a for e in graph.eqns if e.linear for a in e.inputs if isinstance(a, Var)}
    for use in uses:
        for spec, eqn in zip(use.form.factors, use.factor_eqns):
            if spec.recipe not in CONSTANT_RECIPES:
                roots.update(a for a in eqn.inputs if isinstance(a, Var))
    needed = needed_primal(graph, roots - linear)
    indent = "    "
    lines = [f"def {name}({', '.join(args)}):",
             f'{indent}"""Operands of output leaf {out_index} for one example: factors and cotangents."""',
             f"{indent}# primal pass: the residuals the factors and the sweep read"]
    for eqn in graph.eqns:
        if eqn in needed:
            lines += eqn_lines(eqn, names, indent)
    for i, use in enumerate(uses):
        lines.append(f"{indent}# use {i}: θ{use.leaf} {leaf_label(use.leaf)} -> {use.primitives} [{use.form.kind}]")
        lines += factor_lines(use, i, names, linear, indent)
    lines += sweep_lines(side_ir, out_index, out_shape, names, indent)
    result = [f"fac_{i}_{f}" for i, u in enumerate(uses) for f, s in enumerate(u.form.factors)
              if s.recipe not in CONSTANT_RECIPES]
    target_index = {t.var: k for k, t in enumerate(side_ir.targets)}
    entries = [f"{r!r}: {r}" for r in result] + [f"'cot_{i}': cot_t{target_index[u.output]}" for i, u in enumerate(uses)]
    lines.append(f"{indent}return {{{', '.join(entries)}}}")
    return lines


def operand_source(op, sides: dict[int, str], physical) -> str:
    """The array of a plan operand: an entry of its side's operands dict, or an outside-in
    Jacobian (named by the physical side computing it: side 1 when x2 is x1)."""
    if op.kind == JACOBIAN:
        return f"jac{physical(op.side)}_{op.index}"
    key = f"cot_{op.index}" if op.kind == COTANGENT else f"fac_{op.index}_{op.factor}"
    return f"{sides[op.side]}[{key!r}]"


def contraction_source(c: Contraction, operands: list[str], sizes: dict) -> str:
    spec, _ = einsum_spec(c)
    path = list(c.path) if c.path else "optimal"
    text = f"jnp.einsum({spec!r}, {', '.join(operands)}, optimize={path!r}, precision=HIGHEST)"
    present = {l for op in c.operands for l in op.labels}
    if any(l not in present for l in c.output):
        expanded = tuple(sizes[l] if l in present else 1 for l in c.output)
        text = f"jnp.broadcast_to({text}.reshape({expanded!r}), {tuple(sizes[l] for l in c.output)!r})"
    return text if c.scale == 1.0 else f"{text} * {c.scale!r}"


def term_note(comp, term) -> str:
    """``consumer [structure]`` of a term's two uses (once when both sides read θ alike)."""
    if term.uses is None:
        return "both sides' whole ∂f/∂θ (outside-in)"
    notes = [f"{u.primitives} [{u.form.kind}]" for u in
             (comp.side(1).uses[term.uses[0]], comp.side(2).uses[term.uses[1]])]
    return notes[0] if notes[0] == notes[1] else " × ".join(notes)


def example_axes(tree) -> list:
    return jax.tree_util.tree_leaves(tree, is_leaf=lambda a: a is None)


def kwarg_sources(leaves, pool: ConstantPool) -> list[str]:
    """Keyword-argument leaves (bound at compile time) as constants of their traced dtype."""
    return [value_source(np.asarray(v, jax.numpy.result_type(v)), pool) for v in leaves]


def side_lines(comp, k: int, u: int, out_shape, p_names: list[str], pool: ConstantPool,
               leaf_label) -> tuple[list[str], list[str]]:
    """(the ``operands`` function of side ``k`` for output leaf ``u``, the lines of ``ntk``
    calling it): vmapped over examples under ``vmap_axes``; one batch of both sides' examples
    (then split into ``ops1``/``ops2``) when the sides share their graph."""
    side_ir = comp.sides[k - 1]
    side = side_ir.side
    fused = len(comp.sides) == 2 and comp.sides[0].graph is comp.sides[1].graph
    fn = f"operands{'' if len(comp.sides) == 1 or fused else k}_out{u}"
    n_x = len(jax.tree_util.tree_leaves(side.x))
    batched = side.batched_kwargs()[0] if side.vmap is not None else side.kwargs
    kw_leaves = jax.tree_util.tree_leaves(batched)
    args = p_names + [f"x{j}" for j in range(n_x)] + [f"k{j}" for j in range(len(kw_leaves))]
    function = operands_function(side_ir, u, out_shape, fn, args, pool, leaf_label)
    x_src = [f"{'a' if k == 1 else 'b'}[{j}]" for j in range(n_x)]
    kw_src = kwarg_sources(kw_leaves, pool)
    kw_axes = [side.vmap.kwargs[name] for name in sorted(batched)] if side.vmap is not None else []
    if fused:  # examples of x2 appended to x1's along each batched leaf's axis
        x_src = [s if ax is None else f"jnp.concatenate([{s}, b[{j}]], axis={ax})"
                 for j, (s, ax) in enumerate(zip(x_src, example_axes(side.vmap.x)))]
        kw2 = kwarg_sources(jax.tree_util.tree_leaves(comp.sides[1].side.batched_kwargs()[0]), pool)
        kw_src = [f"jnp.concatenate([{s}, {s2}], axis={ax})" for s, s2, ax in zip(kw_src, kw2, kw_axes)]
    call_args = ", ".join(["*p"] + x_src + kw_src)
    target = f"ops{k}"
    if side.vmap is None:
        lines = [f"    {target} = {fn}({call_args})"]
    else:
        in_axes = tuple([None] * len(p_names) + example_axes(side.vmap.x) + kw_axes)
        lines = [f"    {target} = jax.vmap({fn}, in_axes={in_axes!r})({call_args})"]
    if fused:
        n1 = side.n_examples()
        lines.append(f"    ops1, ops2 = ({{k: v[:{n1}] for k, v in ops1.items()}}, "
                     f"{{k: v[{n1}:] for k, v in ops1.items()}})")
    return function, lines


def kernel_lines(comp, kernel, pool: ConstantPool, leaf_label) -> list[str]:
    """``k<u> = Σ terms / trace_size`` (outside-in Jacobians first), one einsum per term."""
    physical = lambda side: 1 if len(comp.sides) == 1 else side
    side_names = {1: "ops1", 2: f"ops{physical(2)}"}
    consts = {(k, (FACTOR, i, f)): pool.add(np.asarray(spec.value))
              for k, side_ir in enumerate(comp.sides, 1) for i, use in enumerate(side_ir.uses)
              for f, spec in enumerate(use.form.factors) if spec.recipe in CONSTANT_RECIPES}
    sizes = kernel.label_sizes()
    for jac in kernel.jacobians:
        sizes.update(zip(jac.labels, jac.shape))

    def operands(c):
        return [consts.get((physical(op.side), op.key)) or operand_source(op, side_names, physical)
                for op in c.operands]

    lines = []
    for jac in kernel.jacobians:
        parts = [contraction_source(p, operands(p), sizes) for p in jac.parts]
        lines.append(f"    # ∂f/∂θ{jac.leaf} {leaf_label(jac.leaf)} on side {jac.side} (outside-in weight sharing)")
        lines.append(f"    jac{physical(jac.side)}_{jac.leaf} = (\n        " + "\n        + ".join(parts) + "\n    )")
    name, dtype = f"k{kernel.output}", value_source(np.dtype(kernel.dtype), pool)
    if not kernel.terms:
        return lines + [f"    {name} = jnp.zeros({kernel.result_shape!r}, {dtype})"]
    lines.append(f"    {name} = (")
    for t, term in enumerate(kernel.terms):
        c = term.contraction
        cost = "" if c.flops is None else f"; {c.flops:,} FLOPs"
        lines.append(f"        # θ{term.leaf} {leaf_label(term.leaf)} via {term_note(comp, term)}{cost}")
        lines.append(f"        {'+ ' if t else ''}{contraction_source(c, operands(c), sizes)}")
    mean = f"({name} / {kernel.trace_size})" if kernel.trace_size != 1 else name
    return lines + ["    )", f"    {name} = {mean}.astype({dtype})"]


def structured_body(comp, p_names: list[str], pool: ConstantPool, leaf_label) -> tuple[list[str], list[str]]:
    """(functions, lines of ``ntk``'s body) of a structured compilation."""
    functions, body = [], []
    fused = len(comp.sides) == 2 and comp.sides[0].graph is comp.sides[1].graph
    for kernel in comp.kernels:
        out1, out2, _, fx = output_leaves(comp)[kernel.output]
        example = lambda shape: tuple(n for i, n in enumerate(shape) if i != fx)
        for k in range(1, 2 if fused else len(comp.sides) + 1):
            function, lines = side_lines(comp, k, kernel.output, example((out1 if k == 1 else out2).shape),
                                         p_names, pool, leaf_label)
            functions.append(function)
            body += lines
        body += kernel_lines(comp, kernel, pool, leaf_label)
    return functions, body + [f"    kernels = [{', '.join(f'k{k.output}' for k in comp.kernels)}]"]


def header(name: str, method: str, specs, axes: dict, summary: list[str]) -> str:
    x1, x2, params = specs
    def shapes(tree):
        return ", ".join(f"{np.dtype(jax.numpy.result_type(l)).name}{list(jax.numpy.shape(l))}"
                         for l in jax.tree_util.tree_leaves(tree))
    n_params = sum(math.prod(jax.numpy.shape(l)) for l in jax.tree_util.tree_leaves(params))
    lines = [f'"""NTK of `{name}`, generated by ntkc (method {method!r}). Needs only jax and numpy.', "",
             f"Compiled for x1: {shapes(x1)}", f"             x2: {'None (x2 = x1)' if x2 is None else shapes(x2)}",
             f"             params: {len(jax.tree_util.tree_leaves(params))} leaves, {n_params:,} parameters",
             "Axes: " + ", ".join(f"{k}={v!r}" for k, v in axes.items()), "",
             "Usage:", "    kernel = ntk(x1, x2, params)  # x2=None for x2 = x1; params: any pytree with these leaves",
             ""] + summary + ['"""']
    return "\n".join(lines)


def module_source(f, specs, kwargs: dict, axes: dict, method: str, memory_limit: int | None,
                  summary: list[str]) -> str:
    """The standalone module for ``f`` at ``specs = (x1, x2, params)`` (arrays or structs)."""
    from ntkc.backends.source_methods import method_body
    from ntkc.passes.pipeline import compile_plan
    from ntkc.problem import build_problem, require_real

    x1, x2, params = specs
    problem = build_problem(f, x1, x2, params, kwargs, **axes)
    require_real(problem, "exported source")
    pool = ConstantPool()
    p_names = leaf_names(params, "p")
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    leaf_label = lambda leaf: f"params{paths[leaf]}"
    if method == "structured":
        # Written from the unrolled plan: the source has no loop form of the backward sweep.
        comp = compile_plan(problem, params, memory_limit=memory_limit, loops=False)
        functions, body = structured_body(comp, p_names, pool, leaf_label)
    else:
        functions, body = method_body(problem, params, method, memory_limit, p_names, pool)
    out_tree = jax.tree_util.tree_structure(problem.out1)
    result = "kernels[0]" if out_tree.num_leaves == 1 and out_tree.num_nodes == 1 else \
        f"jax.tree_util.tree_unflatten(jax.tree_util.tree_structure({skeleton_source(out_tree)}), kernels)"
    signature = ["", "", "def ntk(x1, x2, params):",
                 f'    """The NTK Θ(x1, x2) for the shapes above; returns {"an array" if result == "kernels[0]" else "a pytree like f`s output"}."""',
                 "    p = _leaves(params, PARAMS, 'params')",
                 "    a = _leaves(x1, X1, 'x1')"]
    if x2 is None:
        signature.append("    if x2 is not None:\n        raise ValueError('`x2` was None at compile time, but is given now.')")
    else:
        signature.append("    b = _leaves(x2, X2, 'x2')")
    specs_src = [f"PARAMS = {spec_source(params)}", f"X1 = {spec_source(x1)}"] + \
        ([] if x2 is None else [f"X2 = {spec_source(x2)}"])
    parts = [header(getattr(f, "__name__", "f"), method, specs, axes, summary), "", PRELUDE,
             "\n".join(specs_src)]
    if pool.lines:
        parts.append("\n".join(pool.lines))
    parts += ["\n\n" + "\n".join(fn) for fn in functions]
    parts.append("\n".join(signature + body + [f"    return {result}", ""]))
    return "\n".join(parts)

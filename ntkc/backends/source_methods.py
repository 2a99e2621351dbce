"""Exported source of the ``jacobian`` and ``ntvp`` methods: ``f`` as ``lax`` calls, the method
written out around it.

``f`` is traced once per distinct side (per example under ``vmap_axes``) and emitted as
``f1(*param_leaves, *x_leaves, *kwarg_leaves) -> tuple of output leaves``; ``apply1(p, x)``
gives the batched outputs exactly as :meth:`ntkc.batching.Side.apply` does. The method bodies
mirror :mod:`ntkc.methods.jacobian` and :mod:`ntkc.methods.ntvp` step for step, with every
choice they make from shapes (reverse or forward mode, column chunk size, einsum strings)
already made.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from ntkc.backends.python_source import example_axes, inline_graph, kwarg_sources
from ntkc.backends.source_eqns import ConstantPool, Names, value_source
from ntkc.batching import shape_structs
from ntkc.ir.from_jaxpr import lower_plain
from ntkc.methods.contract import param_labels
from ntkc.methods.ntvp import CHUNK_BYTES, _tree_bytes, plan_chunks
from ntkc.passes.pipeline import same_examples, traced_inputs


def _size(tree) -> int:
    return sum(math.prod(jax.numpy.shape(l)) for l in jax.tree_util.tree_leaves(tree))


def side_functions(side, k: int, params, p_names: list[str], pool: ConstantPool, x_name: str) -> tuple[list[list[str]], dict]:
    """``f{k}`` and ``apply{k}`` for one side, and facts the method bodies need."""
    batched = side.batched_kwargs()[0] if side.vmap is not None else side.kwargs
    kw_leaves = jax.tree_util.tree_leaves(batched)
    kw_src = kwarg_sources(kw_leaves, pool)
    n_x = len(jax.tree_util.tree_leaves(side.x))
    if side.vmap is None:
        fn = lambda p, x, kw: jax.tree_util.tree_leaves(side.f(p, x, **kw))
    else:
        fn = lambda p, x, kw: jax.tree_util.tree_leaves(side.example(p, x, kw))
    graph = lower_plain(fn, shape_structs(params), *traced_inputs(side))
    args = p_names + [f"x{j}" for j in range(n_x)] + [f"k{j}" for j in range(len(kw_leaves))]
    outs = [f"out{j}" for j in range(len(graph.outputs))]
    f_lines = [f"def f{k}({', '.join(args)}):",
               f'    """`f` on {"one example" if side.vmap is not None else "the whole batch"} of side {k}, '
               'as lax calls; returns its output leaves."""']
    f_lines += inline_graph(graph, Names(pool), args, outs, "    ")
    f_lines.append(f"    return ({''.join(o + ', ' for o in outs)})")
    kw_args = "".join(f", {s}" for s in kw_src)
    apply = [f"def apply{k}(p, {x_name}):", f'    """Batched outputs of side {k}."""']
    if side.vmap is None:
        apply.append(f"    return f{k}(*p, *{x_name}{kw_args})")
    else:
        kw_axes = [side.vmap.kwargs[n] for n in sorted(batched)]
        in_axes = tuple(example_axes(side.vmap.x) + kw_axes)
        out_axes = tuple(jax.tree_util.tree_leaves(side.vmap.out))
        apply += [f"    outs = jax.vmap(lambda *e: f{k}(*p, *e), in_axes={in_axes!r})(*{x_name}{kw_args})",
                  f"    return tuple(jnp.moveaxis(o, 0, axis) for o, axis in zip(outs, {out_axes!r}))"]
    facts = {"kw": kw_args, "out_size": sum(math.prod(o.shape) for o in graph.outputs)}
    return [f_lines, apply], facts


def jacobian_lines(side, k: int, fn: str, out_size: int, params, x_name: str, kw_args: str) -> list[str]:
    """``j{k}``: per output leaf, per parameter leaf, ∂out/∂θ of ``fn`` with the batch at the
    out axis (reverse mode when ``fn``'s outputs are fewer than the parameters, as the method
    chooses)."""
    mode = "jacrev" if out_size <= _size(params) else "jacfwd"
    if side.vmap is None:
        return [f"    j{k} = jax.{mode}(lambda q: {fn}(*q, *{x_name}{kw_args}))(p)"]
    batched = side.batched_kwargs()[0]
    kw_axes = [side.vmap.kwargs[n] for n in sorted(batched)]
    in_axes = tuple(example_axes(side.vmap.x) + kw_axes)
    out_axes = tuple(jax.tree_util.tree_leaves(side.vmap.out))
    return [f"    j{k} = jax.vmap(lambda *e: jax.{mode}(lambda q: {fn}(*q, *e))(p), in_axes={in_axes!r})(*{x_name}{kw_args})",
            f"    j{k} = [[jnp.moveaxis(j, 0, axis) for j in js] for js, axis in zip(j{k}, {out_axes!r})]"]


def method_body(problem, params, method: str, memory_limit, p_names: list[str], pool: ConstantPool):
    """(functions, lines of ``ntk``'s body) for ``jacobian`` or ``ntvp``."""
    side1, side2 = problem.side1, problem.side2
    functions, facts1 = side_functions(side1, 1, params, p_names, pool, "x")
    kw, out_size = {1: facts1["kw"]}, {1: facts1["out_size"]}
    second = 1  # the side whose f/apply side 2 runs: side 1's when both run the same program
    if side2 is not None and not (same_examples(side1, side2) and not side1.batched_kwargs()[0]):
        more, facts2 = side_functions(side2, 2, params, p_names, pool, "x")
        functions += more
        kw[2], out_size[2] = facts2["kw"], facts2["out_size"]
        second = 2
    out1 = jax.tree_util.tree_leaves(problem.out1)
    out2 = jax.tree_util.tree_leaves(problem.out2)
    axes = jax.tree_util.tree_structure(problem.out1).flatten_up_to(problem.axes)
    body = []
    if method == "jacobian":
        body += jacobian_lines(side1, 1, "f1", out_size[1], params, "a", kw[1])
        if side2 is None:
            body.append("    j2 = j1")
        else:
            body += jacobian_lines(side2, 2, f"f{second}", out_size[second], params, "b", kw[second])
        names = []
        for o, (ka, o1) in enumerate(zip(axes, out1)):
            l1, l2, result = ka.labels()
            terms = []
            for l, leaf in enumerate(jax.tree_util.tree_leaves(params)):
                pl = param_labels(ka, len(jax.numpy.shape(leaf)))
                terms.append(f"jnp.einsum({f'{l1}{pl},{l2}{pl}->{result}'!r}, j1[{o}][{l}], j2[{o}][{l}], precision=HIGHEST)")
            body.append(f"    k{o} = (" + "\n        + ".join(terms) + f") / {ka.trace_size(o1.shape)}")
            names.append(f"k{o}")
        return functions, body + [f"    kernels = [{', '.join(names)}]"]
    budget = CHUNK_BYTES if memory_limit is None else memory_limit
    body.append("    out1, jvp1 = jax.linearize(lambda q: apply1(q, a), p)")
    if side2 is None:
        body += ["    transpose = jax.linear_transpose(jvp1, p)", "    vjp2 = lambda cot: transpose(cot)[0]",
                 "    out2 = out1"]
    else:
        body += [f"    out2, vjp_fn = jax.vjp(lambda q: apply{second}(q, b), p)",
                 "    vjp2 = lambda cot: vjp_fn(cot)[0]"]
    names = []
    for o, (ka, o1, o2) in enumerate(zip(axes, out1, out2)):
        n = math.prod(o2.shape)
        chunks = plan_chunks(n, _tree_bytes(params) + _tree_bytes(o1), budget)
        l1, l2, result = ka.labels()
        nd = len(o1.shape)
        zeros = ", ".join(f"jnp.zeros_like(out2[{j}])" if j != o else f"e.reshape({tuple(o2.shape)!r})"
                          for j in range(len(out2)))
        dtype = value_source(np.dtype(o2.dtype), pool)
        if chunks.count == 1:
            columns = f"jax.vmap(column{o})(jnp.eye({n}, dtype={dtype}))"
        elif chunks.unrolled:        # as ntkc.methods.ntvp._columns: XLA:CPU loops are slow
            columns = (f"jnp.concatenate([jax.vmap(column{o})(jnp.eye({n}, dtype={dtype})[i:i + {chunks.size}]) "
                       f"for i in range(0, {n}, {chunks.size})])")
        else:
            columns = (f"jax.lax.map(column{o}, jnp.eye({chunks.count * chunks.size}, {n}, dtype={dtype}), "
                       f"batch_size={chunks.size})[:{n}]")
        body += [f"    def column{o}(e):  # Θ·e = J1 · (J2ᵀ · e), one output column of side 2",
                 f"        return jvp1(vjp2(({zeros},)))[{o}]",
                 f"    full = {columns}.reshape({tuple(o2.shape) + tuple(o1.shape)!r})",
                 f"    full = jnp.moveaxis(full, {tuple(range(nd))!r}, {tuple(range(nd, 2 * nd))!r})",
                 f"    k{o} = jnp.einsum({f'{l1}{l2}->{result}'!r}, full) / {ka.trace_size(o1.shape)}"]
        names.append(f"k{o}")
    return functions, body + [f"    kernels = [{', '.join(names)}]"]

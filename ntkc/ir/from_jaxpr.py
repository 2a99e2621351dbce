"""Lowering: trace ``f``, linearize it, and inline the result into a flat :class:`Graph`.

This is the ONLY module of ntkc that touches JAX's tracing machinery, and it does so through
public API alone: ``jax.linearize`` and ``jax.make_jaxpr`` produce the jaxpr of

    (params, x, kwargs, θ̇)  ->  ẏ = ∂f(params, x)/∂params · θ̇

whose equations split cleanly into the primal computation of residuals and the linear map.
Reading it uses ``jax.extend.core`` (``Literal``, ``Var``, ``ClosedJaxpr``) only.

Call-like equations (``jit``/``pjit``, ``closed_call``, ``custom_jvp_call``, ``custom_vjp_call``,
``checkpoint``/``remat``) are inlined recursively, so later passes see primitives; ``scan``s of
the linear program (``lax.scan``, and ``fori_loop`` with static bounds) stay one equation owning
its lowered body (:meth:`_Lowering.keep_loop`) or, where that does not apply, are unrolled into
their iterations (:meth:`_Lowering.unroll_scan`); linear ``cond``s become all branches plus a
``select_n`` (:meth:`_Lowering.select_branches`), linear ``split``s one ``slice`` per piece
(:meth:`_Lowering.split_slices`); primal scans, conds and splits stay whole. This is
exact: an inlined call computes the same values. It is unsafe only for effects (callbacks with
side effects run the same number of times, but their order relative to other calls is not
guaranteed), which differentiable NTK models do not have.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import jax
import jax.extend.core as jcore
import numpy as np

from ntkc.ir.graph import Eqn, Graph, Lit, Loop, Var

#: Call-like primitives whose body is inlined, by name.
INLINE = frozenset({
    "jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
    "custom_vjp_call_jaxpr", "checkpoint", "remat", "remat2",
})
_BODY_PARAMS = ("jaxpr", "call_jaxpr", "fun_jaxpr")

#: Linear scans with at most this many iterations are unrolled (longer ones stay one equation,
#: which gets the exact dense fallback).
MAX_UNROLL = 256


def _body(eqn) -> tuple[Any, tuple]:
    for name in _BODY_PARAMS:
        if name in eqn.params:
            body = eqn.params[name]
            if isinstance(body, jcore.ClosedJaxpr):
                return body.jaxpr, tuple(body.consts)
            return body, ()
    raise KeyError(f"no body among {list(eqn.params)} for {eqn.primitive.name}")


def _source(eqn) -> str:
    try:
        return jax.extend.source_info_util.summarize(eqn.source_info) or "<unknown source>"
    except Exception:  # source info is a courtesy for warnings; never fail lowering on it
        return "<unknown source>"


class _Lowering:
    def __init__(self, loops: bool = False) -> None:
        self.ids = itertools.count()
        self.eqns: list[Eqn] = []
        self.consts: dict[Var, Any] = {}
        self.linear: set[Var] = set()
        self.tangents: dict[Var, int] = {}
        self.loops = loops

    def new_var(self, aval) -> Var:
        return Var(id=next(self.ids), shape=tuple(aval.shape), dtype=aval.dtype)

    def read(self, env, atom):
        if isinstance(atom, jcore.Literal):
            return Lit(atom.val, atom.aval.dtype)
        return env[atom]

    def consumed(self, out, tangents: list):
        """An output that *is* a parameter tangent (``f`` returns a parameter unchanged) gets an
        explicit ``copy`` equation, so the parameter has a consumer like every other."""
        if not any(out is t for t in tangents):
            return out
        var = Var(id=next(self.ids), shape=out.shape, dtype=out.dtype)
        self.linear.add(var)
        self.eqns.append(Eqn(primitive=jax.lax.copy_p, inputs=(out,), outputs=(var,), params={},
                             linear=True, source="<output of f is a parameter>"))
        return var

    def call(self, fn: Callable, atoms: list) -> list:
        """Inline the jaxpr of ``fn`` applied to ``atoms`` (glue such as slicing and stacking)."""
        structs = [jax.ShapeDtypeStruct(np.shape(a.value), a.array().dtype) if isinstance(a, Lit)
                   else jax.ShapeDtypeStruct(a.shape, a.dtype) for a in atoms]
        closed = jax.make_jaxpr(fn)(*structs)
        return self.lower(closed.jaxpr, closed.consts, list(atoms))

    def is_linear(self, ins: list) -> bool:
        return any(isinstance(x, Var) and x in self.linear for x in ins)

    def unrollable(self, eqn, ins: list) -> bool:
        """A scan of the linear program with at most :data:`MAX_UNROLL` iterations."""
        return 0 < eqn.params["length"] <= MAX_UNROLL and self.is_linear(ins)

    def keepable(self, eqn, ins: list) -> bool:
        """A linear scan that stays a :class:`Loop`: loops are on, it is not inside another
        kept loop, it runs at least twice, and no parameter tangent is a carry's initial value
        (a tangent read at iteration 0 only; such scans are unrolled)."""
        n_consts, n_carry = eqn.params["num_consts"], eqn.params["num_carry"]
        carry_init = ins[n_consts:n_consts + n_carry]
        return (self.loops and eqn.params["length"] >= 2 and self.is_linear(ins)
                and not any(isinstance(a, Var) and a in self.tangents for a in carry_init))

    def keep_loop(self, eqn, ins: list) -> list:
        """A linear ``scan`` as one equation owning its lowered body (:class:`Loop`).

        The body is lowered once, into its own equation list; its carries are linear, and a
        const or ``xs`` input is linear when the scan's input is. A body input that receives a
        parameter tangent is recorded in ``Loop.theta`` so consumers inside the body become
        uses of that parameter (:func:`ntkc.passes.consumers.find_uses`).
        """
        params = eqn.params
        body, n_consts, n_carry = params["jaxpr"], params["num_consts"], params["num_carry"]
        new = [self.new_var(v.aval) for v in body.jaxpr.invars]
        consts, carry, xs = new[:n_consts], new[n_consts:n_consts + n_carry], new[n_consts + n_carry:]
        theta = {}
        for pos, (outer, inner) in enumerate(zip(ins, new)):
            if n_consts <= pos < n_consts + n_carry or (isinstance(outer, Var) and outer in self.linear):
                self.linear.add(inner)
            if isinstance(outer, Var) and outer in self.tangents:
                theta[inner] = (self.tangents[outer], pos >= n_consts + n_carry)
        outer_eqns, self.eqns, self.loops = self.eqns, [], False
        try:
            outs = self.lower(body.jaxpr, tuple(body.consts), new)
            outs = [self.consumed(o, list(theta)) for o in outs]
            body_eqns = tuple(self.eqns)
        finally:
            self.eqns, self.loops = outer_eqns, True
        loop = Loop(length=params["length"], reverse=params["reverse"], consts=tuple(consts),
                    carry=tuple(carry), xs=tuple(xs), eqns=body_eqns, carry_out=tuple(outs[:n_carry]),
                    ys=tuple(outs[n_carry:]), theta=theta)
        results = [self.new_var(v.aval) for v in eqn.outvars]
        self.linear.update(results)
        self.eqns.append(Eqn(primitive=eqn.primitive, inputs=tuple(ins), outputs=tuple(results),
                             params=dict(eqn.params), linear=True, source=_source(eqn), loop=loop))
        return results

    def select_branches(self, eqn, ins: list) -> list:
        """A linear ``cond``/``switch`` as every branch inlined, then ``select_n`` on the index.

        Identity: ``cond(i, b_0 … b_{K-1})(ops) = select_n(clamp(i, 0, K-1), b_0(ops), …)``,
        exact for every index. Residuals that only the taken branch computed are uninitialised
        in the others, so each branch reads its float residuals as ``where(i == k, r, 1)``:
        finite values whose outputs ``select_n`` then discards (a product with 0 stays 0).
        """
        branches, index, operands = eqn.params["branches"], ins[0], ins[1:]
        outs = []
        for k, branch in enumerate(branches):
            safe = [self.call(lambda i, r, k=k: jax.numpy.where(i == k, r, jax.numpy.ones_like(r)), [index, a])[0]
                    if isinstance(a, Var) and a not in self.linear and jax.numpy.issubdtype(a.dtype, jax.numpy.inexact)
                    else a for a in operands]
            outs.append(self.lower(branch.jaxpr, tuple(branch.consts), safe))
        last = len(branches) - 1
        pick = lambda i, *cases: jax.lax.select_n(jax.numpy.clip(i, 0, last), *cases)
        return [self.call(pick, [index] + [o[j] for o in outs])[0] for j in range(len(outs[0]))]

    def unroll_scan(self, eqn, ins: list) -> list:
        """A linear ``scan`` as its iterations, inlined one after another.

        Identity: ``scan(body, init, xs) = (carry_T, stack(y_0 … y_{T-1}))`` with
        ``(carry_{t+1}, y_t) = body(consts, carry_t, xs[t])`` (t running backwards when
        ``reverse``). Every iteration's equations then get structure rules like any other, so a
        stacked parameter's slice t is a per-layer parameter and a parameter read by the body
        is weight sharing across iterations.
        """
        params = eqn.params
        body, n_consts, n_carry = params["jaxpr"], params["num_consts"], params["num_carry"]
        consts, carry, xs = ins[:n_consts], ins[n_consts:n_consts + n_carry], ins[n_consts + n_carry:]
        length = params["length"]
        ys: list = [None] * length
        for t in (reversed(range(length)) if params["reverse"] else range(length)):
            x_t = [self.call(lambda a, t=t: jax.lax.index_in_dim(a, t, keepdims=False), [x])[0] for x in xs]
            out = self.lower(body.jaxpr, tuple(body.consts), list(consts) + list(carry) + x_t)
            carry, ys[t] = out[:n_carry], out[n_carry:]
        stacked = [self.call(lambda *a: jax.numpy.stack(a), [y[j] for y in ys])[0] for j in range(len(ys[0]))]
        return list(carry) + stacked

    def split_slices(self, eqn, ins: list) -> list:
        """A linear ``split`` (``jnp.split``, one equation with several outputs) as one ``slice``
        per output, which structure rules read one at a time.

        Identity: ``split(x, sizes, axis)[k] = slice_in_dim(x, o_k, o_k + sizes[k], axis=axis)``
        with ``o_k = sizes[0] + … + sizes[k-1]``.
        """
        axis, sizes = eqn.params["axis"], [int(s) for s in eqn.params["sizes"]]
        starts = np.cumsum([0] + sizes[:-1]).tolist()
        pieces = lambda a: [jax.lax.slice_in_dim(a, o, o + n, axis=axis) for o, n in zip(starts, sizes)]
        return self.call(pieces, ins)

    def lower(self, jaxpr, consts, inputs: list) -> list:
        env: dict = {}
        for v, c in zip(jaxpr.constvars, consts):
            var = self.new_var(v.aval)
            self.consts[var] = c
            env[v] = var
        for v, x in zip(jaxpr.invars, inputs):
            env[v] = x
        for eqn in jaxpr.eqns:
            ins = [self.read(env, a) for a in eqn.invars]
            if eqn.primitive.name in INLINE:
                body, body_consts = _body(eqn)
                outs = self.lower(body, body_consts, ins)
            elif eqn.primitive.name == "scan" and self.keepable(eqn, ins):
                outs = self.keep_loop(eqn, ins)
            elif eqn.primitive.name == "scan" and self.unrollable(eqn, ins):
                outs = self.unroll_scan(eqn, ins)
            elif eqn.primitive.name == "cond" and self.is_linear(ins):
                outs = self.select_branches(eqn, ins)
            elif eqn.primitive.name == "split" and self.is_linear(ins):
                outs = self.split_slices(eqn, ins)
            else:
                outs = [self.new_var(v.aval) for v in eqn.outvars]
                linear = any(isinstance(x, Var) and x in self.linear for x in ins)
                if linear:
                    self.linear.update(outs)
                self.eqns.append(Eqn(
                    primitive=eqn.primitive, inputs=tuple(ins), outputs=tuple(outs),
                    params=dict(eqn.params), linear=linear, source=_source(eqn),
                ))
            for v, out in zip(eqn.outvars, outs):
                env[v] = out
        return [self.read(env, a) for a in jaxpr.outvars]


def lower(f: Callable, params: Any, x: Any, kwargs: dict[str, Any], *, loops: bool = True) -> tuple[Graph, Any]:
    """Linearize ``f(params, x, **kwargs)`` w.r.t. ``params`` and lower it to a :class:`Graph`.

    ``params``, ``x`` and ``kwargs`` may be arrays or ``jax.ShapeDtypeStruct``. Returns the graph
    and the tree structure of ``f``'s output. ``loops`` keeps linear scans whole
    (:meth:`_Lowering.keep_loop`); without it they are unrolled.
    """
    out_tree = []

    def linear_outputs(p, xx, kw, tangent):
        _, jvp = jax.linearize(lambda q: f(q, xx, **kw), p)
        out = jvp(tangent)
        leaves, tree = jax.tree_util.tree_flatten(out)
        out_tree.append(tree)
        return leaves

    closed = jax.make_jaxpr(linear_outputs)(params, x, kwargs, params)
    lowering = _Lowering(loops=loops)
    n_primal = len(jax.tree_util.tree_leaves((params, x, kwargs)))
    inputs = [lowering.new_var(v.aval) for v in closed.jaxpr.invars]
    tangents = inputs[n_primal:]
    lowering.linear.update(tangents)
    lowering.tangents.update((t, leaf) for leaf, t in enumerate(tangents))
    outputs = [lowering.consumed(o, tangents) for o in lowering.lower(closed.jaxpr, closed.consts, inputs)]
    graph = Graph(
        primal_inputs=tuple(inputs[:n_primal]), tangent_inputs=tuple(tangents),
        consts=lowering.consts, eqns=tuple(lowering.eqns), outputs=tuple(outputs),
    )
    return graph, out_tree[0]


def lower_linear(fn: Callable, theta: Any, other: Any) -> Graph:
    """Lower ``fn(theta, other)``, already linear in the array ``theta``, without linearizing.

    ``theta`` becomes the graph's single tangent input, so its primitives are seen exactly as
    written (used to test structure rules one primitive at a time).
    """
    closed = jax.make_jaxpr(fn)(theta, other)
    lowering = _Lowering()
    inputs = [lowering.new_var(v.aval) for v in closed.jaxpr.invars]
    lowering.linear.add(inputs[0])
    outputs = lowering.lower(closed.jaxpr, closed.consts, inputs)
    return Graph(
        primal_inputs=tuple(inputs[1:]), tangent_inputs=(inputs[0],),
        consts=lowering.consts, eqns=tuple(lowering.eqns), outputs=tuple(outputs),
    )


def lower_plain(fn: Callable, *args: Any) -> Graph:
    """Trace ``fn(*args)`` (no linearization) into a flat :class:`Graph` without tangent inputs:
    every input leaf is a primal input and every equation is primal. Used to emit source for
    computations that are not part of the linear program (factor recipes, ``f`` itself)."""
    closed = jax.make_jaxpr(fn)(*args)
    lowering = _Lowering()
    inputs = [lowering.new_var(v.aval) for v in closed.jaxpr.invars]
    outputs = lowering.lower(closed.jaxpr, closed.consts, inputs)
    return Graph(primal_inputs=tuple(inputs), tangent_inputs=(), consts=lowering.consts,
                 eqns=tuple(lowering.eqns), outputs=tuple(outputs))


def read_closed(closed) -> Graph:
    """A ``jcore.ClosedJaxpr`` (e.g. a ``scan`` body or a ``cond`` branch found in an equation's
    params) as a :class:`Graph` without tangent inputs, calls inlined. Nothing is traced."""
    lowering = _Lowering()
    inputs = [lowering.new_var(v.aval) for v in closed.jaxpr.invars]
    outputs = lowering.lower(closed.jaxpr, closed.consts, inputs)
    return Graph(primal_inputs=tuple(inputs), tangent_inputs=(), consts=lowering.consts,
                 eqns=tuple(lowering.eqns), outputs=tuple(outputs))


def bind(eqn: Eqn, values: list) -> list:
    """Evaluate one equation on concrete (or traced) values; always returns a list."""
    out = eqn.primitive.bind(*values, **eqn.params)
    return list(out) if eqn.primitive.multiple_results else [out]


def is_primitive(value) -> bool:
    """Whether a value (e.g. an equation parameter such as ``select_prim``) is a JAX primitive."""
    return isinstance(value, jcore.Primitive)


def literal_value(lit: Lit):
    return lit.array()


def infer_outputs(eqn: Eqn) -> list[tuple[tuple[int, ...], Any]]:
    """(shape, dtype) of each output, re-derived by abstract evaluation (for the verifier)."""
    var_pos = [i for i, v in enumerate(eqn.inputs) if isinstance(v, Var)]

    def apply(*xs):
        vals = [v.value if isinstance(v, Lit) else None for v in eqn.inputs]
        for i, x in zip(var_pos, xs):
            vals[i] = x
        return bind(eqn, vals)

    structs = [jax.ShapeDtypeStruct(eqn.inputs[i].shape, eqn.inputs[i].dtype) for i in var_pos]
    outs = jax.eval_shape(apply, *structs)
    return [(tuple(o.shape), o.dtype) for o in outs]


def is_tracer(value) -> bool:
    """Whether ``value`` is a tracer of an enclosing transformation (e.g. a constant ``f`` closes
    over inside a ``jax.jit``): a program holding one is valid only inside that trace."""
    return isinstance(value, jax.core.Tracer)


def holds_tracers(graph: Graph) -> bool:
    """Whether a lowered graph's constants (those of its kept loops' bodies included) hold
    tracers of an enclosing transformation."""
    return any(is_tracer(v) for v in graph.consts.values())

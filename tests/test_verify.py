"""The verifier: it passes after every pass on every zoo model, and each invariant it states
(:data:`ntkc.ir.verify.INVARIANTS`) is caught by a mutation of a valid compilation that breaks
that invariant alone."""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkc.backends.operands import operand_shapes
from ntkc.errors import DenseFallbackWarning, IRError
from ntkc.ir.graph import Var
from ntkc.ir.verify import INVARIANTS, verify
from ntkc.passes.pipeline import compile_plan
from ntkc.problem import build_problem
from ntkc.testing import ZOO


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in sorted(ZOO)])
def test_verifier_passes_after_every_pass(name):
    """Per example (batch-coupled models: whole batches), x2 given."""
    inst = ZOO[name].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    vmap = 0 if ZOO[name].batch_independent else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DenseFallbackWarning)
        problem = build_problem(inst.f, inst.x1, inst.x2, inst.params, dict(inst.kwargs), trace_axes=(),
                                diagonal_axes=(), vmap_axes=vmap)
        comp = compile_plan(problem, inst.params, check=True)
    assert comp.kernels and all(k.flops is not None for k in comp.kernels)


@functools.lru_cache(maxsize=None)
def _compiled(name: str):
    inst = ZOO[name].make(jax.random.PRNGKey(0), dtype=jnp.float32)
    problem = build_problem(inst.f, inst.x1, inst.x2, inst.params, dict(inst.kwargs), trace_axes=(),
                            diagonal_axes=(), vmap_axes=0)
    comp = compile_plan(problem, inst.params)
    verify(comp, operand_shapes=operand_shapes)
    return comp


def _side(comp, **changes):
    return comp.replace(sides=(dataclasses.replace(comp.sides[0], **changes),) + comp.sides[1:])


def _graph(comp, **changes):
    return _side(comp, graph=dataclasses.replace(comp.sides[0].graph, **changes))


def _use(comp, index, **changes):
    uses = list(comp.sides[0].uses)
    uses[index] = dataclasses.replace(uses[index], **changes)
    return _side(comp, uses=tuple(uses))


def _kernel(comp, **changes):
    return comp.replace(kernels=(dataclasses.replace(comp.kernels[0], **changes),) + comp.kernels[1:])


def _term(comp, index, contraction):
    terms = list(comp.kernels[0].terms)
    terms[index] = dataclasses.replace(terms[index], contraction=contraction)
    return _kernel(comp, terms=tuple(terms))


def _first_linear(graph):
    return next(i for i, e in enumerate(graph.eqns) if e.linear)


def _wrong_output_shape(comp):
    graph = comp.sides[0].graph
    i = _first_linear(graph)
    eqn = graph.eqns[i]
    out = eqn.outputs[0]
    bad = Var(id=10**6, shape=tuple(out.shape) + (7,), dtype=out.dtype)
    return _graph(comp, eqns=graph.eqns[:i] + (dataclasses.replace(eqn, outputs=(bad,)),) + graph.eqns[i + 1:])


def _wrong_loop_length(comp):
    graph = comp.sides[0].graph
    i = next(i for i, e in enumerate(graph.eqns) if e.loop is not None)
    eqn = graph.eqns[i]
    loop = dataclasses.replace(eqn.loop, length=eqn.loop.length + 1)
    return _graph(comp, eqns=graph.eqns[:i] + (dataclasses.replace(eqn, loop=loop),) + graph.eqns[i + 1:])


def _flip_linear(comp):
    graph = comp.sides[0].graph
    i = _first_linear(graph)
    return _graph(comp, eqns=graph.eqns[:i] + (dataclasses.replace(graph.eqns[i], linear=False),) + graph.eqns[i + 1:])


def _other_leaf(comp):
    use = comp.sides[0].uses[0]
    return _use(comp, 0, leaf=(use.leaf + 1) % len(comp.theta_shapes))


def _broken_chain(comp):
    use = comp.sides[0].uses[0]
    unrelated = next(e for e in comp.sides[0].graph.eqns if use.eqn.outputs[0] not in e.inputs and e is not use.eqn)
    return _use(comp, 0, eqns=(use.eqn, unrelated), factor_eqns=use.factor_eqns)


def _use_with_factor(comp):
    return next(i for i, u in enumerate(comp.sides[0].uses) if u.form.factors)


def _repeated_label(comp):
    i = next(i for i, u in enumerate(comp.sides[0].uses) if len(u.form.out_labels) >= 2)
    form = comp.sides[0].uses[i].form
    out = (form.out_labels[0],) * len(form.out_labels)
    return _use(comp, i, form=dataclasses.replace(form, out_labels=out))


def _factor_change(comp, **changes):
    i = _use_with_factor(comp)
    form = comp.sides[0].uses[i].form
    first = dataclasses.replace(form.factors[0], **changes)
    return _use(comp, i, form=dataclasses.replace(form, factors=(first,) + form.factors[1:]))


def _wrong_factor_size(comp):
    i = _use_with_factor(comp)
    spec = comp.sides[0].uses[i].form.factors[0]
    return _factor_change(comp, shape=(spec.shape[0] + 1,) + tuple(spec.shape[1:]))


def _missing_target(comp):
    return _side(comp, targets=comp.sides[0].targets[1:])


def _unsummed_target(comp):
    """The backend now keeps a broadcast axis the plan's cotangent operand summed out."""
    targets = list(comp.sides[0].targets)
    i = next(i for i, t in enumerate(targets) if t.summed)
    targets[i] = dataclasses.replace(targets[i], summed=())
    return _side(comp, targets=tuple(targets))


def _relabel_batch(comp):
    term = comp.kernels[0].terms[0]
    batch = comp.kernels[0].result[0]
    ops = tuple(dataclasses.replace(op, labels=tuple("q" if l == batch else l for l in op.labels))
                for op in term.contraction.operands)
    return _term(comp, 0, dataclasses.replace(term.contraction, operands=ops))


def _bad_path(comp):
    term = comp.kernels[0].terms[0]
    return _term(comp, 0, dataclasses.replace(term.contraction, path=((0, 99),)))


def _reversed_output(comp):
    term = comp.kernels[0].terms[0]
    return _term(comp, 0, dataclasses.replace(term.contraction, output=tuple(reversed(term.contraction.output))))


def _undefined_output(comp):
    graph = comp.sides[0].graph
    ghost = Var(id=10**6, shape=(1,), dtype=np.float32)
    return _graph(comp, outputs=(ghost,) + graph.outputs[1:])


#: invariant -> (zoo model, mutation of its compilation breaking that invariant).
MUTATIONS = {
    "defined-before-use": ("mlp", lambda c: _graph(c, eqns=tuple(reversed(c.sides[0].graph.eqns)))),
    "single-definition": ("mlp", lambda c: _graph(c, eqns=c.sides[0].graph.eqns + c.sides[0].graph.eqns[-1:])),
    "linear-flag": ("mlp", _flip_linear),
    "abstract-eval": ("mlp", _wrong_output_shape),
    "loop-signature": ("scan_mlp", _wrong_loop_length),
    "graph-outputs": ("mlp", _undefined_output),
    "use-reads-theta": ("mlp", _other_leaf),
    "use-chain": ("mlp", _broken_chain),
    "form-labels": ("mlp", _repeated_label),
    "label-sizes": ("mlp", _wrong_factor_size),
    "known-recipe": ("mlp", lambda c: _factor_change(c, recipe="no_such_recipe")),
    "targets": ("mlp", _missing_target),
    "result-shape": ("mlp", lambda c: _kernel(c, result_shape=tuple(n + 1 for n in c.kernels[0].result_shape))),
    "contraction-output": ("mlp", _relabel_batch),
    "contraction-path": ("mlp", _bad_path),
    "term-output": ("mlp", _reversed_output),
    "operand-shape": ("layer_norm_mlp", _unsummed_target),
    "shared": ("mlp", lambda c: _kernel(c, shared=())),
}


def test_every_invariant_has_a_mutation():
    assert sorted(MUTATIONS) == sorted(INVARIANTS)


@pytest.mark.parametrize("invariant", sorted(MUTATIONS))
def test_a_mutation_breaking_one_invariant_is_caught(invariant):
    name, mutate = MUTATIONS[invariant]
    broken = mutate(_compiled(name))
    with pytest.raises(IRError) as caught:
        verify(broken, after="mutation", operand_shapes=operand_shapes)
    assert caught.value.invariant == invariant, str(caught.value)
    assert "after pass 'mutation'" in str(caught.value)

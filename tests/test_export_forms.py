"""Exported source in JAX's public vocabulary (:mod:`ntkc.export.public_forms`).

Every primitive of the rule samples, and of programs for the primitives they lack, is written as
a public ``jax.lax`` / ``jax.numpy`` call — never ``bind`` — that computes what the traced
program computes, and that calls only functions and keyword arguments the running JAX has. CI
runs this file under the oldest JAX ``pyproject.toml`` allows as well as the newest, so together
they check the range.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ntkc.export.equations import ConstantPool, Names, graph_lines
from ntkc.export.module import PRELUDE
from ntkc.export.public_forms import conv_specs
from ntkc.export.versions import OLDEST_JAX, runs_on
from ntkc.ir.from_jaxpr import lower_plain
from rule_samples import SAMPLES

ROOT = pathlib.Path(__file__).parents[1]


def exported(fn, *args) -> tuple[str, list]:
    """(the source of ``g(*leaves)`` computing ``fn(*args)``'s leaves, the leaves)."""
    leaves, tree = jax.tree_util.tree_flatten(args)
    specs = [jax.ShapeDtypeStruct(np.shape(leaf), jnp.result_type(leaf)) for leaf in leaves]
    graph = lower_plain(lambda *ls: jax.tree_util.tree_leaves(fn(*jax.tree_util.tree_unflatten(tree, ls))), *specs)
    pool = ConstantPool()
    params = [f"a{i}" for i in range(len(leaves))]
    lines, outs = graph_lines(graph, Names(pool), params, "    ")
    source = "\n".join([PRELUDE, *pool.lines, "", f"def g({', '.join(params)}):", *lines,
                        f"    return [{', '.join(outs)}]", ""])
    return source, leaves


def check_calls(source: str) -> None:
    """Every ``lax.*`` / ``jnp.*`` / ``jax.*`` call names a function of this JAX, with keyword
    arguments its signature has and no more positional arguments than it takes."""
    roots = {"lax": jax.lax, "jnp": jax.numpy, "jax": jax}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        chain, target = [], node.func
        while isinstance(target, ast.Attribute):
            chain.insert(0, target.attr)
            target = target.value
        if not isinstance(target, ast.Name) or target.id not in roots:
            continue
        obj = roots[target.id]
        for attr in chain:
            assert hasattr(obj, attr), f"{target.id}.{'.'.join(chain)} does not exist in jax {jax.__version__}"
            obj = getattr(obj, attr)
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        kinds = {p.kind for p in signature.parameters.values()}
        name = f"{target.id}.{'.'.join(chain)}"
        if inspect.Parameter.VAR_KEYWORD not in kinds:
            for keyword in node.keywords:
                assert keyword.arg in signature.parameters, \
                    f"{name} has no argument {keyword.arg!r} in jax {jax.__version__}"
        if inspect.Parameter.VAR_POSITIONAL not in kinds:
            positional = [p for p in signature.parameters.values()
                          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            assert len(node.args) <= len(positional), f"{name} takes {len(positional)} positional arguments"


def assert_exports_exactly(fn, *args) -> str:
    source, leaves = exported(fn, *args)
    assert ".bind(" not in source, source
    check_calls(source)
    namespace: dict = {}
    exec(compile(source, "exported.py", "exec"), namespace)
    want = jax.tree_util.tree_leaves(fn(*jax.tree_util.tree_map(jnp.asarray, args)))
    got = namespace["g"](*leaves)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=1e-6, atol=1e-12, err_msg=source)
    return source


@pytest.mark.parametrize("name, sample", [pytest.param(n, s, id=f"{n}-{s.id}") for n in sorted(SAMPLES) for s in SAMPLES[n]])
def test_rule_samples_export_as_public_calls(name, sample):
    try:
        jax.eval_shape(sample.fn, sample.theta, sample.other)
    except AttributeError as e:  # a sample of a function newer than this JAX (lax.tile)
        pytest.skip(f"jax {jax.__version__}: {e}")
    assert_exports_exactly(sample.fn, sample.theta, sample.other)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _pool(x, padding):
    return lax.reduce_window(x, -jnp.inf, lax.max, (2, 2), (2, 1), padding)


#: Programs for the primitives and parameters the rule samples do not reach: id -> (fn, args).
PROGRAMS = {
    "cumsum-reverse": (lambda x: lax.cumsum(x, axis=1, reverse=True), (_x(3, 4),)),
    "cummax": (lambda x: lax.cummax(x, axis=0), (_x(3, 4),)),
    "argmax": (lambda x: jnp.argmax(x, axis=1), (_x(3, 4),)),
    "sort-two-operands": (lambda x: lax.sort((x, 2 * x), dimension=0, num_keys=1), (_x(3, 4),)),
    "top_k": (lambda x: lax.top_k(x, 2), (_x(3, 4),)),
    "clamp": (lambda x: lax.clamp(np.float32(-0.5), x, np.float32(0.5)), (_x(3, 4),)),
    "dynamic_slice": (lambda x, i: lax.dynamic_slice(x, (i, np.int32(0)), (2, 3)), (_x(4, 4), np.int32(1))),
    "dynamic_update_slice": (lambda x, u, i: lax.dynamic_update_slice(x, u, (i, np.int32(1))),
                             (_x(4, 4), _x(2, 2, seed=1), np.int32(2))),
    "reduce_precision": (lambda x: lax.reduce_precision(x, 5, 10), (_x(3, 4),)),
    "bfloat16-sum": (lambda x: lax.reduce(x.astype(jnp.bfloat16), jnp.bfloat16(0), lax.add, (0,)), (_x(3, 4),)),
    "float16-max": (lambda x: jnp.max(x.astype(jnp.float16), axis=0), (_x(3, 4),)),
    "int-sum-and-max": (lambda x: (jnp.sum((x > 0).astype(jnp.int32), axis=0, dtype=jnp.int32),
                                   jnp.max((10 * x).astype(jnp.int32), axis=1)), (_x(3, 4),)),
    "any-all": (lambda x: (jnp.any(x > 0, axis=0), jnp.all(x > -1, axis=1)), (_x(3, 4),)),
    "int-div-rem": (lambda x: (lax.div((10 * x).astype(jnp.int32), np.int32(3)),
                               lax.rem((10 * x).astype(jnp.int32), np.int32(3))), (_x(3, 4),)),
    "round": (lambda x: (lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN), jnp.round(x), jnp.floor(x)), (_x(3, 4),)),
    "iota": (lambda x: x + lax.iota(np.float32, 4) + lax.broadcasted_iota(np.float32, (3, 4), 0), (_x(3, 4),)),
    "pow-atan2-select": (lambda x: (lax.pow(jnp.abs(x), x), lax.atan2(x, x + 1),
                                    lax.select_n((x > 0).astype(jnp.int32) + (x > 1), x, -x, 2 * x)), (_x(3, 4),)),
    "split-stack-tile": (lambda x: (*jnp.split(x, [1, 3], axis=1), jnp.stack([x, x], axis=1), jnp.tile(x, (2, 1))),
                         (_x(3, 4),)),
    "square-bitcast": (lambda x: (jnp.square(x), lax.bitcast_convert_type(x, jnp.int32)), (_x(3, 4),)),
    "integer_pow": (lambda x: (x ** 3, 1 / x ** 2), (_x(3, 4) + 3,)),
    "while-cond-scan": (lambda x: (lax.while_loop(lambda c: c[1] < 3, lambda c: (jnp.sin(c[0]), c[1] + 1), (x, 0))[0],
                                   lax.cond(x.sum() > 0, jnp.cos, jnp.sin, x),
                                   lax.scan(lambda c, r: (c * r, c + r), x[0], x, reverse=True, unroll=2)), (_x(3, 4),)),
    "scan-without-xs": (lambda x: lax.scan(lambda c, _: (jnp.tanh(c), c), x, None, length=3), (_x(3, 4),)),
    "conv-nchw-groups-dilated": (lambda x, w: lax.conv_general_dilated(x, w, (1, 2), ((1, 0), (2, 1)), lhs_dilation=(2, 1),
                                                                     rhs_dilation=(1, 2), feature_group_count=2),
                                 (_x(2, 4, 5, 6), _x(6, 2, 3, 2, seed=1))),
    "conv-same-valid": (lambda x, w: (lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")),
                                      lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NWHC", "OIWH", "NCWH"))),
                        (_x(2, 5, 6, 3), _x(3, 3, 3, 3, seed=1))),
    "max-pool-tangent-and-gradient": (lambda x, t: (jax.jvp(lambda a: _pool(a, "SAME"), (x,), (t,))[1],
                                                    jax.vjp(lambda a: _pool(a, "VALID"), x)[1](jnp.ones((2, 4), jnp.float32))[0]),
                                      (_x(4, 5), _x(4, 5, seed=1))),
    "gather-fill-and-scatters": (lambda x, i: (x.at[i].get(mode="fill", fill_value=0.0), x.at[i].set(1.0),
                                               x.at[i].mul(2.0), x.at[i].min(0.0), x.at[i].max(0.0), x.at[i].add(x[0])),
                                 (_x(4, 3), np.array([0, 2, 5], np.int32))),
    "expand-and-broadcast": (lambda x: (x[:, None, :] * x[None], lax.broadcast_in_dim(x, (3, 2, 4), (0, 2))),
                             (_x(3, 4),)),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_programs_export_as_public_calls(name):
    fn, args = PROGRAMS[name]
    assert_exports_exactly(fn, *args)


def test_calls_read_as_written_and_pass_only_non_default_arguments():
    fn, args = PROGRAMS["conv-same-valid"]
    source = assert_exports_exactly(fn, *args)
    assert "lax.conv_general_dilated(a0, a1, (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))" in source
    # spatial axes are named in the kernel's order: ('NWHC', 'OIWH', 'NCWH') says the same
    assert "lax.conv_general_dilated(a0, a1, (1, 1), 'VALID', dimension_numbers=('NHWC', 'OIHW', 'NCHW'))" in source
    source = assert_exports_exactly(lambda x, w: jnp.tanh(x @ w).sum(0), _x(3, 4), _x(4, 5, seed=1))
    assert re.search(r"lax\.dot_general\(a0, a1, \(\(\(1,\), \(0,\)\), \(\(\), \(\)\)\)\)", source), source
    assert "lax.tanh(" in source and "jnp.sum(" in source
    for placement in ("sharding", "precision=None", "preferred_element_type", "accuracy"):
        assert placement not in source


def test_conv_specs_are_strings_where_strings_say_the_same():
    assert conv_specs(lax.ConvDimensionNumbers((0, 2, 1), (2, 1, 0), (0, 2, 1)), 3) == ("NWC", "WIO", "NWC")
    assert conv_specs(lax.ConvDimensionNumbers((0, 1, 2, 3), (0, 1, 3, 2), (0, 1, 2, 3)), 4) is None
    for specs in (("NHWC", "HWIO", "NHWC"), ("NCHW", "OIHW", "NCHW"), ("NWHC", "OIWH", "NCWH")):
        dn = lax.conv_dimension_numbers((1,) * 4, (1,) * 4, specs)
        assert lax.conv_dimension_numbers((1,) * 4, (1,) * 4, conv_specs(dn, 4)) == dn


def test_the_header_states_the_jax_that_wrote_it_and_the_range():
    assert f"jax {OLDEST_JAX} and later" in "\n".join(runs_on({}))
    assert f"jax {jax.__version__} only" in "\n".join(runs_on({"x is bound": None}))
    assert "jax 0.4.31 and later" in "\n".join(runs_on({"batching dimensions": "0.4.31"}))
    assert f'"jax>={OLDEST_JAX}"' in (ROOT / "pyproject.toml").read_text()

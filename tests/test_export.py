"""Exported standalone source: written from the program that runs, it equals the float64 oracle in
an interpreter where ntkc cannot be imported, eagerly and under ``jax.jit``, for every zoo model
and method; it keeps the traced program's dtypes and its loops; it is deterministic and readable."""

from __future__ import annotations

import ast
import pathlib
import pickle
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.export import plan_source
from ntkc.testing import ZOO
from reference import oracle_ntk
from zoo_cases import assert_equal_to_oracle, instance, oracle

METHODS = tuple(ntkc.METHODS)
RUNNER = pathlib.Path(__file__).with_name("exported_runner.py")


def scaled_attention(p, x):
    """Attention scaled by ``1 / np.sqrt(d)``: a NumPy float64 constant in a float32 program."""
    q, k = x @ p["q"], x @ p["k"]
    s = jnp.einsum("...td,...sd->...ts", q, k) / np.sqrt(4)
    return (jax.nn.softmax(s) @ x).mean(-2) @ p["o"]


def while_model(p, x):
    """A ``while`` with a data-dependent trip count: every method computes forward mode."""
    def body(carry):
        h, i = carry
        return jnp.tanh(h @ p["w"]), i + 1

    h, _ = jax.lax.while_loop(lambda c: (c[1] < 3) & (jnp.sum(c[0]) < 100.0), body, (x @ p["a"], 0.0))
    return h @ p["o"]


def _extra():
    rng = np.random.default_rng(1)
    normal = lambda *s: (rng.normal(size=s) / np.sqrt(s[0])).astype(np.float32)
    return {
        "scaled_attention": (scaled_attention, {n: normal(4, 4) for n in "qko"},
                             rng.normal(size=(3, 5, 4)).astype(np.float32), rng.normal(size=(2, 5, 4)).astype(np.float32)),
        "while_model": (while_model, {"a": normal(3, 4), "w": normal(4, 4), "o": normal(4, 2)},
                        rng.normal(size=(3, 3)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32)),
    }


def _cases(names):
    """(file, f, params, x1, x2, kwargs, vmap axes, float64 oracle) of every model and method."""
    cases = []
    for name in names:
        if name in ZOO:
            index = sorted(ZOO).index(name)
            inst = instance(name, jnp.float32)
            vmap = ZOO[name].batch_independent
            same = index % 4 == 0  # a quarter of the models export with x2 = None
            f, params, x1, x2, kwargs = inst.f, inst.params, inst.x1, None if same else inst.x2, inst.kwargs
            ref = oracle(name, vmap=vmap, same=same)
        else:
            f, params, x1, x2 = _extra()[name]
            kwargs, vmap = {}, True
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = oracle_ntk(f, x1, x2, params, trace_axes=(), vmap_axis=(0, 0),
                                 forward=name == "while_model")
        method = ROTATION[sorted(ZOO).index(name) % len(ROTATION) if name in ZOO else 0]
        cases.append((f"{name}_{method}.py", f, params, x1, x2, kwargs, 0 if vmap else None, ref, method))
    return cases


#: One method per model, in turn (every method's exporter also runs on every model in
#: ``tests/portable_modules.py``'s full cross and in the other export tests).
ROTATION = tuple(METHODS)


def _run_without_ntkc(folder, inputs: dict, x64: bool) -> dict:
    """Run the modules of ``folder`` in a fresh interpreter that cannot import ntkc."""
    (folder / "inputs.pkl").write_bytes(pickle.dumps(inputs))
    command = [sys.executable, str(RUNNER), str(folder)] + (["--x64"] if x64 else [])
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return pickle.loads((folder / "results.pkl").read_bytes())


#: Zoo models (and the two extra models) in groups; one fresh interpreter runs a group.
GROUPS = [sorted(ZOO)[i::4] + [["scaled_attention", "while_model"][i % 2]] for i in range(4)]


@pytest.mark.parametrize("names", GROUPS, ids=lambda names: f"{names[0]}+{len(names) - 1}")
def test_exported_source_equals_the_oracle_without_ntkc(names, tmp_path):
    """Every model with one method in turn: the module, written in public jax.lax / jax.numpy
    calls (no ``bind``) and run where ntkc cannot be imported, under jax.jit, equals the float64 oracle. Eagerly too for the group's first model, one method per group in
    rotation (an eager run of an exported module costs several times its jitted run)."""
    inputs, expected = {}, {}
    group = GROUPS.index(names)
    for i, (file, f, params, x1, x2, kwargs, vmap, ref, method) in enumerate(_cases(names)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ntkc.MethodFallbackWarning)
            plan = ntkc.plan(f, params, x1, x2, trace_axes=(), vmap_axes=vmap, method=method, **kwargs)
        source = plan_source(plan, kwargs)
        assert ".bind(" not in source, f"{file}: a primitive written with bind, not its public call"
        (tmp_path / file).write_text(source)
        inputs[file] = (*jax.tree_util.tree_map(np.asarray, (x1, x2, params)), i == group % len(METHODS))
        dtype = jax.tree_util.tree_leaves(jax.eval_shape(lambda p, x: f(p, x, **kwargs), params, x1))[0].dtype
        expected[file] = (ref, dtype)
    results = _run_without_ntkc(tmp_path, inputs, x64=jax.config.jax_enable_x64)
    assert set(results) == set(expected)
    for file, (ref, dtype) in expected.items():
        eager, jitted = results[file]
        assert_equal_to_oracle(jitted, ref, dtype, f"{file}: jit", precision=np.float32)
        if inputs[file][-1]:
            assert_equal_to_oracle(eager, ref, dtype, f"{file}: eager", precision=np.float32)


GENERATE = """
import pathlib, sys, warnings
import numpy as np, ntkc
from ntkc.export import plan_source
sys.path.insert(0, {tests!r})
import test_export
folder = pathlib.Path(sys.argv[1])
for name in ("scaled_attention", "while_model"):
    f, params, x1, x2 = test_export._extra()[name]
    for method in ntkc.METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = ntkc.plan(f, params, x1, x2, trace_axes=(), vmap_axes=0, method=method)
        (folder / f"{{name}}_{{method}}.py").write_text(plan_source(plan))
"""


def test_modules_generated_and_run_with_jax_defaults_equal_the_oracle(tmp_path):
    """Generated where 64-bit types are off (the default) and run there: a float64 NumPy constant
    in a float32 program stays float32, and a ``while`` model runs in forward mode."""
    script = GENERATE.format(tests=str(pathlib.Path(__file__).parent))
    env = {k: v for k, v in __import__("os").environ.items() if k != "JAX_ENABLE_X64"}
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                         timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    inputs, expected = {}, {}
    for name, (f, params, x1, x2) in _extra().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = oracle_ntk(f, x1, x2, params, trace_axes=(), vmap_axis=(0, 0), forward=name == "while_model")
        for method in METHODS:
            file = f"{name}_{method}.py"
            assert "jax_enable_x64" not in (tmp_path / file).read_text(), f"{file} needs 64-bit types"
            inputs[file] = (x1, x2, params, method == "structured")
            expected[file] = ref
    results = _run_without_ntkc(tmp_path, inputs, x64=False)
    for file, ref in expected.items():
        eager, jitted = results[file]
        assert_equal_to_oracle(jitted, ref, np.float32, f"{file}: jit")
        if inputs[file][-1]:
            assert_equal_to_oracle(eager, ref, np.float32, f"{file}: eager")


def _scan_over_layers(depth):
    rng = np.random.default_rng(0)
    params = {"inp": rng.normal(size=(3, 4)), "w": rng.normal(size=(depth, 4, 4)) / 2,
              "b": rng.normal(size=(depth, 4)), "head": rng.normal(size=(4, 2))}
    layer = lambda h, wb: (jnp.tanh(h @ wb[0] + wb[1]), None)
    return lambda p, x: jax.lax.scan(layer, x @ p["inp"], (p["w"], p["b"]))[0] @ p["head"], params


@pytest.mark.parametrize("method", METHODS)
def test_a_scan_over_layers_exports_one_loop_at_any_depth(method):
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    lengths = []
    for depth in (4, 64):
        f, params = _scan_over_layers(depth)
        source = plan_source(ntkc.plan(f, params, x, None, trace_axes=(), vmap_axes=0, method=method))
        lengths.append(len(source.splitlines()))
        assert "lax.scan(" in source
    assert lengths[0] == lengths[1]
    namespace = {}
    exec(compile(source, "ntk_generated.py", "exec"), namespace)
    want = oracle_ntk(f, x, None, params, trace_axes=(), vmap_axis=(0, 0))
    assert_equal_to_oracle(namespace["ntk"](x, None, params), want, np.float64, method)


def _three_layer_mlp():
    def mlp(params, x):
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return x @ w + b

    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    sizes = [4, 16, 16, 3]
    params = [(jax.random.normal(k, (m, n)) / m ** 0.5, jnp.zeros(n)) for k, m, n in zip(keys, sizes, sizes[1:])]
    return mlp, params, jax.random.normal(keys[0], (5, 4)), jax.random.normal(keys[1], (3, 4))


def test_source_is_deterministic_readable_and_imports_only_jax_and_numpy():
    f, params, x1, x2 = _three_layer_mlp()
    c = ntkc.compile(f, params, x1, x2, vmap_axes=0, method="structured")
    source = c.source()
    ntkc.plan.cache_clear()
    assert ntkc.compile(f, params, x1, x2, vmap_axes=0, method="structured").source() == source
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(f"{node.module}.{a.name}" for a in node.names)
    assert imported == {"jax", "jax.numpy", "numpy", "jax.lax"}
    for text in ("Predicted cost", "lax.dot_general(", "jnp.einsum(", "params[0][0] via dot_general", "FLOPs",
                 "def operands(", "jax.vmap(operands"):
        assert text in source
    namespace = {}
    exec(compile(source, "ntk_generated.py", "exec"), namespace)
    want = oracle_ntk(f, x1, x2, params, vmap_axis=(0, 0))
    assert_equal_to_oracle(namespace["ntk"](x1, x2, params), want, x1.dtype, "exec in-process")


def test_exported_module_checks_its_arguments():
    f, params, x1, x2 = _three_layer_mlp()
    namespace = {}
    exec(ntkc.compile(f, params, x1, None, vmap_axes=0, method="jacobian").source(), namespace)
    with pytest.raises(ValueError, match=r"`x1` leaf 0 is \w+\[6, 4\], but the kernel was compiled for \w+\[5, 4\]"):
        namespace["ntk"](jnp.ones((6, 4)), None, params)
    with pytest.raises(ValueError, match="`params` has 5 leaves, but the kernel was compiled for 6"):
        namespace["ntk"](x1, None, params[:-1] + [(params[-1][0],)])
    with pytest.raises(ValueError, match="`x2` was None at compile time"):
        namespace["ntk"](x1, x1, params)


def test_unexportable_output_node_is_a_clear_error():
    class Out:
        def __init__(self, y):
            self.y = y

    jax.tree_util.register_pytree_node(Out, lambda o: ((o.y,), None), lambda _, c: Out(*c))
    f = lambda p, x: Out(x @ p)
    c = ntkc.compile(f, jnp.ones((3, 2)), jnp.ones((4, 3)), None, method="jacobian")
    with pytest.raises(ntkc.ExportError, match="output pytree node Out has no source form"):
        c.source()


def test_cli_export_writes_a_module_that_runs(tmp_path, capsys):
    from ntkc.cli import load_model, main

    model = pathlib.Path(__file__).parents[1] / "examples" / "mlp_model.py"
    out = tmp_path / "ntk_generated.py"
    assert main(["export", str(model), "-o", str(out), "--method", "structured", "--trace-axes", ""]) == 0
    assert "wrote" in capsys.readouterr().out
    import runpy

    f, params, x1, _ = load_model(str(model))
    got = runpy.run_path(str(out))["ntk"](x1, None, params)
    assert got.shape == (8, 8, 10, 10)
    assert_equal_to_oracle(got, oracle_ntk(f, x1, None, params, trace_axes=(), vmap_axis=(0, 0)), x1.dtype, "cli")
    with pytest.raises(SystemExit, match="--method must be one of"):
        main(["export", str(model), "-o", str(out), "--method", "fastest"])

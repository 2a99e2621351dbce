"""Exported standalone source: equal to the compiled kernel in an interpreter without ntkc,
eagerly and under ``jax.jit``, for every zoo model and method; deterministic; readable."""

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
from ntkc.backends.source_eqns import ExportError
from ntkc.testing import ZOO

METHODS = ("structured", "jacobian", "ntvp")
RUNNER = pathlib.Path(__file__).with_name("exported_runner.py")


def _compiled(name: str, method: str, single_side: bool):
    inst = ZOO[name].make(jax.random.PRNGKey(0))
    vmap = 0 if ZOO[name].batch_independent else None
    x2 = None if single_side else inst.x2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no zoo model needs a dense fallback
        c = ntkc.compile(inst.f, inst.params, inst.x1, x2, trace_axes=(), vmap_axes=vmap, method=method,
                         **inst.kwargs)
    return c, (inst.x1, x2, inst.params)


def _assert_same(got, want, what):
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        scale = float(np.max(np.abs(w))) or 1.0
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * scale, err_msg=what)


#: Zoo models in groups; one fresh interpreter runs a group (importing JAX costs seconds).
GROUPS = [sorted(ZOO)[i::8] for i in range(8)]


@pytest.mark.parametrize("names", GROUPS, ids=lambda names: "+".join(names))
def test_exported_source_equals_compiled_kernel_without_ntkc(names, tmp_path):
    """Every zoo model × method: the exported module, run where ntkc cannot be imported, under
    jax.jit, equals the compiled kernel; so does running it eagerly — for one method per model,
    in rotation, so each method's module runs eagerly on a third of the zoo (eager execution
    costs 3–5× a jit, so all 114 eager runs would dominate the suite). A quarter of the models
    export with x2=None; serialization round-trips are checked on one method per model, in
    rotation."""
    expected, inputs = {}, {}
    for name in names:
        index = sorted(ZOO).index(name)
        for method in METHODS:
            c, args = _compiled(name, method, single_side=index % 4 == 0)
            file = f"{name}_{method}.py"
            c.export(tmp_path / file)
            expected[file] = jax.tree_util.tree_map(np.asarray, c(*args))
            rotation = METHODS[index % len(METHODS)]
            inputs[file] = (*jax.tree_util.tree_map(np.asarray, args), method == rotation)
            if rotation == method:
                restored = ntkc.deserialize(c.serialize())
                _assert_same(restored(*args), expected[file], f"{file}: deserialized")
    (tmp_path / "inputs.pkl").write_bytes(pickle.dumps(inputs))
    run = subprocess.run([sys.executable, str(RUNNER), str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = pickle.loads((tmp_path / "results.pkl").read_bytes())
    assert set(results) == set(expected)
    for file, want in expected.items():
        eager, jitted = results[file]
        _assert_same(jitted, want, f"{file}: jit")
        if inputs[file][-1]:
            _assert_same(eager, want, f"{file}: eager")


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


def test_source_is_deterministic_short_and_imports_only_jax_and_numpy():
    f, params, x1, x2 = _three_layer_mlp()
    c = ntkc.compile(f, params, x1, x2, vmap_axes=0, method="structured")
    source = c.source()
    again = ntkc.compile(f, params, x1, x2, vmap_axes=0, method="structured").source()
    assert source == again
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(f"{node.module}.{a.name}" for a in node.names)
    assert imported == {"jax", "jax.numpy", "numpy", "jax.lax"}
    assert len(source.splitlines()) < 160
    for text in ("Predicted cost", "lax.dot_general(", "jnp.einsum(", "params[0][0] via dot_general", "FLOPs",
                 "def linear(deltas)"):
        assert text in source
    namespace = {}
    exec(compile(source, "ntk_generated.py", "exec"), namespace)
    _assert_same(namespace["ntk"](x1, x2, params), c(x1, x2, params), "exec in-process")


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
    with pytest.raises(ExportError, match="output pytree node Out has no source form"):
        c.source()


def test_cli_export_writes_a_module_that_runs(tmp_path, capsys):
    from ntkc.cli import main

    model = pathlib.Path(__file__).parents[1] / "examples" / "mlp_model.py"
    out = tmp_path / "ntk_generated.py"
    assert main(["export", str(model), "-o", str(out), "--method", "structured", "--trace-axes", ""]) == 0
    assert "wrote" in capsys.readouterr().out
    import runpy

    from ntkc.cli import load_model

    f, params, x1, _ = load_model(str(model))
    got = runpy.run_path(str(out))["ntk"](x1, None, params)
    assert got.shape == (8, 8, 10, 10)
    _assert_same(got, ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method="structured")(x1, None, params), "cli export")
    with pytest.raises(SystemExit, match="--method must be one of"):
        main(["export", str(model), "-o", str(out), "--method", "fastest"])

"""Exported modules across JAX versions: write them under one JAX, run them under another.

``python tests/portable_modules.py write DIR [--rotation]`` exports every zoo model × method
(with ``--rotation``: one method per model, in turn) under this interpreter's JAX into ``DIR``,
with each module's inputs (``inputs.pkl``, as :mod:`exported_runner` reads them) and its float64
oracle kernel (``expected.pkl``).

``python tests/portable_modules.py check DIR`` runs those modules in one fresh interpreter of
this Python that cannot import ntkc (:mod:`exported_runner`, under ``jax.jit``), compares every
kernel with its oracle, prints one line per failure and ``N passed, M failed``, and exits
non-zero on any failure or on a module that uses ``bind``.

CI writes under the newest JAX and checks under the oldest ``pyproject.toml`` allows, and the
reverse.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import pickle
import subprocess
import sys
import warnings

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
# As in the tests (conftest.py): values, not speed, so XLA compiles at level 0 (the runner inherits it).
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import ntkc  # noqa: E402
from ntkc.export import plan_source  # noqa: E402
from ntkc.testing import ZOO  # noqa: E402
from zoo_cases import assert_equal_to_oracle, instance, oracle  # noqa: E402


def cases(rotation: bool):
    """(module file, zoo name, method): every model × method, or one method per model in turn."""
    methods = list(ntkc.METHODS)
    for i, name in enumerate(sorted(ZOO)):
        for method in [methods[i % len(methods)]] if rotation else methods:
            yield f"{name}_{method}.py", name, method


def write(folder: pathlib.Path, rotation: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    inputs, expected = {}, {}
    for file, name, method in cases(rotation):
        inst, vmap = instance(name, jnp.float32), ZOO[name].batch_independent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = ntkc.plan(inst.f, inst.params, inst.x1, inst.x2, trace_axes=(), vmap_axes=0 if vmap else None,
                             method=method, **inst.kwargs)
        (folder / file).write_text(plan_source(plan, inst.kwargs))
        inputs[file] = (*jax.tree_util.tree_map(np.asarray, (inst.x1, inst.x2, inst.params)), False)
        dtype = jax.tree_util.tree_leaves(jax.eval_shape(lambda p, x: inst.f(p, x, **inst.kwargs),
                                                         inst.params, inst.x1))[0].dtype
        expected[file] = (jax.tree_util.tree_map(np.asarray, oracle(name, vmap=vmap, same=False)), np.dtype(dtype))
    (folder / "inputs.pkl").write_bytes(pickle.dumps(inputs))
    (folder / "expected.pkl").write_bytes(pickle.dumps({"jax": jax.__version__, "kernels": expected}))
    print(f"wrote {len(inputs)} modules under jax {jax.__version__} to {folder}")


def check(folder: pathlib.Path) -> int:
    written = pickle.loads((folder / "expected.pkl").read_bytes())
    run = subprocess.run([sys.executable, str(HERE / "exported_runner.py"), str(folder), "--x64"],
                         capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:
        print(run.stderr[-4000:])
        print(f"0 passed, {len(written['kernels'])} failed")
        return 1
    results = pickle.loads((folder / "results.pkl").read_bytes())
    failed = []
    for file, (ref, dtype) in sorted(written["kernels"].items()):
        if ".bind(" in (folder / file).read_text():
            failed.append(f"{file}: a primitive is written with bind")
            continue
        try:
            assert_equal_to_oracle(results[file][1], ref, dtype, file, precision=np.float32)
        except AssertionError as e:
            failed.append(f"{file}: {str(e).strip().splitlines()[0]}")
    for line in failed:
        print(f"FAILED {line}")
    print(f"modules written under jax {written['jax']}, run under jax {jax.__version__}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["write", "check"])
    parser.add_argument("folder", type=pathlib.Path)
    parser.add_argument("--rotation", action="store_true", help="one method per model, in turn")
    args = parser.parse_args(argv)
    if args.command == "write":
        write(args.folder, args.rotation)
        return 0
    return check(args.folder)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

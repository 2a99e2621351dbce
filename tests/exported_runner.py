"""Run exported NTK modules in an interpreter that cannot import ntkc (used by test_export.py).

Usage: ``python exported_runner.py DIR [--x64]``. ``DIR/inputs.pkl`` maps a module file name to
``(x1, x2, params, eager)``; every module's ``ntk`` runs under ``jax.jit``, and also eagerly when
``eager`` is true; the results go to ``DIR/results.pkl`` as ``{file: (eager or None, jitted)}``
(NumPy leaves). JAX runs with its defaults (64-bit types off, as in a user's environment) unless
``--x64`` is given (modules generated with 64-bit types on need it).
"""

import importlib.abc
import pathlib
import pickle
import runpy
import sys


class BlockNtkc(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ntkc" or name.startswith("ntkc."):
            raise ImportError(f"{name} is blocked: exported modules must not need ntkc")
        return None


def main(directory: str, x64: bool = False) -> None:
    sys.meta_path.insert(0, BlockNtkc())
    try:
        import ntkc  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("ntkc is importable; the check would be meaningless")
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", x64)

    folder = pathlib.Path(directory)
    inputs = pickle.loads((folder / "inputs.pkl").read_bytes())
    results = {}
    as_numpy = lambda tree: jax.tree_util.tree_map(np.asarray, tree)
    for name, (x1, x2, params, eager) in sorted(inputs.items()):
        ntk = runpy.run_path(str(folder / name))["ntk"]
        results[name] = (as_numpy(ntk(x1, x2, params)) if eager else None, as_numpy(jax.jit(ntk)(x1, x2, params)))
    (folder / "results.pkl").write_bytes(pickle.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], x64="--x64" in sys.argv[2:])

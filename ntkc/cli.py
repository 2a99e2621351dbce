"""Command-line interface: ``ntkc demo``, ``ntkc report path/to/model.py[:factory]``,
``ntkc export path/to/model.py[:factory] -o ntk_generated.py``, ``ntkc matrix
path/to/model.py[:factory] --x1 x1.npy --out K.npy --memory 4GB`` and ``ntkc bench [--quick]``.

A model file defines a factory (default name ``model``) returning ``(f, params, x)`` or
``(f, params, x1, x2)``; arrays or ``jax.ShapeDtypeStruct`` (symbolic shapes welcome).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # every option belongs to benchmarks/run.py
        return run_bench(argv[1:])
    parser = argparse.ArgumentParser(prog="ntkc", description="Finite-width NTK compiler for JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bench", help="The benchmarks of a clone's benchmarks/ (see ntkc bench --help).")
    demo = sub.add_parser("demo", help="NTK of a wide MLP with many outputs, every method timed side by side.")
    demo.add_argument("--batch", type=int, default=4, help="examples per side (default 4)")
    demo.add_argument("--repeats", type=int, default=5, help="timed runs per method (default 5)")
    demo.add_argument("--export", default=None, help="where to write the exported module (default: a temp dir)")
    report = sub.add_parser("report", help="Predicted cost of every method for a model (nothing is run).")
    _model_options(report)
    report.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    report.add_argument("--no-xla", action="store_true", help="skip XLA's FLOP count of each program")
    export = sub.add_parser("export", help="Compile a model's NTK and write it as a standalone JAX module.")
    _model_options(export)
    export.add_argument("-o", "--output", default="ntk_generated.py", help="file to write (default ntk_generated.py)")
    export.add_argument("--method", default="auto", help="structured, jacobian, ntvp or auto (default)")
    matrix = sub.add_parser("matrix", help="A dataset's kernel, tile by tile, into a .npy file (resumable).")
    _model_options(matrix)
    matrix.add_argument("--x1", default=None, help="x1 as a .npy file (default: the factory's x1)")
    matrix.add_argument("--x2", default=None, help="x2 as a .npy file (default: none, the kernel of x1 with itself)")
    matrix.add_argument("--out", required=True, help="the kernel's .npy file (a directory for a pytree output)")
    matrix.add_argument("--memory", default=None, help="budget of one tile, e.g. 4GB, 512MiB (default: half the "
                                                       "available memory)")
    matrix.add_argument("--block-size", type=int, default=None, help="examples per tile (default: from the budget)")
    matrix.add_argument("--method", default="auto", help="structured, jacobian, ntvp or auto (default)")
    matrix.add_argument("--dtype", default=None, help="the kernel's dtype (default: the model's)")
    args = parser.parse_args(argv)
    if args.command == "report":
        return run_report(args)
    if args.command == "export":
        return run_export(args)
    if args.command == "matrix":
        return run_matrix(args)
    if args.command == "demo":
        from ntkc.demo import run_demo

        return run_demo(batch=args.batch, repeats=args.repeats, export_path=args.export)
    parser.error(f"unknown command {args.command!r}")
    return 2


def _model_options(parser) -> None:
    parser.add_argument("model", help="path/to/model.py[:factory]; the factory returns (f, params, x[, x2])")
    parser.add_argument("--trace-axes", default="-1", help="comma-separated ints, '' for none (default -1)")
    parser.add_argument("--diagonal-axes", default="", help="comma-separated ints (default none)")
    parser.add_argument("--vmap-axes", default="0", help="int, or 'none' (default 0)")
    parser.add_argument("--dims", default="", help="names for sizes, e.g. W=512,O=10")


def _axes(args) -> dict:
    return dict(trace_axes=_ints(args.trace_axes, "--trace-axes"),
                diagonal_axes=_ints(args.diagonal_axes, "--diagonal-axes"),
                vmap_axes=None if args.vmap_axes.lower() == "none" else int(args.vmap_axes))


def run_bench(argv: list[str]) -> int:
    """``ntkc bench [--quick] ...``: ``benchmarks/run.py`` of the clone this package is installed from."""
    import importlib.util
    import pathlib

    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
    if not script.is_file():
        raise SystemExit(f"ntkc bench: no {script}; the benchmarks live in a clone of the repository "
                         "(git clone ..., then pip install -e \".[bench]\" in it)")
    spec = importlib.util.spec_from_file_location("ntkc_bench_run", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise SystemExit(f"ntkc: {option} must be comma-separated ints, got {text!r}") from None


def _dims(text: str) -> dict[str, int]:
    dims = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        if not name.isidentifier() or not value.strip().isdigit():
            raise SystemExit(f"ntkc: --dims entries look like W=512, got {item!r}")
        dims[name] = int(value)
    return dims


def load_model(spec: str):
    """``path.py[:factory]`` -> the factory's ``(f, params, x1, x2)``."""
    import importlib.util
    import pathlib

    path, _, factory = spec.partition(":")
    if not pathlib.Path(path).is_file():
        raise SystemExit(f"ntkc: no model file {path!r}")
    module_spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    factory = factory or "model"
    if not callable(getattr(module, factory, None)):
        raise SystemExit(f"ntkc: {path} defines no callable {factory!r} (pass path.py:factory)")
    made = getattr(module, factory)()
    if not isinstance(made, tuple) or len(made) not in (3, 4):
        raise SystemExit(f"ntkc: {factory}() must return (f, params, x) or (f, params, x1, x2)")
    f, params, x1, *rest = made
    return f, params, x1, (rest[0] if rest else None)


def _symbolic(tree) -> bool:
    import jax

    return any(not all(isinstance(d, int) for d in getattr(leaf, "shape", ()))
               for leaf in jax.tree_util.tree_leaves(tree))


def run_report(args) -> int:
    from ntkc.report import cost_report

    f, params, x1, x2 = load_model(args.model)
    symbolic = _symbolic((params, x1, x2))
    report = cost_report(f, params, x1, x2, **_axes(args), dims=_dims(args.dims), xla=not (args.no_xla or symbolic))
    print({"text": str, "markdown": lambda r: r.markdown(), "json": lambda r: r.json()}[args.format](report))
    return 0


def run_export(args) -> int:
    from ntkc.api import valid_methods
    from ntkc.compiled import compile as compile_ntk

    f, params, x1, x2 = load_model(args.model)
    if _symbolic((params, x1, x2)):
        raise SystemExit("ntkc: export needs concrete shapes; the factory returned symbolic ones")
    if args.method not in valid_methods():
        raise SystemExit(f"ntkc: --method must be one of {', '.join(valid_methods())}, got {args.method!r}")
    compiled = compile_ntk(f, params, x1, x2, **_axes(args), method=args.method, dims=_dims(args.dims))
    source = compiled.export(args.output)
    print(f"wrote {args.output}: {len(source.splitlines())} lines, method {compiled.method!r}; "
          f"use it as `from {args.output.rsplit('/', 1)[-1].removesuffix('.py')} import ntk`")
    return 0


def memory_size(text: str | None) -> int | None:
    """``4GB``, ``512MiB``, ``1e9`` -> bytes (K/M/G/T decimal; KiB/MiB/GiB/TiB binary).

    >>> memory_size("2GiB"), memory_size("1.5GB"), memory_size("1000")
    (2147483648, 1500000000, 1000)
    """
    if text is None:
        return None
    units = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
             "T": 10**12, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    number = text.strip()
    digits = number.rstrip("aAbBgGiIkKmMtT ")
    unit = number[len(digits):].strip().upper()
    try:
        return int(float(digits) * units[unit])
    except (ValueError, KeyError):
        raise SystemExit(f"ntkc: --memory looks like 4GB, 512MiB or a number of bytes, got {text!r}") from None


def run_matrix(args) -> int:
    import jax
    import numpy as np

    from ntkc.api import valid_methods
    from ntkc.tiling import ntk_matrix, tile_plan

    f, params, x1, x2 = load_model(args.model)
    if _symbolic((params, x1, x2)):
        raise SystemExit("ntkc: matrix needs concrete shapes; the factory returned symbolic ones")
    if args.method not in valid_methods():
        raise SystemExit(f"ntkc: --method must be one of {', '.join(valid_methods())}, got {args.method!r}")
    x1 = np.load(args.x1, mmap_mode="r") if args.x1 else x1
    x2 = np.load(args.x2, mmap_mode="r") if args.x2 else (None if args.x1 else x2)
    axes = _axes(args)
    if axes["vmap_axes"] is None:
        raise SystemExit("ntkc: matrix tiles examples, so it needs --vmap-axes (an int)")
    options = dict(**axes, method=args.method, memory_limit=memory_size(args.memory), block_size=args.block_size)
    try:
        print(tile_plan(f, params, x1, x2, **options))
        kernel = ntk_matrix(f, params, x1, x2, **options, out=args.out, dtype=args.dtype)
    except (ValueError, FileExistsError) as error:
        raise SystemExit(f"ntkc: {error}") from None
    shapes = [np.shape(leaf) for leaf in jax.tree_util.tree_leaves(kernel)]
    print(f"wrote {args.out}: {', '.join(str(s) for s in shapes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The NTK as an operator (``ntkc.ntk_operator``): kernel regression dense against matrix-free,
the mode the cost model picks, and the top of the spectrum.

Usage:
    python benchmarks/ntk_operator.py regression --model mlp --n 2000 --mode dense
    python benchmarks/ntk_operator.py regression --model mlp --n 2000 --mode matrix_free
    python benchmarks/ntk_operator.py regression --model mlp --n 2000 --mode matrix_free --rank 10
    python benchmarks/ntk_operator.py regression --model cnn --n 2000 --mode matrix_free --predict
    python benchmarks/ntk_operator.py choice --model mlp --n 1000 2000 5000 10000 20000 --products 600
    python benchmarks/ntk_operator.py spectrum --n 5000                 # MLP, untraced: N·O = 50,000
    python benchmarks/ntk_operator.py spectrum --n 500 --check          # against eigvalsh(op.to_dense())
    python benchmarks/ntk_operator.py plot --results docs/operator.jsonl --out docs/figures/spectrum.png
    python benchmarks/ntk_operator.py tables --results docs/operator.jsonl   # the Markdown tables
    python benchmarks/ntk_operator.py all --out docs/operator.jsonl     # every point, one process each

``regression``: kernel regression at the end of training (``t = None``) with
``ntkc.predict.gradient_descent_mse`` on the traced kernel (``trace_axes=(-1,)``, the 10 logits
averaged) of a ``tiled_models`` model: ``n`` training inputs, 500 test inputs, targets
``y (n, 10)`` from a teacher (the same architecture, other random parameters), the network's
own outputs as ``fx_train_0`` and ``fx_test_0``, ``diag_reg`` relative (neural-tangents':
``diag_reg · trace / n``), ``rtol`` for conjugate gradients. ``k_train_train`` is
``ntk_operator(f, params, x_train, mode=...)`` and ``k_test_train`` is
``ntk_operator(f, params, x_test, x_train, mode=...)``, both ``dense`` (the tiled matrix,
``ntk_matrix``; Cholesky) or both ``matrix_free`` (Nyström-preconditioned CG; one product for
the test predictions), ``memory_limit`` 2 GiB. It reports, as one JSON line: the wall time of
the whole prediction (operator construction, the regularizer's trace, the matrix for dense,
the solve, the test predictions) and of its phases, peak memory (``VmHWM``; ``RssAnon``
sampled every 20 ms, next to its baseline), the relative residual ``‖(K + λI) x − b‖ / ‖b‖``
of the training solve from one extra product (largest over the 10 right-hand sides), CG's
iterations and the vectors its products took, the relative difference of the test
predictions from the other mode's (when that point has run: ``--save``), and the choice an
``auto`` operator makes for this problem priced for the products the solve took
(matrix-free), or for what the solve expects (dense: rank + 50 per right-hand side). With
``--rank r`` the training solve is ``(op + λ·ntkc.identity).solve(b, preconditioner_rank=r)``
and the test predictions ``op_test @ x`` — what ``predict_fn`` computes at ``t = None``,
with a preconditioner of another rank (``predict_fn`` takes the default, 100). ``--predict``
times one product of 10 vectors instead and predicts the matrix-free solve from it.

``choice``: the mode ``ntk_operator(..., mode="auto", expected_products=p)`` picks for the
same problem at each ``n``, with both modes' predicted seconds (one tile plan and one chunk
compiled, nothing run).

``spectrum``: the 10 largest eigenvalues of the untraced kernel (``trace_axes=()``) of the MLP
on ``n`` inputs (``N·O`` rows), matrix-free, ``op.eigvalsh(10, return_bounds=True)``: time,
products, memory, residual bounds; ``--check`` also computes ``numpy.linalg.eigvalsh`` of
``op.to_dense()`` (built tile by tile) and each value's relative error against its bound.

``all`` runs every point in its own process, in order, appending each JSON line to ``--out``;
points predicted to take longer than ``--skip-over`` seconds (30 min) are recorded as skipped
with their prediction, not run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time
import warnings

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tiled_models  # noqa: E402
from tiled import AnonPeak  # noqa: E402
from worker import max_rss_mib  # noqa: E402

GIB = 2**30
N_TEST = 500
SAVE = pathlib.Path(tempfile.gettempdir()) / "ntkc_operator"


# -- instruments ----------------------------------------------------------------------------
class Instruments:
    """Wraps ntkc's internals (for this process) to time the phases of a prediction and count
    products: the regularizer's trace, kernels built tile by tile, solves, the solve's products
    (the Nyström sketch's, then conjugate gradients'), test predictions."""

    def __init__(self):
        import ntkc.linalg.solve as solving
        import ntkc.operator.core as core
        import ntkc.predict.gradient_descent as gd

        self.times: dict[str, float] = {}
        self.products: list[tuple[int, float]] = []  # (vectors, seconds) of every solve product
        self.kernels: list[dict] = []
        self.solves: list[tuple] = []  # (operator, b, x)
        self.cg_infos: list = []
        instruments = self

        def add(name, seconds):
            self.times[name] = self.times.get(name, 0.0) + seconds

        def timed_method(owner, name, phase):
            original = getattr(owner, name)

            def wrapper(*a, **k):
                t0 = time.perf_counter()
                try:
                    return original(*a, **k)
                finally:
                    add(phase, time.perf_counter() - t0)

            setattr(owner, name, wrapper)
            return original

        timed_method(core.NTKOperator, "trace", "trace_s")
        timed_method(gd._Predictor, "test_part", "test_s")
        timed_method(core.Held, "build", "build_s")

        kernel = core.Held.kernel

        def kernel_wrapper(held, **axes):
            t0 = time.perf_counter()
            out = kernel(held, **axes)
            self.kernels.append({"rows": held.rows1.n, "columns": held.rows2.n,
                                 "diagonal": bool(axes.get("diagonal_axes")), "s": time.perf_counter() - t0})
            return out

        core.Held.kernel = kernel_wrapper

        solve = core.NTKOperator.solve

        def solve_wrapper(op, b, **k):
            t0 = time.perf_counter()
            x = solve(op, b, **k)
            add("solve_s", time.perf_counter() - t0)
            self.solves.append((op, b, x))
            return x

        core.NTKOperator.solve = solve_wrapper

        host_product = solving.host_product

        def counting_host_product(op):
            product = host_product(op)

            def counted(v):
                t0 = time.perf_counter()
                out = product(v)
                instruments.products.append((v.shape[1], time.perf_counter() - t0))
                return out

            return counted

        solving.host_product = counting_host_product

        cg = solving.cg

        def cg_wrapper(*a, **k):
            x, info = cg(*a, **k)
            self.cg_infos.append(info)
            return x, info

        solving.cg = cg_wrapper


def memory_cap(gib: float) -> None:
    """Cap this process's address space: a point that would take more fails here (out of
    memory), not on the machine."""
    if gib:
        cap = int(gib * GIB)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def outputs(f, params, x, batch: int = 250):
    """``f(params, x)`` in batches of examples, as a NumPy array."""
    import jax
    import numpy as np

    g = jax.jit(f)
    return np.concatenate([np.asarray(g(params, x[i:i + batch])) for i in range(0, len(x), batch)])


def problem(model: str, n: int, n_test: int = N_TEST):
    """``(f, params, x_train, y_train, x_test)``: inputs and parameters of ``tiled_models``
    (seed 0; test inputs seed 2), targets from a teacher (seed 1's parameters), standardized."""
    f, params, x = tiled_models.make(model, n)
    _, teacher, _ = tiled_models.make(model, 1, seed=1)
    _, _, x_test = tiled_models.make(model, n_test, seed=2)
    y = outputs(f, teacher, x)
    return f, params, x, (y - y.mean()) / y.std(), x_test


def relative(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def choice_row(choice) -> dict:
    return {"mode": choice.mode, "products": choice.products, "dense_s": choice.dense_seconds,
            "matrix_free_s": choice.matrix_free_seconds, "reason": choice.reason}


def auto_choice(f, params, x, x2=None, *, products: int, memory: int, trace_axes=(-1,)) -> dict:
    import ntkc

    t0 = time.perf_counter()
    op = ntkc.ntk_operator(f, params, x, x2, trace_axes=trace_axes, mode="auto", memory_limit=memory,
                           expected_products=products)
    row = choice_row(op.choice)
    row["evaluated_s"] = time.perf_counter() - t0
    return row


# -- kernel regression ------------------------------------------------------------------------
def regression(model: str, n: int, mode: str, *, n_test: int, diag_reg: float, rtol: float, memory: int,
               rank: int | None, save: pathlib.Path | None) -> dict:
    import jax.numpy as jnp
    import numpy as np

    import ntkc
    from ntkc.linalg.solve import EXPECTED_ITERATIONS, default_rank

    f, params, x, y, x_test = problem(model, n, n_test)
    fx_train_0, fx_test_0 = outputs(f, params, x), outputs(f, params, x_test)
    tools = Instruments()
    with AnonPeak() as baseline_anon:
        time.sleep(0.1)
    caught = []
    start = time.perf_counter()
    with AnonPeak() as anon, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        op = ntkc.ntk_operator(f, params, x, mode=mode, memory_limit=memory)
        op_test = ntkc.ntk_operator(f, params, x_test, x, mode=mode, memory_limit=memory)
        if rank is None:  # the user's call
            predict = ntkc.predict.gradient_descent_mse(op, y, diag_reg=diag_reg, rtol=rtol)
            _, test = predict(None, fx_train_0, fx_test_0, op_test)
        else:  # the same computation, with a preconditioner of this rank
            t0 = time.perf_counter()
            reg = diag_reg * op.trace() / op.shape[0]
            tools.times["trace_s"] = time.perf_counter() - t0
            solution = (op + reg * ntkc.identity).solve(jnp.asarray(y - fx_train_0), rtol=rtol,
                                                        preconditioner_rank=rank)
            t0 = time.perf_counter()
            test = fx_test_0 + np.asarray(op_test @ jnp.asarray(solution))
            tools.times["test_s"] = time.perf_counter() - t0
        test = np.asarray(test)
    wall = time.perf_counter() - start
    peak_rss = max_rss_mib()

    shifted, b, x_solved = tools.solves[-1]
    t0 = time.perf_counter()
    ax = np.asarray(shifted @ jnp.asarray(x_solved), np.float64)
    residual_s = time.perf_counter() - t0
    b64 = np.asarray(b, np.float64)
    per_column = np.linalg.norm(ax - b64, axis=0) / np.linalg.norm(b64, axis=0)
    rank_used = default_rank(op.shape[0]) if rank is None else rank
    vectors = sum(k for k, _ in tools.products)
    row = {"bench": "regression", "model": model, "n": n, "n_test": n_test, "mode": mode,
           "preconditioner_rank": rank_used if mode == "matrix_free" else None, "diag_reg": diag_reg,
           "regularizer": float(shifted.shift), "rtol": rtol, "memory_limit": memory,
           "wall_s": wall, **{k: v for k, v in sorted(tools.times.items())},
           "kernels": tools.kernels, "peak_rss_mib": peak_rss, "peak_anon_mib": anon.peak,
           "baseline_anon_mib": baseline_anon.peak,
           "residual": float(per_column.max()), "residual_s": residual_s,
           "cg_iterations": tools.cg_infos[-1].iterations if tools.cg_infos else None,
           "cg_residual": float(np.max(tools.cg_infos[-1].residuals)) if tools.cg_infos else None,
           "products": len(tools.products), "product_vectors": vectors,
           "sketch_s": tools.products[0][1] if tools.products else None,
           "cg_products_s": sum(s for _, s in tools.products[1:]) if tools.products else None,
           "product_log": [[k, round(s, 3)] for k, s in tools.products],
           "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught})}
    if shifted.mode == "dense" or shifted.shape[0] <= 10_000:  # in float64, from the (float32) matrix
        t0 = time.perf_counter()
        matrix = np.asarray(shifted._held.matrix if shifted.mode == "dense" else op.to_dense(), np.float64)
        solved = np.asarray(x_solved, np.float64)
        exact = matrix @ solved + row["regularizer"] * solved
        row["residual_float64"] = float(np.max(np.linalg.norm(exact - b64, axis=0) / np.linalg.norm(b64, axis=0)))
        row["residual_float64_s"] = time.perf_counter() - t0
        del matrix
    # what `auto` picks here, priced for the products this solve took (matrix-free) or expects (dense)
    columns = y.shape[1]
    expected = vectors if vectors else default_rank(n) + EXPECTED_ITERATIONS * columns
    row["choice"] = auto_choice(f, params, x, products=expected, memory=memory)
    row["choice_test"] = auto_choice(f, params, x_test, x, products=columns, memory=memory)
    if save is not None:  # the test predictions, against the other points' of this problem
        save.mkdir(parents=True, exist_ok=True)
        tag = mode + (f"_rank{rank}" if rank is not None else "")
        np.save(save / f"{model}_{n}_{tag}.npy", test)
        row["vs"] = {}
        for other in sorted(save.glob(f"{model}_{n}_*.npy")):
            other_tag = other.stem[len(f"{model}_{n}_"):]
            if other_tag != tag:
                reference = np.load(other)
                row["vs"][other_tag] = {"predictions": relative(test, reference),
                                        "kernel_term": relative(test - fx_test_0, reference - fx_test_0)}
    return row


def predict_regression(model: str, n: int, *, n_test: int, memory: int, rank: int | None, iterations: int,
                       probes: list[int]) -> dict:
    """The matrix-free regression's time predicted from products of 10 vectors timed at small
    sizes (``probes``, each after a first call that compiles it) and fitted as ``a + b·n``: the
    sketch (``rank`` vectors), ``iterations`` CG iterations of 10, CG's final residual product
    and the test product (10 vectors, counted as one training product)."""
    import jax
    import numpy as np

    import ntkc
    from ntkc.linalg.solve import default_rank

    measured = []
    for m in probes:
        f, params, x, y, _ = problem(model, m, n_test)
        op = ntkc.ntk_operator(f, params, x, mode="matrix_free", memory_limit=memory)
        v = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
        jax.block_until_ready(op @ v)
        t0 = time.perf_counter()
        jax.block_until_ready(op @ v)
        measured.append(time.perf_counter() - t0)
    slope, intercept = np.polyfit(probes, measured, 1) if len(probes) > 1 else (measured[0] / probes[0], 0.0)
    product = float(intercept + slope * n)
    rank = default_rank(n) if rank is None else rank
    k = y.shape[1]
    vectors = rank + (iterations + 2) * k
    f, params, x, _, _ = problem(model, n, n_test)
    return {"bench": "regression", "model": model, "n": n, "n_test": n_test, "mode": "matrix_free",
            "predicted": True, "preconditioner_rank": rank, "memory_limit": memory, "probes": probes,
            "probe_product_10_s": measured, "fit": [float(intercept), float(slope)], "product_10_s": product, "assumed_cg_iterations": iterations,
            "predicted_product_vectors": vectors, "predicted_s": product * vectors / k,
            "choice": auto_choice(f, params, x, products=vectors, memory=memory), "peak_rss_mib": max_rss_mib()}


# -- the cost model's choice over n -------------------------------------------------------------
def choices(model: str, ns: list[int], products: int, memory: int) -> list[dict]:
    rows = []
    for n in ns:
        f, params, x = tiled_models.make(model, n)
        row = {"bench": "choice", "model": model, "n": n, "memory_limit": memory, "matrix_bytes": 4 * n * n,
               **auto_choice(f, params, x, products=products, memory=memory)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        del x
    return rows


# -- the top of the spectrum -------------------------------------------------------------------
def spectrum(n: int, k: int, check: bool, top: int, memory: int) -> dict:
    import numpy as np

    import ntkc
    import ntkc.operator.core as core

    f, params, x = tiled_models.make("mlp", n)
    calls = []
    matvec = core.NTKOperator.matvec

    def counted(op, v):
        calls.append(v.shape[-1] if v.ndim > len(op.vector_shape) else 1)
        return matvec(op, v)

    core.NTKOperator.matvec = counted
    with AnonPeak() as baseline_anon:
        time.sleep(0.1)
    start = time.perf_counter()
    with AnonPeak() as anon, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        op = ntkc.ntk_operator(f, params, x, trace_axes=(), mode="matrix_free", memory_limit=memory)
        values, bounds = op.eigvalsh(k, return_bounds=True)
    wall = time.perf_counter() - start
    row = {"bench": "spectrum", "model": "mlp", "n": n, "rows": op.shape[0], "k": k, "mode": "matrix_free",
           "memory_limit": memory, "wall_s": wall, "products": len(calls), "product_vectors": sum(calls),
           "peak_rss_mib": max_rss_mib(), "peak_anon_mib": anon.peak, "baseline_anon_mib": baseline_anon.peak,
           "values": values.tolist(), "bounds": bounds.tolist(),
           "relative_bounds": (bounds / values).tolist(), "dense_matrix_gb": op.shape[0] ** 2 * 4 / 1e9,
           "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught})}
    row["choice"] = auto_choice(f, params, x, trace_axes=(), products=len(calls), memory=memory)
    if check:
        t0 = time.perf_counter()
        matrix = op.to_dense()
        row["to_dense_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        exact = np.linalg.eigvalsh(np.asarray(matrix, np.float64))[::-1]
        row["eigvalsh_s"] = time.perf_counter() - t0
        errors = np.abs(values - exact[:k])
        row.update(dense_values=exact[:top].tolist(), errors=errors.tolist(),
                   relative_errors=(errors / exact[:k]).tolist(), within_bounds=bool(np.all(errors <= bounds)),
                   trace=float(exact.sum()), top_share=float(exact[:k].sum() / exact.sum()),
                   symmetry=float(np.max(np.abs(matrix - matrix.T)) / np.max(np.abs(matrix))),
                   smallest=float(exact[-1]))
    return row


# -- tables -------------------------------------------------------------------------------------
def _s(value) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def tables(results: pathlib.Path) -> str:
    """The Markdown tables of ``docs/benchmarks.md`` from the JSON lines of ``all``."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    out = ["| model | N | mode | wall [s] | training kernel or sketch [s] | solve [s] | test predictions [s] "
           "| peak memory [MiB] | residual | CG iterations | test predictions vs dense |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    regression = {json.dumps([r["model"], r["n"], r["mode"], r.get("skipped")]): r for r in rows
                  if r.get("bench") == "regression" and not r.get("predicted")}.values()  # repeated rows once
    for r in sorted(regression, key=lambda r: (r["model"], r["n"], r["mode"])):
        if "skipped" in r:
            product = f"; 10-vector product {_s(r['product_10_s'])} s" if "product_10_s" in r else ""
            out.append(f"| {r['model']} | {r['n']:,} | {r['mode']} | predicted {_s(r['predicted_s'])}{product} "
                       f"(not run: over 30 min) | | | | | | | |")
            continue
        if "wall_s" not in r:
            why = r.get("stopped") or r.get("missing", "?")
            out.append(f"| {r['model']} | {r['n']:,} | {r['mode']} | not finished: {why} | | | | | | | |")
            continue
        train = sum(k["s"] for k in r.get("kernels", []) if k["rows"] == k["columns"] == r["n"] and not k["diagonal"])
        first = train if r["mode"] == "dense" else r.get("sketch_s")
        residual = r.get("residual_float64", r.get("residual"))
        vs = r.get("vs", {}).get("dense", {}).get("predictions")
        out.append(f"| {r['model']} | {r['n']:,} | {r['mode']} | {_s(r['wall_s'])} | {_s(first)} | "
                   f"{_s(r.get('solve_s'))} | {_s(r.get('test_s'))} | {r['peak_anon_mib'] - r['baseline_anon_mib']:,.0f} | "
                   f"{residual:.1e} | {r.get('cg_iterations') or '–'} | {'–' if vs is None else f'{vs:.1e}'} |")
    out += ["", "| model | memory budget | N | auto picks | dense [s] | matrix-free [s] |", "|---|---|---|---|---|---|"]
    for r in (r for r in rows if r.get("bench") == "choice"):
        budget = "2 GiB" if r["memory_limit"] <= 2**31 else "none"
        out.append(f"| {r['model']} | {budget} | {r['n']:,} | {r['mode']} | "
                   f"{_s(r['dense_s']) if r['dense_s'] is not None else 'does not fit'} | {_s(r['matrix_free_s'])} |")
    out += ["", "| N·O | wall [s] | products (vectors) | peak memory [MiB] | λ₁ … λ₁₀ | largest bound / λ "
            "| largest error / λ (dense check) |", "|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r.get("bench") == "spectrum" and "values" in r), key=lambda r: r["rows"]):
        values = ", ".join(f"{v:,.0f}" for v in (r["values"][0], r["values"][-1]))
        check = f"{max(r['relative_errors']):.1e} (within bounds: {r['within_bounds']})" if "errors" in r else "–"
        out.append(f"| {r['rows']:,} | {_s(r['wall_s'])} | {r['products']} ({r['product_vectors']}) | "
                   f"{r['peak_anon_mib'] - r['baseline_anon_mib']:,.0f} | {values} | {max(r['relative_bounds']):.1e} | {check} |")
    return "\n".join(out)


# -- the plot ------------------------------------------------------------------------------------
def plot(results: pathlib.Path, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("bench") == "spectrum" and "values" in r]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in sorted(rows, key=lambda r: r["n"]):
        if "dense_values" in r:
            dense = np.asarray(r["dense_values"])
            ax.semilogy(np.arange(1, len(dense) + 1), dense, "o-", ms=3, lw=1,
                        label=f"N·O = {r['rows']:,}: numpy eigvalsh of to_dense(), top {len(dense)}")
        values, bounds = np.asarray(r["values"]), np.asarray(r["bounds"])
        ax.errorbar(np.arange(1, len(values) + 1), values, yerr=bounds, fmt="x", ms=7, capsize=3,
                    label=f"N·O = {r['rows']:,}: matrix-free eigvalsh({len(values)}) ± residual bound")
    ax.set_xlabel("index i (largest first)")
    ax.set_ylabel("eigenvalue λ_i")
    ax.set_title("Untraced NTK of the 10-layer ReLU MLP (W = 512, O = 10)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(out)


# -- every point -----------------------------------------------------------------------------------
def point_args(kind: str, **kw) -> list[str]:
    args = [kind]
    for key, value in kw.items():
        if value is True:
            args.append(f"--{key.replace('_', '-')}")
        elif isinstance(value, (list, tuple)):
            args += [f"--{key.replace('_', '-')}"] + [str(v) for v in value]
        elif value is not None and value is not False:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


#: Rows already in ``all``'s output, by their point's arguments: ``all`` resumes, it does not rerun them.
DONE: dict[tuple, list[dict]] = {}


def source() -> dict:
    """The ntkc commit the points run, and whether ntkc/ differs from it."""
    def git(*a):
        return subprocess.run(["git", "-C", str(HERE.parent), *a], capture_output=True, text=True).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"), "ntkc_modified": bool(git("status", "--porcelain", "ntkc"))}


def run_point(args: list[str], timeout: float) -> list[dict]:
    if tuple(args) in DONE:
        return DONE[tuple(args)]
    tree = source()
    command = [sys.executable, str(pathlib.Path(__file__).resolve())] + args
    print("$ python benchmarks/ntk_operator.py " + " ".join(args), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{"args": args, "missing": f"stopped after {timeout:.0f} s", **tree}]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not rows:
        tail = (done.stderr.strip().splitlines() or [""])[-1][:300]
        oom = any(text in done.stderr for text in ("RESOURCE_EXHAUSTED", "MemoryError", "bad_alloc", "Out of memory"))
        return [{"args": args, "missing": "out of memory" if oom else f"exit {done.returncode}",
                 "detail": tail, "process_s": time.perf_counter() - t0, **tree}]
    for row in rows:
        row.update(args=args, process_s=time.perf_counter() - t0, **tree)
    return rows


#: Sizes at which ``--predict`` times a product of 10 vectors, per model.
PROBES = {"mlp": [1000, 2000], "cnn": [4, 8]}

#: The cost model's sweeps of ``all``: (model, memory_limit in GiB, sizes); 2**20 GiB stands for
#: an unbounded budget (the time-only comparison).
SWEEPS = [("mlp", 2.0, [1000, 2000, 5000, 10000, 20000, 23000, 24000, 50000]),
          ("mlp", 2.0**20, [10000, 50000, 200000, 500000, 1000000, 2000000, 3000000]),
          ("cnn", 2.0, [1000, 2000, 5000, 10000, 20000, 23000, 24000]),
          ("cnn", 2.0**20, [10000, 50000, 100000])]


def dense_prediction(row: dict, n: int) -> float:
    """A dense point's wall time at ``n`` from a measured one's phases: the training kernel
    scaled by n², the factorization by n³, the rest (the test kernel, the diagonal, products,
    construction) by n."""
    r = n / row["n"]
    train = sum(k["s"] for k in row["kernels"] if k["rows"] == k["columns"] == row["n"] and not k["diagonal"])
    factor = row["solve_s"] - train
    return train * r**2 + factor * r**3 + (row["wall_s"] - train - factor) * r


def everything(out: pathlib.Path, skip_over: float, timeout: float, models: list[str], ns: list[int],
               ranks: list[int | None], cap: float, save: pathlib.Path) -> None:
    """Every regression point, in order: for each model, the matrix-free product predicted
    from products timed at small sizes (once), then for each n each matrix-free point (one per
    preconditioner rank; None: ``predict_fn``'s default) unless its prediction (with the last
    measured CG iterations) is over ``skip_over``, then dense unless the last dense point of the
    model, its phases scaled to n (the kernel by n², the factorization by n³, the rest by n), is
    over it."""
    def emit(rows):
        written = set(out.read_text().splitlines()) if out.exists() else set()
        with out.open("a") as fh:
            for row in rows:
                if json.dumps(row) not in written:  # resumed: not twice
                    fh.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)

    for model in models:
        iterations, last_dense, fit = 50, None, None
        for n in ns:
            if fit is None:
                guess = run_point(point_args("regression", model=model, n=n, mode="matrix_free", predict=True,
                                             iterations=iterations, probes=PROBES[model],
                                             cap=cap), timeout)
                emit(guess)
                fit = guess[0].get("fit", [float("inf"), 0.0])
            product = fit[0] + fit[1] * n
            for rank in ranks:
                vectors = (rank or min(100, n // 4)) + (iterations + 2) * 10
                predicted = product * vectors / 10
                if predicted > skip_over:
                    emit([{"bench": "regression", "model": model, "n": n, "mode": "matrix_free",
                           "preconditioner_rank": rank or min(100, n // 4), "predicted_s": predicted,
                           "product_10_s": product, "assumed_cg_iterations": iterations,
                           "skipped": f"predicted {predicted:.0f} s > {skip_over:.0f} s"}])
                    continue
                rows = run_point(point_args("regression", model=model, n=n, mode="matrix_free", rank=rank, cap=cap,
                                            save=save), timeout)
                emit(rows)
                iterations = rows[0].get("cg_iterations") or iterations
            if last_dense is not None:
                predicted = dense_prediction(last_dense, n)
                if predicted > skip_over:
                    emit([{"bench": "regression", "model": model, "n": n, "mode": "dense", "predicted_s": predicted,
                           "skipped": f"predicted {predicted:.0f} s > {skip_over:.0f} s (the last point's phases, scaled)"}])
                    continue
            rows = run_point(point_args("regression", model=model, n=n, mode="dense", cap=cap, save=save), timeout)
            emit(rows)
            if "wall_s" in rows[0]:
                last_dense = rows[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="bench", required=True)
    r = sub.add_parser("regression", help="one kernel-regression point")
    r.add_argument("--model", choices=tiled_models.MODELS, default="mlp")
    r.add_argument("--n", type=int, required=True)
    r.add_argument("--mode", choices=("dense", "matrix_free"), required=True)
    r.add_argument("--n-test", type=int, default=N_TEST)
    r.add_argument("--diag-reg", type=float, default=1e-3, help="relative (default 1e-3)")
    r.add_argument("--rtol", type=float, default=1e-6)
    r.add_argument("--rank", type=int, default=None, help="solve with this preconditioner rank (op.solve)")
    r.add_argument("--predict", action="store_true", help="predict the matrix-free time from one product")
    r.add_argument("--iterations", type=int, default=50, help="CG iterations assumed by --predict")
    r.add_argument("--probes", type=int, nargs="+", default=None,
                   help="--predict: the sizes timed (default: 1000 2000 for the MLP, 4 8 for the CNN)")
    c = sub.add_parser("choice", help="the cost model's choice over n")
    c.add_argument("--model", choices=tiled_models.MODELS, default="mlp")
    c.add_argument("--n", type=int, nargs="+", required=True)
    c.add_argument("--products", type=int, default=600, help="expected products (default: rank 100 + 50 × 10)")
    s = sub.add_parser("spectrum", help="top eigenvalues of the untraced MLP kernel")
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--check", action="store_true", help="against numpy.linalg.eigvalsh(op.to_dense())")
    s.add_argument("--top", type=int, default=50, help="dense eigenvalues kept (--check)")
    t = sub.add_parser("tables", help="the Markdown tables of docs/benchmarks.md from the results")
    t.add_argument("--results", default="docs/operator.jsonl")
    g = sub.add_parser("plot", help="the spectrum figure from the results")
    g.add_argument("--results", default="docs/operator.jsonl")
    g.add_argument("--out", default="docs/figures/spectrum.png")
    a = sub.add_parser("all", help="every point, each in its own process")
    a.add_argument("--out", default="docs/operator.jsonl")
    a.add_argument("--models", nargs="+", default=list(tiled_models.MODELS))
    a.add_argument("--ns", type=int, nargs="+", default=[2000, 5000, 10000])
    a.add_argument("--ranks", nargs="*", default=["default", "50"],
                   help="matrix-free preconditioner ranks ('default': predict_fn's, 100; none: no matrix-free run)")
    a.add_argument("--skip-over", type=float, default=1800.0, help="seconds (default 30 min)")
    a.add_argument("--timeout", type=float, default=3600.0, help="a point's hard stop [s]")
    for q in (r, c, s, a):
        q.add_argument("--memory", type=float, default=2.0, help="memory_limit in GiB (default 2)")
        q.add_argument("--cap", type=float, default=12.0, help="address-space cap in GiB (0: none)")
    r.add_argument("--save", default=str(SAVE), help="test predictions saved here, compared across modes")
    args = p.parse_args()
    memory = int(args.memory * GIB) if hasattr(args, "memory") else None

    if args.bench == "tables":
        print(tables(pathlib.Path(args.results)))
        return
    if args.bench == "plot":
        plot(pathlib.Path(args.results), pathlib.Path(args.out))
        return
    if args.bench == "all":
        ranks = [None if r == "default" else int(r) for r in args.ranks]
        out = pathlib.Path(args.out)
        for line in out.read_text().splitlines() if out.exists() else []:
            row = json.loads(line)
            if "args" in row:
                DONE.setdefault(tuple(row["args"]), []).append(row)
        everything(out, args.skip_over, args.timeout, args.models, args.ns, ranks, args.cap, SAVE)
        points = [point_args("choice", model=model, n=ns, memory=gib, cap=0)
                  for model, gib, ns in SWEEPS if model in args.models]
        points += [point_args("spectrum", n=500, check=True, cap=args.cap), point_args("spectrum", n=5000, cap=args.cap)]
        for point in points:
            if tuple(point) in DONE:
                continue
            rows = run_point(point, args.timeout)
            with out.open("a") as fh:
                fh.writelines(json.dumps(row) + "\n" for row in rows)
        plot(pathlib.Path(args.out), HERE.parent / "docs" / "figures" / "spectrum.png")
        return
    memory_cap(args.cap)
    if args.bench == "choice":
        choices(args.model, args.n, args.products, memory)
    elif args.bench == "spectrum":
        print(json.dumps(spectrum(args.n, args.k, args.check, args.top, memory)), flush=True)
    elif args.predict:
        probes = args.probes or PROBES[args.model]
        print(json.dumps(predict_regression(args.model, args.n, n_test=args.n_test, memory=memory, rank=args.rank,
                                            iterations=args.iterations, probes=probes)), flush=True)
    else:
        row = regression(args.model, args.n, args.mode, n_test=args.n_test, diag_reg=args.diag_reg, rtol=args.rtol,
                         memory=memory, rank=args.rank, save=pathlib.Path(args.save) if args.save else None)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

"""``ntkc demo``: the NTK of a small CNN on CIFAR-shaped inputs with every method.

Computes the kernel with each registered method, checks they agree with each other, prints a
table of compile and run times (median of several runs after compilation) and the cost model's
prediction, then exports the structured kernel as a standalone module and runs it.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ntkc.api import ntk_fn
from ntkc.methods import METHODS


def cnn(params, x):
    """conv3x3(16) -> relu -> conv3x3(16, stride 2) -> relu -> global mean -> dense(10)."""
    dn = ("NHWC", "HWIO", "NHWC")
    h = jax.lax.conv_general_dilated(x, params["conv1"], (1, 1), "SAME", dimension_numbers=dn)
    h = jax.nn.relu(h + params["b1"])
    h = jax.lax.conv_general_dilated(h, params["conv2"], (2, 2), "SAME", dimension_numbers=dn)
    h = jax.nn.relu(h + params["b2"])
    return jnp.mean(h, axis=(1, 2)) @ params["dense"]


def init_cnn(key, channels: int = 16, classes: int = 10):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "conv1": jax.random.normal(k1, (3, 3, 3, channels)) / np.sqrt(27),
        "b1": jnp.zeros((channels,)),
        "conv2": jax.random.normal(k2, (3, 3, channels, channels)) / np.sqrt(9 * channels),
        "b2": jnp.zeros((channels,)),
        "dense": jax.random.normal(k3, (channels, classes)) / np.sqrt(channels),
    }


def time_kernel(kernel: Callable, *args, repeats: int = 5) -> tuple[float, float, jax.Array]:
    """(compile seconds, median run seconds, result) of ``jax.jit(kernel)(*args)``."""
    jitted = jax.jit(kernel)
    start = time.perf_counter()
    result = jax.block_until_ready(jitted(*args))
    compile_s = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(jitted(*args))
        runs.append(time.perf_counter() - start)
    return compile_s, statistics.median(runs), result


def export_and_run(params, x1, x2, path: str | None) -> bool:
    """Compile the structured kernel, export it as a standalone module, run the module, and
    print whether it equals the compiled kernel."""
    import pathlib
    import runpy
    import tempfile

    from ntkc.compiled import compile as compile_ntk

    compiled = compile_ntk(cnn, params, x1, x2, trace_axes=(), vmap_axes=0, method="structured")
    target = pathlib.Path(path) if path else pathlib.Path(tempfile.mkdtemp(prefix="ntkc_demo_")) / "ntk_generated.py"
    source = compiled.export(target)
    exported = runpy.run_path(str(target))["ntk"]
    got, want = np.asarray(jax.jit(exported)(x1, x2, params)), np.asarray(compiled(x1, x2, params))
    diff = float(np.max(np.abs(got - want)))
    same = diff <= 1e-5 * max(float(np.max(np.abs(want))), 1.0)
    print(f"\nexported the structured kernel to {target} ({len(source.splitlines())} lines, imports jax and "
          f"numpy only);\nrunning it gives the compiled kernel: {same} (max |diff| {diff:.2e})")
    return same


def run_demo(batch: int = 8, repeats: int = 5, seed: int = 0, export_path: str | None = None) -> int:
    """Print the comparison table; return a process exit code (0 if all methods agree)."""
    key_params, key_x1, key_x2 = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = init_cnn(key_params)
    x1 = jax.random.normal(key_x1, (batch, 32, 32, 3))
    x2 = jax.random.normal(key_x2, (batch, 32, 32, 3))
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
    print(f"ntkc demo: CNN on CIFAR-shaped inputs, N1 = N2 = {batch}, O = 10, P = {n_params}")
    print("kernel: trace_axes=() (full N1 x N2 x O x O), vmap_axes=0, float32\n")
    results = {}
    print(f"{'method':<12}{'compile [s]':>14}{'run [ms]':>12}{'max |diff| vs first':>22}")
    for name in METHODS:
        kernel = ntk_fn(cnn, trace_axes=(), vmap_axes=0, method=name)
        compile_s, run_s, k = time_kernel(kernel, x1, x2, params, repeats=repeats)
        results[name] = np.asarray(k)
        first = next(iter(results.values()))
        diff = float(np.max(np.abs(results[name] - first)))
        print(f"{name:<12}{compile_s:>14.2f}{run_s * 1e3:>12.1f}{diff:>22.2e}")
    scale = float(np.max(np.abs(next(iter(results.values())))))
    worst = max(float(np.max(np.abs(r - next(iter(results.values()))))) for r in results.values())
    agree = worst <= 1e-4 * max(scale, 1.0)
    print(f"\nkernel shape {next(iter(results.values())).shape}; methods agree: {agree} "
          f"(max diff {worst:.2e}, max |K| {scale:.2e})")
    from ntkc.report import cost_report

    report = cost_report(cnn, params, x1, x2, trace_axes=(), vmap_axes=0)
    predicted = ", ".join(f"{m} {report.numeric(m)[0] / 1e6:.0f}M" for m in report.costs)
    print(f"predicted FLOPs: {predicted}\nmethod='auto' picks {report.why()}")
    print("(full report: ntkc.cost_report(...) or `ntkc report path/to/model.py`)")
    exported_ok = export_and_run(params, x1, x2, export_path)
    return 0 if agree and exported_ok else 1

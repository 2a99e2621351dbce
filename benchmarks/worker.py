"""One (configuration, method) measurement, in its own process; ``run.py`` starts one per point.

The process caps its address space (``--memory-gb``, so running out of memory is an error in
this process and not on the machine), builds the model, compiles the kernel ahead of time
(compile time recorded separately, outside the timed region), runs it once, then times the
median of ``--repeats`` runs (more, up to 50, when they take under half a second together): wall
time, and CPU time of all threads (robust to other load on a shared machine). It saves the
kernel (``--save``, for the agreement check) and prints one JSON line. Peak memory is the
process's peak RSS (:func:`max_rss_mib`), in MiB, next to the peak before compiling (the
interpreter, JAX, the parameters and inputs).

Usage::

    python benchmarks/worker.py '{"figure": "mlp", "model": "mlp", "W": 64, "O": 1, "N": 8}' structured
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import statistics
import sys
import time


#: Fast kernels run more than ``--repeats`` times: until the runs fill this many seconds ...
TIMED_S = 0.5
#: ... but at most this many runs.
MAX_REPEATS = 50


def timed(call, repeats: int) -> float:
    """The median time of ``call()`` (after one run to warm up), waiting for its arrays."""
    import jax

    jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def max_rss_mib() -> float:
    """This process's peak resident memory [MiB]: ``VmHWM`` of ``/proc/self/status`` on Linux.
    Not ``getrusage``'s ``ru_maxrss``: after the ``fork``/``vfork`` + ``exec`` that starts a worker
    it begins at the parent's peak (``run.py``'s, which grows with every model it prices), so a
    small point would report a large model's memory."""
    status = pathlib.Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kernel_fn(f, method: str):
    """The kernel ``(x1, x2, params) -> (N1, N2, O, O)`` of a method named in ``presets.ALL_METHODS``
    (``nt_*``: neural-tangents' implementation of that name; only in its own environment)."""
    if method.startswith("nt_"):
        import neural_tangents as nt
        implementation = {"nt_jacobian": "JACOBIAN_CONTRACTION", "nt_ntvp": "NTK_VECTOR_PRODUCTS",
                          "nt_structured": "STRUCTURED_DERIVATIVES", "nt_auto": "AUTO"}[method]
        return nt.empirical_ntk_fn(f, trace_axes=(), vmap_axes=0,
                                   implementation=getattr(nt.NtkImplementation, implementation))
    if method.startswith("jax_"):
        from baselines import jacobian_ntk, ntvp_ntk
        kernel = {"jax_jacobian": jacobian_ntk, "jax_ntvp": ntvp_ntk}[method](f)
        return lambda x1, x2, params: kernel(x1, x1 if x2 is None else x2, params)
    import ntkc
    return ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method=method)


def measure(config, method: str, repeats: int, save: str | None) -> dict:
    import warnings

    import jax
    import numpy as np

    f, params, x1, x2 = config.build()
    jax.block_until_ready((params, x1, x2))
    row = {"rss_setup_mib": max_rss_mib(), "rss": "VmHWM"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        if method == "auto":  # ahead of time, as users compile: a near tie is measured (and cached)
            import ntkc
            ahead = ntkc.compile(f, params, x1, x2, trace_axes=(), vmap_axes=0, method="auto")
            compiled, row["auto_method"] = ahead.executable, ahead.method
        else:
            compiled = jax.jit(kernel_fn(f, method)).lower(x1, x2, params).compile()
        row["compile_s"] = time.perf_counter() - t0
    row["fallbacks"] = sorted({str(w.message).split(":")[0] for w in caught
                               if w.category.__name__ == "DenseFallbackWarning"})
    kernel = compiled(x1, x2, params).block_until_ready()
    times, cpu = [], []
    while len(times) < repeats or (sum(times) < TIMED_S and len(times) < MAX_REPEATS):
        t0, c0 = time.perf_counter(), time.process_time()
        compiled(x1, x2, params).block_until_ready()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    row.update(run_s=statistics.median(times), run_min_s=min(times), cpu_s=statistics.median(cpu), runs=len(times),
               peak_rss_mib=max_rss_mib())
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    row["xla_flops"] = float((cost or {}).get("flops", float("nan")))
    if save:
        np.save(save, np.asarray(kernel))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="a presets.Config as JSON")
    p.add_argument("method")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--memory-gb", type=float, default=8.0, help="address-space cap of this process")
    p.add_argument("--save", default=None, help="write the kernel here (.npy)")
    a = p.parse_args()
    cap = int(a.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from presets import Config
    config = Config(**json.loads(a.config))
    try:
        row = measure(config, a.method, a.repeats, a.save)
    except Exception as e:  # noqa: BLE001 -- reported as a missing point, with its reason
        text = f"{type(e).__name__}: {e}"
        oom = "RESOURCE_EXHAUSTED" in text or isinstance(e, MemoryError)
        row = {"missing": "out of memory" if oom else "error", "detail": text.splitlines()[0][:300]}
    print(json.dumps(row), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

"""A kernel's time against its model's own forward pass, in one process, for kernels so small
that the JAX runtime's per-call cost is what is timed.

Each call is timed alone (dispatched, then waited for), the kernel's and the forward pass's
calls alternating, 400 each; the medians and their ratio are printed. Run it under both
interpreters to compare ntkc (current JAX) with neural-tangents 0.6.5 (JAX 0.4.23), whose own
environment ``benchmarks/neural_tangents_ref.py`` makes::

    python benchmarks/call_latency.py --W 64 --O 1 --same                      # ntkc structured
    /tmp/ntvenv/bin/python benchmarks/call_latency.py --W 64 --O 1 --same --nt  # neural-tangents

The forward pass is the same model, parameters and inputs (on the device) under the same JAX:
the ratio kernel / forward pass reads the method apart from the runtime that runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parent))  # appended: neural-tangents' venv imports its own first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--W", type=int, default=64, help="width of the 10-layer ReLU MLP (default 64)")
    p.add_argument("--O", type=int, default=1, help="outputs (default 1)")
    p.add_argument("--N", type=int, default=8, help="examples per side (default 8)")
    p.add_argument("--same", action="store_true", help="x2 = None (the training kernel)")
    p.add_argument("--nt", action="store_true", help="neural-tangents' structured derivatives instead of ntkc's")
    p.add_argument("--calls", type=int, default=400, help="timed calls of each (default 400)")
    args = p.parse_args()
    os.environ.setdefault("NTKC_AUTOTUNE", "0")
    import jax

    from presets import Config

    f, params, x1, x2 = Config("mlp", "mlp", args.W, args.O, args.N, same=args.same).build()
    if args.nt:
        import neural_tangents as nt
        kernel = nt.empirical_ntk_fn(f, trace_axes=(), vmap_axes=0,
                                     implementation=nt.NtkImplementation.STRUCTURED_DERIVATIVES)
    else:
        import ntkc
        kernel = ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method="structured")
    compiled = jax.jit(kernel).lower(x1, x2, params).compile()
    forward = jax.jit(lambda x, p: f(p, x)).lower(x1, params).compile()
    calls = {"kernel": lambda: compiled(x1, x2, params), "forward": lambda: forward(x1, params)}
    for call in calls.values():
        jax.block_until_ready(call())
    times: dict = {name: [] for name in calls}
    for _ in range(args.calls):
        for name, call in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(call())
            times[name].append(time.perf_counter() - start)
    us = {name: statistics.median(t) * 1e6 for name, t in times.items()}
    print(json.dumps({"implementation": "neural_tangents" if args.nt else "ntkc", "jax": jax.__version__,
                      "W": args.W, "O": args.O, "N": args.N, "x2": "None" if args.same else "given",
                      "kernel_us": round(us["kernel"], 1), "forward_us": round(us["forward"], 1),
                      "kernel_over_forward": round(us["kernel"] / us["forward"], 2)}))


if __name__ == "__main__":
    main()

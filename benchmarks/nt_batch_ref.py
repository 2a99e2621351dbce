"""neural-tangents 0.6.5's tiled empirical NTK: ``nt.batch`` over ``nt.empirical_ntk_fn``, the
reference for ntkc's own tiled kernel.

It builds a model of ``tiled_models.py`` with ``n`` inputs, the traced kernel
``nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0, implementation=...)``, wraps it in
``nt.batch(kernel_fn, batch_size, store_on_device=False)`` (tiles of ``batch_size`` × ``batch_size``
examples, each brought back to host memory as it is computed; ``batch_size`` must divide ``n``)
and computes the ``(n, n)`` kernel of the inputs with themselves (``x2=None``). It measures the
wall time of that call, compilation included (``--repeat``: also of a second call, compiled
already), and the process's peak resident memory (``VmHWM``, MiB), and prints one JSON line.

Runs in neural-tangents' own environment (``neural_tangents_ref.py``)::

    /tmp/ntvenv/bin/python benchmarks/nt_batch_ref.py --model mlp --n 2000 --batch-size 500

``nt_batch_run.py`` runs it over a list of sizes, one process per point.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import tiled_models
from worker import max_rss_mib


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=tiled_models.MODELS, default="mlp")
    p.add_argument("--n", type=int, required=True, help="number of inputs")
    p.add_argument("--batch-size", type=int, required=True, help="tile size; must divide --n")
    p.add_argument("--implementation", default="STRUCTURED_DERIVATIVES",
                   help="a name of nt.NtkImplementation (AUTO, JACOBIAN_CONTRACTION, NTK_VECTOR_PRODUCTS, "
                        "STRUCTURED_DERIVATIVES)")
    p.add_argument("--repeat", action="store_true", help="also time a second call (compiled)")
    p.add_argument("--save", default="", help="write the kernel to this .npy file")
    args = p.parse_args()
    if args.n % args.batch_size:      # nt.batch would fail on it, or shrink a larger one silently
        p.error(f"--batch-size {args.batch_size} does not divide --n {args.n}")

    import jax
    import neural_tangents as nt

    f, params, x = tiled_models.make(args.model, args.n)
    kernel_fn = nt.empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0,
                                    implementation=getattr(nt.NtkImplementation, args.implementation))
    batched = nt.batch(kernel_fn, batch_size=args.batch_size, store_on_device=False)

    def timed() -> tuple[float, jax.Array]:
        start = time.perf_counter()
        k = batched(x, None, params)
        k.block_until_ready()
        return time.perf_counter() - start, k

    wall_s, k = timed()
    row = {"model": args.model, "n": args.n, "batch_size": args.batch_size,
           "implementation": args.implementation, "wall_s": round(wall_s, 3)}
    if args.repeat:
        row["wall_repeat_s"] = round(timed()[0], 3)
    row |= {"peak_rss_mib": round(max_rss_mib(), 1), "kernel_shape": list(k.shape),
            "jax_version": jax.__version__}
    if args.save:
        np.save(args.save, np.asarray(k))
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

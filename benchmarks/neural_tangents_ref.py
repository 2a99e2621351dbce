"""The paper's reference implementation (neural-tangents 0.6.5) on methods_grid's models.

neural-tangents 0.6.5 does not import on current JAX, so it runs in its own virtual environment:

    python3 -m venv /tmp/ntvenv && /tmp/ntvenv/bin/pip install "jax==0.4.23" "jaxlib==0.4.23" \\
        "numpy<2" "scipy<1.13" "neural-tangents==0.6.5"
    /tmp/ntvenv/bin/python benchmarks/neural_tangents_ref.py mlp 512 16 8     # one JSON line

Same models, sizes and protocol as ``methods_grid.py --one`` (full kernel, ``vmap_axes=0``,
float32, jit compiled first, median of 5 runs), with neural-tangents' structured derivatives
(``NtkImplementation.STRUCTURED_DERIVATIVES``). Compare with
``python benchmarks/methods_grid.py --one mlp 512 16 8 structured`` run right after.
"""

import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))


def main() -> None:
    import jax
    import neural_tangents as nt
    from methods_grid import make

    model, w, o, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    f, params, x1, x2 = make(model, w, o, n)
    kernel = jax.jit(nt.empirical_ntk_fn(f, trace_axes=(), vmap_axes=0,
                                         implementation=nt.NtkImplementation.STRUCTURED_DERIVATIVES))
    t0 = time.perf_counter()
    kernel(x1, x2, params).block_until_ready()
    compile_s = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        kernel(x1, x2, params).block_until_ready()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"model": model, "W": w, "O": o, "N": n, "impl": "neural-tangents 0.6.5 structured",
                      "compile_s": compile_s, "run_s": statistics.median(times), "cpu_s": statistics.median(cpu)}))


if __name__ == "__main__":
    main()

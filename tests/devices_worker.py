"""Kernels of ``ntk_matrix`` on meshes of 1, 2 and 8 CPU devices, for ``test_devices.py``.

Run in a process of its own (the device count is fixed when JAX starts)::

    python tests/devices_worker.py meshes OUT.npz          # 8 host devices, every case on each mesh
    python tests/devices_worker.py process K PORT OUT_DIR   # process K of 2 (jax.distributed)

``meshes`` writes, per case, the kernel without a mesh and on meshes of the first 1, 2 and 8
devices, plus an ``out='sharded'`` kernel and its shardings; ``process`` writes every case's
kernel as process K of 2 computed it (and a kernel written to a shared ``.npy``).
"""

from __future__ import annotations

import json
import os
import sys

#: (name, options, x2 given): every axis setting, x2 = None and given.
CASES = (
    ("traced", {}, False), ("traced_x2", {}, True),
    ("full", {"trace_axes": ()}, False), ("full_x2", {"trace_axes": ()}, True),
    ("diagonal", {"diagonal_axes": (0,)}, False), ("traced_examples", {"trace_axes": (0,)}, False),
    ("pytree", {"trace_axes": ()}, True),
)
METHODS = ("structured", "ntvp")


def model():
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 16)).astype(np.float32) / 2, "b": rng.normal(size=16).astype(np.float32),
              "v": rng.normal(size=(16, 4)).astype(np.float32) / 4}

    def f(p, x):
        return jnp.tanh(x @ p["w"] + p["b"]) @ p["v"]

    def pair(p, x):
        h = f(p, x)
        return {"logits": h, "energy": jax.nn.softplus(h[:, :2])}
    x1 = rng.normal(size=(37, 3)).astype(np.float32)
    x2 = rng.normal(size=(23, 3)).astype(np.float32)
    return f, pair, params, x1, x2


def kernels(mesh=None, **extra):
    """Every case's kernel (flattened leaves) on ``mesh``."""
    import jax
    import numpy as np

    import ntkc

    f, pair, params, x1, x2 = model()
    out = {}
    for name, options, given in CASES:
        for method in METHODS:
            fn = pair if name == "pytree" else f
            k = ntkc.ntk_matrix(fn, params, x1, x2 if given else None, block_size=8, method=method,
                                progress=False, mesh=mesh, **options, **extra)
            for i, leaf in enumerate(jax.tree_util.tree_leaves(k)):
                out[f"{name}.{method}.{i}"] = np.asarray(leaf)
    # bands of 8 rows in tiles of 2 columns: the rows computed 2 examples at a time, placed in place
    chunked = ntkc.ntk_matrix(f, params, x1, block_size=(8, 2), method="structured", progress=False, mesh=mesh,
                              **extra)
    out["chunked.structured.0"] = np.asarray(chunked)
    return out


def meshes(path: str) -> None:
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax
    import numpy as np

    import ntkc

    results = {f"none/{k}": v for k, v in kernels().items()}
    for size in (1, 2, 8):
        mesh = jax.sharding.Mesh(np.array(jax.devices()[:size]), ("tiles",))
        results.update({f"{size}/{k}": v for k, v in kernels(mesh).items()})
    f, _, params, x1, _ = model()
    x = np.concatenate([x1, x1[:3]])  # 40 examples: 5 rows per device
    sharded = ntkc.ntk_matrix(f, params, x, block_size=8, out="sharded", progress=False)
    results["sharded"] = np.asarray(sharded)
    results["sharded_host"] = np.asarray(ntkc.ntk_matrix(f, params, x, block_size=8, progress=False))
    shards = sorted((s.index[0].start or 0, s.data.shape[0], s.device.id) for s in sharded.addressable_shards)
    try:
        ntkc.ntk_matrix(f, params, x1, block_size=8, out="sharded", progress=False)
        error = ""
    except ValueError as e:
        error = str(e)
    operators = {}
    for count, examples in (("even", x), ("uneven", x1)):  # 40 examples: the matrix split by rows
        alone = ntkc.ntk_operator(f, params, examples, trace_axes=(), mode="dense")
        spread = ntkc.ntk_operator(f, params, examples, trace_axes=(), mode="dense", mesh="all")
        v = np.random.default_rng(1).normal(size=alone.vector_shape + (2,)).astype(np.float32)
        results[f"operator_{count}"], results[f"operator_{count}_alone"] = np.asarray(spread @ v), np.asarray(alone @ v)
        operators[count] = len(spread._held.matrix.sharding.device_set)
    np.savez(path, **results)
    with open(path + ".json", "w") as fh:
        json.dump({"shards": shards, "devices": len(jax.devices()), "error": error, "operators": operators}, fh)


def process(k: int, port: int, folder: str) -> None:
    import jax

    for option, value in (("jax_cpu_collectives_implementation", "gloo"),):
        try:
            jax.config.update(option, value)
        except (AttributeError, KeyError, ValueError):  # older JAX: gloo is the default
            pass
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=k)
    import numpy as np

    import ntkc

    results = kernels()
    f, _, params, x1, _ = model()
    on_disk = ntkc.ntk_matrix(f, params, x1, block_size=8, progress=False, out=os.path.join(folder, "K.npy"))
    results["on_disk"] = np.asarray(on_disk)
    calls = []  # the same call again resumes: this process's share is done, nothing runs
    again = ntkc.ntk_matrix(f, params, x1, block_size=8, out=os.path.join(folder, "K.npy"),
                            progress=lambda done, total: calls.append(done))
    results["resumed_tiles"], results["resumed"] = np.array(len(calls)), np.asarray(again)
    x = np.concatenate([x1, x1[:3]])  # 40 examples: 20 rows per process
    sharded = ntkc.ntk_matrix(f, params, x, block_size=8, out="sharded", progress=False)
    (shard,) = sharded.addressable_shards
    results["sharded_shape"] = np.array(sharded.shape)
    results["sharded_rows"] = np.array([shard.index[0].start or 0, shard.index[0].stop or 40])
    results["sharded_local"] = np.asarray(shard.data)
    np.savez(os.path.join(folder, f"process{k}.npz"), **results)


if __name__ == "__main__":
    if sys.argv[1] == "meshes":
        meshes(sys.argv[2])
    else:
        process(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])

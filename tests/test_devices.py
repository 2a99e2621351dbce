"""Tiled kernels on several devices and processes: the same kernel as one device computes.

Device counts are fixed when JAX starts, so meshes of 1, 2 and 8 CPU devices and the two
processes of ``jax.distributed`` run in subprocesses (``devices_worker.py``).
"""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import ntkc
from ntkc.tiling import devices, processes

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import devices_worker  # noqa: E402


def close(a, b):
    return np.allclose(a, b, rtol=1e-5, atol=1e-5 * max(float(np.abs(b).max()), 1e-30))


def _run(*args, timeout=600):
    done = subprocess.run([sys.executable, str(HERE / "devices_worker.py"), *args], capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


MESHES = pytest.mark.xdist_group("meshes")  # one worker builds the meshes' kernels for all their tests


_MESHES: dict = {}  # built once per process: pytest sets a module fixture up again after another module's test


@pytest.fixture(scope="module")
def on_meshes(tmp_path_factory):
    if not _MESHES:
        path = tmp_path_factory.mktemp("meshes") / "kernels.npz"
        _run("meshes", str(path))
        with np.load(path) as saved:
            _MESHES["kernels"] = dict(saved)
        _MESHES["facts"] = json.loads(pathlib.Path(str(path) + ".json").read_text())
    return _MESHES["kernels"], _MESHES["facts"]


@MESHES
def test_meshes_of_1_2_and_8_devices_give_one_devices_kernel(on_meshes):
    kernels, facts = on_meshes
    assert facts["devices"] == 8
    keys = [k.split("/", 1)[1] for k in kernels if k.startswith("none/")]
    expected = {f"{c[0]}.{m}" for c in devices_worker.CASES for m in devices_worker.METHODS} | {"chunked.structured"}
    assert {k.rsplit(".", 1)[0] for k in keys} == expected
    for size in (1, 2, 8):
        for key in keys:
            assert close(kernels[f"{size}/{key}"], kernels[f"none/{key}"]), (size, key)


@MESHES
def test_one_devices_kernel_is_the_untiled_kernel(on_meshes):
    kernels, _ = on_meshes
    f, _, params, x1, x2 = devices_worker.model()
    for name, options, given in devices_worker.CASES:
        if name == "pytree":
            continue
        reference = ntkc.ntk_fn(f, vmap_axes=0, **options)(x1, x2 if given else None, params)
        assert close(kernels[f"none/{name}.structured.0"], np.asarray(reference)), name


@MESHES
def test_a_sharded_kernel_is_the_host_kernel_split_by_rows(on_meshes):
    kernels, facts = on_meshes
    assert close(kernels["sharded"], kernels["sharded_host"])
    assert [(start, rows) for start, rows, _ in facts["shards"]] == [(5 * d, 5) for d in range(8)]
    assert len({device for _, _, device in facts["shards"]}) == 8
    assert "37 rows" in facts["error"] and "8 devices" in facts["error"]


@MESHES
def test_a_dense_operator_on_a_mesh_is_one_devices_operator(on_meshes):
    """Its tiles spread over 8 devices; its matrix kept there, split by rows, when they divide."""
    kernels, facts = on_meshes
    for count in ("even", "uneven"):
        assert close(kernels[f"operator_{count}"], kernels[f"operator_{count}_alone"]), count
    assert facts["operators"] == {"even": 8, "uneven": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_share_the_tiles_and_each_gets_the_kernel_or_its_rows(tmp_path):
    port = _free_port()
    command = [sys.executable, str(HERE / "devices_worker.py"), "process"]
    workers = [subprocess.Popen(command + [str(k), str(port), str(tmp_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for k in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
    expected = devices_worker.kernels()
    f, _, params, x1, _ = devices_worker.model()
    whole = np.asarray(ntkc.ntk_matrix(f, params, x1, block_size=8, progress=False))
    for k in range(2):
        with np.load(tmp_path / f"process{k}.npz") as got:
            for key, value in expected.items():
                assert close(got[key], value), (k, key)
            assert close(got["on_disk"], whole)
            assert int(got["resumed_tiles"]) == 0 and close(got["resumed"], whole)
            x = np.concatenate([x1, x1[:3]])
            start, stop = got["sharded_rows"]
            assert tuple(got["sharded_shape"]) == (40, 40) and (start, stop) == (20 * k, 20 * k + 20)
            assert close(got["sharded_local"], np.asarray(ntkc.ntk_fn(f, vmap_axes=0)(x, None, params))[start:stop])
    assert close(np.load(tmp_path / "K.npy"), whole)
    assert sorted(p.name for p in tmp_path.glob("K.npy.tiles.*")) == ["K.npy.tiles.p0of2.json", "K.npy.tiles.p1of2.json"]
    done = [set(json.loads((tmp_path / f"K.npy.tiles.p{k}of2.json").read_text())["done"]) for k in range(2)]
    assert done[0] and done[1] and not done[0] & done[1]  # disjoint shares, both working


def test_shares_keep_bands_whole_and_balance_them():
    costs, groups = [5, 5, 5, 1, 1, 4, 4], [0, 0, 0, 1, 1, None, None]
    shares = [processes.share(costs, groups, 2, k) for k in range(2)]
    assert sorted(shares[0] + shares[1]) == list(range(7))
    assert {0, 1, 2} <= set(shares[0]) or {0, 1, 2} <= set(shares[1])
    loads = sorted(sum(costs[i] for i in s) for s in shares)
    assert loads == [10, 15]  # the band of 15 stays whole; everything else goes to the other process


def test_rows_over_the_mesh_keep_every_device_busy():
    f, _, params, x1, _ = devices_worker.model()
    plan = ntkc.tile_plan(f, params, np.concatenate([x1] * 4), block_size=(8, 4), method="structured")
    assert plan.banded
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("tiles",))
    schedule = devices.schedule(plan, mesh)
    assert schedule.layout == devices.ROWS
    covered = {(i, j) for t in schedule.tiles for i in range(t.i0, t.i1) for j in range(t.j0, t.j1)}
    assert all((i, j) in covered or (j, i) in covered for i in range(plan.n1) for j in range(plan.n1))


def test_a_bad_mesh_is_named():
    with pytest.raises(TypeError, match="`mesh` must be a jax.sharding.Mesh, 'all' or None"):
        devices.resolve_mesh(8)


def test_a_jax_without_shard_map_is_told_why(monkeypatch):
    monkeypatch.delattr(jax, "shard_map")
    with pytest.raises(RuntimeError, match="`mesh` needs `jax.shard_map`"):
        devices.resolve_mesh("all")
    f, _, params, x1, _ = devices_worker.model()  # one device needs no mesh
    assert ntkc.ntk_matrix(f, params, x1[:9], block_size=4, progress=False).shape == (9, 9)


def test_bands_are_priced_for_the_devices_and_processes_that_share_them():
    """A band is ``devices · b1`` rows, each device's ``b1`` within the budget; with several
    processes there are at least 4 bands per process (whole bands are shared out)."""
    from ntkc.tiling.pricing import band_cost, choose_band

    sys.path.insert(0, str(HERE))
    from test_tiles import _Pricer

    pricer = _Pricer(a=10**9, k=10**4, m=10**6, r=0, budget=600 * 10**6)
    one = choose_band(pricer, 8000, 8000, True)
    four = choose_band(pricer, 8000, 8000, True, devices=4)
    assert (four[0] + four[1]) * 10**6 <= 600 * 10**6  # each device's rows fit its budget
    assert 4 * four[0] <= 8000
    seconds = lambda block, d: band_cost(pricer, *block, 8000, 8000, True, devices=d)[0]
    assert seconds(four, 4) < seconds(one, 1) / 2  # four devices: more than twice as fast
    b1, b2 = choose_band(pricer, 8000, 8000, True, devices=4, processes=2)
    assert -(-8000 // (4 * b1)) >= 8

"""Tiled kernels (``ntkc.ntk_matrix``): equal to the untiled kernel (which equals the oracle) over
the zoo and every axis setting, with ragged tiles, pytree outputs, out-of-core output, a run killed
mid-way and resumed, and clear errors."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkc
from ntkc.testing import ZOO
from reference import oracle_ntk
from zoo_cases import assert_equal_to_oracle, instance, oracle, out_ndim

ZOO_CASES = [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in sorted(ZOO) if ZOO[n].batch_independent]


@pytest.mark.parametrize("name", ZOO_CASES)
def test_zoo_tiles_equal_the_oracle(name):
    """x2 = None, full kernel, tiles of 2 examples: the upper triangle (ragged) computed, the
    rest mirrored with every pair of axes swapped."""
    inst = instance(name, jnp.float64)
    got = ntkc.ntk_matrix(inst.f, inst.params, inst.x1, None, trace_axes=(), block_size=2, **inst.kwargs)
    assert_equal_to_oracle(got, oracle(name, trace_axes=(), vmap=True, same=True), jnp.float64, name)


#: (name, trace_axes, diagonal_axes, min output rank): the example axis kept as a pair, kept as a
#: diagonal, traced; inner axes traced or diagonal.
SETTINGS = [
    ("full", (), (), 1),
    ("default", (-1,), (), 1),
    ("batch_diagonal", (-1,), (0,), 2),
    ("batch_traced", (0,), (), 1),
    ("inner_diagonal", (1,), (-1,), 3),
]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n))
                                  for n in ("mlp", "attention", "conv_image_out", "pytree_out")])
def test_every_axis_setting_tiles_like_the_oracle(name):
    inst = instance(name, jnp.float64)
    for setting, trace_axes, diagonal_axes, rank in SETTINGS:
        if rank > out_ndim(name):
            continue
        batch_tied = 0 in [a % out_ndim(name) for a in (*trace_axes, *diagonal_axes)]
        for same in (True, False) if not batch_tied else (True,):
            got = ntkc.ntk_matrix(inst.f, inst.params, inst.x1, None if same else inst.x2, trace_axes=trace_axes,
                                  diagonal_axes=diagonal_axes, block_size=2, **inst.kwargs)
            want = oracle(name, trace_axes=trace_axes, diagonal_axes=diagonal_axes, vmap=True, same=same)
            assert_equal_to_oracle(got, want, jnp.float64, f"{setting}, x2 {'None' if same else 'given'}")


def _mlp():
    def f(p, x):
        return jnp.tanh(x @ p["w"] + p["b"]) @ p["v"]

    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 8)) / 2, "b": rng.normal(size=(8,)), "v": rng.normal(size=(8, 2)) / 3}
    return f, params, rng.normal(size=(37, 3)), rng.normal(size=(23, 3))


@pytest.mark.parametrize("trace_axes", [(-1,), ()])
def test_ragged_tiles_equal_the_untiled_kernel(trace_axes):
    """37 × 23 examples in tiles of 8: ragged edges in both directions, x2 given and None."""
    f, params, x1, x2 = _mlp()
    kernel = ntkc.ntk_fn(f, trace_axes=trace_axes, vmap_axes=0)
    for b in (x2, None):
        plan = ntkc.tile_plan(f, params, x1, b, trace_axes=trace_axes, block_size=8)
        assert len(plan.tiles) == (5 * 3 if b is not None else 5 * 6 // 2)
        got = ntkc.ntk_matrix(f, params, x1, b, trace_axes=trace_axes, block_size=8)
        np.testing.assert_allclose(got, kernel(x1, b, params), rtol=1e-12, atol=1e-12)


def test_a_memory_budget_chooses_tiles_that_fit():
    f, params, x1, _ = _mlp()
    x = np.concatenate([x1] * 4)  # 148 examples
    plan = ntkc.tile_plan(f, params, x, trace_axes=(), memory_limit=600_000)
    assert plan.block[0] < 148 and plan.peak_bytes <= 600_000 and len(plan.tiles) > 1
    assert plan.flops > 0 and plan.seconds > 0 and "tiles of" in str(plan)
    np.testing.assert_allclose(ntkc.ntk_matrix(f, params, x, trace_axes=(), memory_limit=600_000),
                               ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0)(x, None, params), rtol=1e-12, atol=1e-12)


def test_out_of_core_output_and_its_refusals(tmp_path):
    f, params, x1, x2 = _mlp()
    want = ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0)(x1, x2, params)
    path = tmp_path / "K.npy"
    got = ntkc.ntk_matrix(f, params, x1, x2, trace_axes=(), block_size=8, out=path, dtype=np.float32)
    assert isinstance(got, np.memmap) and got.dtype == np.float32
    np.testing.assert_allclose(np.load(path), want, rtol=1e-6, atol=1e-6)
    again = ntkc.ntk_matrix(f, params, x1, x2, trace_axes=(), block_size=8, out=path, dtype=np.float32)
    np.testing.assert_array_equal(again, np.load(path))  # finished: the same call recomputes nothing
    with pytest.raises(FileExistsError, match="holds another kernel"):
        ntkc.ntk_matrix(f, params, x1 + 1, x2, trace_axes=(), block_size=8, out=path, dtype=np.float32)
    other = tmp_path / "mine.npy"
    np.save(other, np.zeros(3))
    with pytest.raises(FileExistsError, match="has no ntkc tile record"):
        ntkc.ntk_matrix(f, params, x1, x2, block_size=8, out=other)


def test_a_pytree_output_goes_to_a_directory_of_npy_files(tmp_path):
    inst = instance("pytree_out", jnp.float64)
    got = ntkc.ntk_matrix(inst.f, inst.params, inst.x1, inst.x2, trace_axes=(), block_size=2, out=tmp_path / "K")
    assert sorted(p.name for p in (tmp_path / "K").glob("*.npy")) == ["aux.npy", "logits.npy"]
    assert_equal_to_oracle(jax.tree_util.tree_map(np.asarray, got), oracle("pytree_out", vmap=True, same=False),
                           jnp.float64)


def test_inputs_may_be_memmaps(tmp_path):
    f, params, x1, _ = _mlp()
    np.save(tmp_path / "x.npy", x1)
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_allclose(ntkc.ntk_matrix(f, params, x, block_size=8),
                               ntkc.ntk_fn(f, vmap_axes=0)(x1, None, params), rtol=1e-12, atol=1e-12)


KILLED = """
import os, sys
import jax
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, {tests!r})
import numpy as np, ntkc, test_tiles
import ntkc.tiling.store
ntkc.tiling.store.FLUSH_SECONDS = 0  # every tile flushed and recorded as it finishes
f, params, x1, x2 = test_tiles._mlp()
def stop(done, total):
    if done == 2:
        os._exit(17)  # killed after two tiles
ntkc.ntk_matrix(f, params, x1, None, trace_axes=(), block_size=8, out={out!r}, progress=stop)
"""


def test_an_interrupted_run_resumes_with_the_missing_tiles(tmp_path):
    out = tmp_path / "K.npy"
    script = KILLED.format(tests=str(pathlib.Path(__file__).parent), out=str(out))
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == 17, killed.stderr[-2000:]
    f, params, x1, _ = _mlp()
    seen = []
    got = ntkc.ntk_matrix(f, params, x1, None, trace_axes=(), block_size=8, out=out,
                          progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (3, 15) and seen[-1] == (15, 15)  # 5 × 6 / 2 tiles, 2 already done
    np.testing.assert_allclose(got, ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0)(x1, None, params),
                               rtol=1e-12, atol=1e-12)


def test_bad_input_is_a_clear_error():
    f, params, x1, _ = _mlp()
    with pytest.raises(ValueError, match="`vmap_axes=None`: a tiled kernel needs examples that are independent"):
        ntkc.ntk_matrix(f, params, x1, vmap_axes=None)
    with pytest.raises(ValueError, match=r"`memory_limit` of 1,000 bytes is too small .* it needs about [\d,]+ bytes"):
        ntkc.ntk_matrix(f, params, x1, memory_limit=1000)
    with pytest.raises(ValueError, match="`block_size` must be a positive int"):
        ntkc.ntk_matrix(f, params, x1, block_size=0)


def test_symmetric_and_diagonal_kernels_run_only_the_tiles_they_need():
    f, params, x1, x2 = _mlp()
    x = x1[:32]
    assert len(ntkc.tile_plan(f, params, x, None, block_size=8).tiles) == 4 * 5 // 2
    assert len(ntkc.tile_plan(f, params, x, x2[:16] * 0 + x[:16], block_size=8).tiles) == 4 * 2
    diagonal = ntkc.tile_plan(f, params, x, None, diagonal_axes=(0,), block_size=8)
    assert diagonal.mode == "diagonal" and all(t.on_diagonal for t in diagonal.tiles) and len(diagonal.tiles) == 4
    got = ntkc.ntk_matrix(f, params, x, None, diagonal_axes=(0,), block_size=8)
    np.testing.assert_allclose(got, oracle_ntk(f, x, None, params, diagonal_axes=(0,), vmap_axis=(0, 0)),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["structured", "jacobian", "ntvp"])
def test_row_bands_equal_the_untiled_kernel_for_every_method(method):
    """Structured and Jacobian plans run as row bands (side 1 once per band, edge tiles padded
    and cropped, with x2 = None a band's own columns read from its side-1 results);
    NTK-vector products, which need both sides in every call, as square tiles."""
    f, params, x1, x2 = _mlp()
    for b in (x2, None):
        for block in (8, (16, 5)):
            plan = ntkc.tile_plan(f, params, x1, b, trace_axes=(), block_size=block, method=method)
            assert plan.banded == (method != "ntvp")
            if plan.banded:  # x2 = x1: a band's own columns reuse its side-1 results
                assert (plan.kernel(plan.block, False).own is not None) == (b is None)
            got = ntkc.ntk_matrix(f, params, x1, b, trace_axes=(), block_size=block, method=method)
            want = ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method=method)(x1, b, params)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in
                                  ("mlp", "conv_same_nhwc", "rnn_scan", "weight_sharing", "kwargs_model",
                                   "pytree_input")])
def test_a_cut_program_computes_what_the_whole_program_does(name):
    """Row program then column program == the whole program (structured: its fused batch of
    both sides undone first), for per-example kwargs and pytree inputs too."""
    from ntkc.batching import partition_kwargs, split_kwargs
    from ntkc.tiling.bands import band_functions, band_split

    inst = instance(name, jnp.float64)
    kw1, kw2 = (partition_kwargs(kw)[0] for kw in split_kwargs(dict(inst.kwargs)))
    for method in ("structured", "jacobian"):
        plan = ntkc.plan(inst.f, inst.params, inst.x1, inst.x2, trace_axes=(), vmap_axes=0, method=method,
                         **inst.kwargs)
        cut = band_split(plan)
        assert cut is not None and cut.row.steps and not any(s.name == "operands" for s in cut.column.steps
                                                             if hasattr(s, "name"))
        functions = band_functions(plan, cut)
        got = functions.column(functions.row(inst.params, inst.x1, kw1), inst.params, inst.x2, kw2)
        want = plan.executable(inst.params, inst.x1, inst.x2, kw1, kw2)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * float(np.abs(b).max()))


class _Pricer:
    """A pricer of ``F = a·(N1 + N2) + k·N1·N2`` FLOPs and ``m·(N1 + N2) + r·N1·N2`` bytes."""

    def __init__(self, a, k, m, r, budget):
        self.a, self.k, self.m, self.r, self.budget, self.scale = a, k, m, r, budget, 1.0

    def flops(self, method, b1, b2):
        return self.a * (b1 + b2) + self.k * b1 * b2

    def at(self, b1, b2, methods=None):
        return "jacobian", self.m * (b1 + b2) + self.r * b1 * b2, self.flops("jacobian", b1, b2)


@pytest.mark.parametrize("symmetric", [True, False])
def test_the_band_follows_where_the_work_is(symmetric):
    """Per-example work (a CNN's Jacobians: ``a ≫ k·N``) held to a budget linear in the
    examples: one band as tall as fits, narrow tiles. Contractions alone (``a = 0``) under a
    budget of the tile's area: tiles near square."""
    from ntkc.tiling.pricing import choose_band

    b1, b2 = choose_band(_Pricer(a=10**9, k=10**4, m=10**6, r=0, budget=600 * 10**6), 2000, 2000, symmetric)
    assert b1 >= 450 and b2 <= b1 // 4 and (b1 + b2) * 10**6 <= 600 * 10**6
    b1, b2 = choose_band(_Pricer(a=0, k=10**4, m=0, r=100, budget=100 * 500 * 500), 2000, 2000, symmetric)
    assert b1 * b2 <= 500 * 500 and 0.5 <= b1 / b2 <= 2


def test_a_convolutional_kernel_in_row_bands_under_a_budget():
    def f(p, x):
        x = jax.lax.conv_general_dilated(x, p["k"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.tanh(x).mean(axis=(1, 2)) @ p["v"]

    rng = np.random.default_rng(0)
    params = {"k": rng.normal(size=(3, 3, 4, 16)).astype(np.float32) / 4,
              "v": rng.normal(size=(16, 3)).astype(np.float32) / 3}
    x = rng.normal(size=(128, 8, 8, 4)).astype(np.float32)
    plan = ntkc.tile_plan(f, params, x, None, method="jacobian", memory_limit=1 << 20)
    assert plan.banded and len(plan.tiles) > 1 and plan.peak_bytes <= 1 << 20
    got = ntkc.ntk_matrix(f, params, x, None, method="jacobian", memory_limit=1 << 20)
    want = ntkc.ntk_fn(f, vmap_axes=0)(x, None, params)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def test_the_matrix_command_writes_a_resumable_kernel(tmp_path, capsys):
    from ntkc.cli import main

    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "examples"))
    import mlp_model

    f, params, _ = mlp_model.model()  # what the command loads
    x = np.random.default_rng(0).normal(size=(21, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    model, out = str(pathlib.Path(mlp_model.__file__)) + ":model", tmp_path / "K.npy"
    args = ["matrix", model, "--x1", str(tmp_path / "x.npy"), "--out", str(out), "--vmap-axes", "0",
            "--block-size", "8", "--memory", "64MB"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "tiles of 8×8 examples" in printed and f"wrote {out}: (21, 21)" in printed
    want = ntkc.ntk_fn(f, vmap_axes=0)(x, None, params)
    np.testing.assert_allclose(np.load(out), want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    assert main(args) == 0  # finished: the same command again computes nothing and agrees
    with pytest.raises(SystemExit, match="holds another kernel"):
        main(args[:-2] + ["--memory", "64MB", "--method", "jacobian"])

"""Measured ties for ``method="auto"``: when FLOPs cannot decide, time the candidates.

The cost model counts FLOPs; two programs within a small factor of each other's FLOPs differ in
how well XLA runs them (fusion, memory traffic, per-op overhead), which FLOPs cannot see. When
every method within :data:`TIE` of the fewest predicted FLOPs is not the same one,
``ntkc.compile(..., method="auto")`` compiles each candidate for the actual shapes on the
actual device, times them interleaved (median of several calls), and keeps the fastest — in the
held plan's analysis (so every plan of that problem in this process uses it) and on disk, like
an autotuning cache, so that ``ntkc.ntk_fn(..., method="auto")`` — even under ``jax.jit``, which
never measures — uses it in later processes.

The disk entry is keyed by a fingerprint of the model's linearized program, the shapes and
dtypes of every input, the options, the device kind and the ntkc/JAX versions: two models with
equal shapes never share an entry. Environment variables: ``NTKC_AUTOTUNE=0`` turns measuring
and reading measurements off (the cost model alone decides, deterministically);
``NTKC_CACHE_DIR`` sets the cache directory (default ``~/.cache/ntkc``; entries go to its
``autotune`` folder).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import statistics
import time
import warnings
from typing import Any

import jax

from ntkc._version import __version__

#: Candidates: every applicable method within this factor of the fewest predicted FLOPs.
TIE = 2.0
ENV_TUNE = "NTKC_AUTOTUNE"
ENV_DIR = "NTKC_CACHE_DIR"


def enabled() -> bool:
    """Whether ``auto`` measures ties and reads measurements (``NTKC_AUTOTUNE``, default on).

    >>> os.environ[ENV_TUNE] = "0"; enabled()
    False
    >>> del os.environ[ENV_TUNE]; enabled()
    True
    """
    return os.environ.get(ENV_TUNE, "1").strip().lower() not in ("0", "false", "off", "no")


def cache_dir() -> pathlib.Path:
    """Where measurements are kept: ``$NTKC_CACHE_DIR/autotune`` (default ``~/.cache/ntkc``)."""
    root = os.environ.get(ENV_DIR) or os.path.join(os.path.expanduser("~"), ".cache", "ntkc")
    return pathlib.Path(root) / "autotune"


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Measured times of ``auto``'s candidates on one problem, shapes and device.

    Attributes:
      choice: the fastest candidate.
      seconds: candidate -> median time of one kernel call [s].
      flops: candidate -> predicted FLOPs.
      device: the device kind it was measured on.
    """

    choice: str
    seconds: dict
    flops: dict
    device: str

    def why(self) -> str:
        others = sorted((s, m) for m, s in self.seconds.items() if m != self.choice)
        against = ", ".join(f"{m} {s * 1e3:.3g} ms" for s, m in others)
        return (f"{self.choice}: measured fastest of the near tie in predicted FLOPs "
                f"({self.seconds[self.choice] * 1e3:.3g} ms; {against}) on {self.device}")


def candidates(flops: dict) -> list[str]:
    """Methods within :data:`TIE` of the fewest predicted FLOPs, fewest first.

    >>> candidates({"jacobian": 300, "structured": 200, "ntvp": 900})
    ['structured', 'jacobian']
    """
    least = min(flops.values())
    return sorted((m for m, f in flops.items() if f <= TIE * least), key=flops.get)


def device_kind() -> str:
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind}"


def fingerprint(analysis) -> str:
    """The disk key of a problem: its linearized programs, shapes, options, device, versions."""
    programs = [side.graph.pretty() for side in analysis.lowered.sides]
    specs = jax.tree_util.tree_map(lambda s: (tuple(s.shape), str(s.dtype)), analysis.specs.params), \
        jax.tree_util.tree_map(lambda s: (tuple(s.shape), str(s.dtype)), (analysis.specs.x1, analysis.specs.x2))
    parts = [__version__, jax.__version__, device_kind(), analysis.options.key(), repr(specs),
             repr(sorted((k, repr(v)) for k, v in analysis.specs.kwargs.items())), programs]
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(repr(part).encode())
    return digest.hexdigest()


def _path(key: str) -> pathlib.Path:
    return cache_dir() / f"{key}.json"


def lookup(analysis) -> Measurement | None:
    """The stored measurement of this problem, if any (None when tuning is off)."""
    if not enabled():
        return None
    try:
        data = json.loads(_path(fingerprint(analysis)).read_text())
        return Measurement(**data)
    except (OSError, ValueError, TypeError):
        return None


def _store(key: str, measurement: Measurement) -> None:
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(measurement), indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as e:  # a read-only home: the measurement still serves this process
        warnings.warn(f"ntkc could not store its auto-tuning measurement in {path.parent} ({e}); set "
                      f"{ENV_DIR} to a writable directory", UserWarning, stacklevel=3)


def _example(spec, key):
    if jax.numpy.issubdtype(spec.dtype, jax.numpy.floating):
        return jax.random.normal(key, spec.shape, spec.dtype)
    return jax.numpy.zeros(spec.shape, spec.dtype)


def _inputs(specs, seed: int = 0) -> Any:
    leaves, tree = jax.tree_util.tree_flatten(specs)
    keys = jax.random.split(jax.random.PRNGKey(seed), max(1, len(leaves)))
    return jax.tree_util.tree_unflatten(tree, [_example(s, k) for s, k in zip(leaves, keys)])


def measure(analysis, methods: list[str], kwargs: dict, flops: dict, execute, *, budget_s: float = 0.5) -> Measurement:
    """Compile every method in ``methods`` for the analysis's shapes (``execute(plan, x1, x2,
    params, kwargs)`` runs a plan), time them interleaved (at least 3 and at most 15 rounds,
    until ``budget_s`` seconds of calls per method), and return the medians. Inputs are random
    normal floats (zeros for integer inputs)."""
    specs = analysis.specs
    args = (_inputs(specs.x1, 1), None if specs.x2 is None else _inputs(specs.x2, 2), _inputs(specs.params, 3))
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in methods:
            plan = analysis.plan(method)
            run = jax.jit(lambda a, b, p, plan=plan: execute(plan, a, b, p, kwargs)).lower(*args).compile()
            jax.block_until_ready(run(*args))
            runs[method] = run
    times: dict = {m: [] for m in methods}
    start = time.perf_counter()
    for rounds in range(15):
        for method, run in runs.items():
            tic = time.perf_counter()
            jax.block_until_ready(run(*args))
            times[method].append(time.perf_counter() - tic)
        if rounds >= 2 and time.perf_counter() - start > budget_s * len(methods):
            break
    seconds = {m: statistics.median(t) for m, t in times.items()}
    return Measurement(choice=min(seconds, key=seconds.get), seconds=seconds,
                       flops={m: int(flops[m]) for m in methods}, device=device_kind())


def tune(analysis, kwargs: dict, flops: dict, execute) -> Measurement | None:
    """The analysis's measurement of its tie: held, stored, or measured now (and stored)."""
    if analysis.measured is not None:
        return analysis.measured
    tied = candidates(flops)
    if len(tied) < 2 or not enabled():
        return None
    found = lookup(analysis)
    if found is None or set(found.seconds) != set(tied):
        found = measure(analysis, tied, kwargs, flops, execute)
        _store(fingerprint(analysis), found)
    return found

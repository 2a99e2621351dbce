"""Test configuration: float64 is enabled so the oracle and the f64 grid are exact, and XLA's
backend optimisation level is 0 — the tests check values, not speed, and most of their time is
XLA compiling small programs (level 0 cuts that by about a quarter; it does not change what a
program computes). The setting is inherited by the subprocesses the tests start."""

import os

if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# ``method="auto"`` decides by the cost model alone in tests (no timing, no measurements read from
# the user's cache); the tests of measured ties turn it on with a cache of their own.
os.environ.setdefault("NTKC_AUTOTUNE", "0")

# ``tests/fixtures/`` holds the scripts that regenerate fixtures (they import neural-tangents,
# which the tests do not install): not test modules, so not collected for doctests either.
collect_ignore = ["fixtures"]

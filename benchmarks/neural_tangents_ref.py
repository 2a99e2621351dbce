"""A virtual environment for the paper's reference implementation, neural-tangents 0.6.5.

neural-tangents 0.6.5 does not import on current JAX, so its implementations run in an
environment of their own (jax 0.4.23, numpy < 2), made by this script::

    python benchmarks/neural_tangents_ref.py /tmp/ntvenv   # a few minutes, ≈ 2.7 GB (TensorFlow, via tf2jax)
    ntkc bench --preset reference --nt-python /tmp/ntvenv/bin/python

The ``reference`` preset then runs, in one run and with one protocol (``worker.py``: a process
per point, compiled first, median of ≥ 5 runs, max RSS), the plain-JAX baselines, ntkc's four
methods and neural-tangents' four implementations (``nt_jacobian``, ``nt_ntvp``,
``nt_structured``, ``nt_auto``; ``worker.kernel_fn``) on the same models and inputs, and
checks that all kernels agree. The ``nt_*`` workers run under ``--nt-python``; everything else
under the interpreter that runs ``ntkc bench``.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

#: The stack neural-tangents 0.6.5 was released against (it imports private JAX modules that
#: later releases moved or removed).
PINS = ("jax==0.4.23", "jaxlib==0.4.23", "numpy<2", "scipy<1.13", "neural-tangents==0.6.5",
        "flax==0.8.0")                         # models_flax's models, on that jax


def make_venv(path: pathlib.Path) -> pathlib.Path:
    """Create the environment at ``path`` (once) and return its interpreter."""
    python = path / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)
    subprocess.run([str(python), "-c", "import neural_tangents"], check=True)
    return python


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", help="where to create the virtual environment (e.g. /tmp/ntvenv)")
    python = make_venv(pathlib.Path(p.parse_args().path).resolve())
    print(f"ready: ntkc bench --preset reference --nt-python {python}")


if __name__ == "__main__":
    main()

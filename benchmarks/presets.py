"""What ``benchmarks/run.py`` measures: configurations, methods and the presets.

A :class:`Config` is one model at one size: the paper's 10-layer ReLU MLP (Figure 1/3; inputs of
size 3, width ``W``) or a Flax family of :mod:`models_flax` (Figure 2/4; ``W`` is its width,
``image`` the side of its square RGB inputs). Every config is run with every method of
:data:`METHODS`: the two plain-JAX baselines of :mod:`baselines` and ntkc's four methods. The
``reference`` preset also runs neural-tangents 0.6.5's four implementations (:data:`REFERENCE`,
the paper's own code, in a virtual environment of its own: ``run.py --nt-python``).

Usage::

    for config in PRESETS["quick"].configs(): f, params, x1, x2 = config.build()
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

#: Plain-JAX baselines first, then ntkc's methods.
BASELINES = ("jax_jacobian", "jax_ntvp")
NTKC_METHODS = ("jacobian", "ntvp", "structured", "auto")
METHODS = BASELINES + NTKC_METHODS
#: neural-tangents 0.6.5's implementations (``nt.NtkImplementation``), the paper's reference code.
REFERENCE = ("nt_jacobian", "nt_ntvp", "nt_structured", "nt_auto")
#: Every method a row can name, in the order tables and plots list them.
ALL_METHODS = METHODS + REFERENCE


def ordered(methods) -> list[str]:
    """The given method names in :data:`ALL_METHODS` order (tables' columns, plots' lines)."""
    return sorted(set(methods), key=ALL_METHODS.index)


@dataclasses.dataclass(frozen=True)
class Config:
    """One model at one size; ``figure`` is "mlp" (paper Fig. 1/3) or "flax" (Fig. 2/4)."""
    figure: str
    model: str
    W: int
    O: int
    N: int
    image: int = 0
    same: bool = False  # x2 = None: the training kernel of x1 with itself

    @property
    def key(self) -> str:
        size = f"_{self.image}px" if self.image else ""
        return f"{self.model}{size}_W{self.W}_O{self.O}_N{self.N}" + ("_same" if self.same else "")

    def build(self):
        """``(f, params, x1, x2)`` with ``N`` examples per side (float32); ``x2`` None when
        ``same``. Parameters and inputs are put on the device once, as a model's are held: a
        timed call then runs the kernel, not copies of NumPy arguments (JAX 0.10 copies each
        NumPy argument on every call, about 4 µs an array here against 1 µs in JAX 0.4.23 —
        more than the whole kernel of the smallest MLPs)."""
        import jax

        if self.figure == "mlp":
            from methods_grid import make
            f, params, x1, x2 = make("mlp", self.W, self.O, self.N)
        else:
            from models_flax import make
            f, params, x1, x2 = make(self.model, self.W, self.O, self.N, self.image)
        params, x1, x2 = jax.device_put((params, x1, None if self.same else x2))
        return f, params, x1, x2


@dataclasses.dataclass(frozen=True)
class Preset:
    """A grid of configurations, the per-process time-out, and how long it is expected to take."""
    name: str
    mlp_widths: tuple[int, ...]
    mlp_outputs: tuple[int, ...]
    mlp_batches: tuple[int, ...]
    flax_models: tuple[tuple[str, int], ...]     # (family, width)
    flax_images: tuple[int, ...]
    flax_outputs: tuple[int, ...]
    flax_batches: tuple[int, ...]
    timeout_s: float
    expected: str
    methods: tuple[str, ...] = METHODS
    sides: tuple[bool, ...] = (False,)  # x2 given (False) and/or x2 = None (True)

    def configs(self) -> list[Config]:
        mlp = [Config("mlp", "mlp", w, o, n, same=same)
               for same, o, n, w in itertools.product(self.sides, self.mlp_outputs, self.mlp_batches, self.mlp_widths)]
        flax = [Config("flax", family, width, o, n, image, same=same)
                for same, (family, width), image, o, n in itertools.product(
                    self.sides, self.flax_models, self.flax_images, self.flax_outputs, self.flax_batches)]
        return mlp + flax


PRESETS = {
    "quick": Preset(
        "quick", mlp_widths=(64, 512), mlp_outputs=(1, 16), mlp_batches=(4,),
        flax_models=(("resnet18", 8), ("wide_resnet", 16), ("vit", 32), ("mixer", 32)),
        flax_images=(32,), flax_outputs=(10,), flax_batches=(2,),
        timeout_s=60, expected="6.8 min on 2 CPU cores (fresh clone, 48 points)"),
    "full": Preset(
        "full", mlp_widths=(64, 128, 256, 512, 1024, 2048, 4096), mlp_outputs=(1, 16, 128),
        mlp_batches=(1, 8, 32),
        flax_models=(("resnet18", 8), ("resnet50", 4), ("wide_resnet", 16), ("vit", 32), ("mixer", 32)),
        flax_images=(32, 64), flax_outputs=(1, 10, 100), flax_batches=(1, 4),
        timeout_s=600, expected="≈ 4–5 h on 2 CPU cores (98 of its 123 configurations measured in 144 min; "
                                "the rest estimated: docs/benchmarks.md)"),
    "reference": Preset(
        "reference", mlp_widths=(64, 256, 1024), mlp_outputs=(1, 16, 128), mlp_batches=(8,),
        flax_models=(("resnet18", 8), ("vit", 32), ("transformer", 64)), flax_images=(32,), flax_outputs=(10,),
        flax_batches=(4,), timeout_s=300, methods=METHODS + REFERENCE, sides=(False, True),
        expected="MLP part (--only ^mlp_): 24.7 min on 2 CPU cores; the Flax configurations take far longer "
                 "(neural-tangents' structured compile of the ViT alone takes about 6 min)"),
}

"""A corpus of real layers: every parameter-holding layer of Flax linen and NNX, Equinox and Haiku,
small models composed of them, and plain-JAX idioms, each as a tiny ``(f, params, x1, x2)``.

``CORPUS`` maps a name (``"library/layer"``) to a :class:`CorpusEntry`; ``entry.build()`` gives
``(f, params, x1, x2)`` with ``f(params, x)`` batched on axis 0 of ``x`` and of its output, a few
examples (3 and 2), at most 12 outputs per example and a few hundred parameters, so a brute-force
``jax.jacrev`` oracle stays cheap. Parameters and inputs come in the default floating dtype (float64
when ``jax_enable_x64`` is on); every model is a ``vmap`` over examples (``vmap_axes=0`` is valid).

Each library has one entry per parameter-holding layer *kind* of :data:`KINDS` it offers (dense;
convolution and transposed convolution in 1, 2 and 3 D; grouped and depthwise convolution; batch,
layer, group and RMS norm; embeddings; masked multi-head attention; LSTM and GRU cells run by the
library's own scan wrapper; dropout; weight and spectral normalisation where offered; a small
CNN), and each plain-JAX idiom is a kind of its own. Further entries (``kind=None``) add the
libraries' other layers and variants: more recurrent cells, bidirectional and masked sequences,
local, circular and separable convolutions, LoRA, tied weights, a transformer per library.

Each entry lists what ``method="structured"`` is *documented* to do densely for it
(``fallbacks``: the primitives whose consumers get a dense Jacobian block with a
:class:`ntkc.DenseFallbackWarning`) and the methods that give way to Jacobian contraction with a
:class:`ntkc.MethodFallbackWarning` (``method_fallbacks``: ``ntvp`` through a ``jax.custom_vjp``,
which runs only in reverse mode). Both are exact; ``tests/test_corpus.py`` checks every entry
against the float64 oracle and that no other warning is raised.

The modules are imported on first use of :data:`CORPUS` (they import the libraries, which
``pip install "ntkc[adapters]"`` installs)::

    from ntkc.testing.corpus import CORPUS
    f, params, x1, x2 = CORPUS["linen/dense"].build()
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Callable, Iterator

__all__ = ["CorpusEntry", "CORPUS", "LIBRARIES", "KINDS"]

#: The corpus modules, one per library (``idioms`` holds plain-JAX models, library ``"jax"``).
LIBRARIES = ("linen", "nnx", "equinox", "haiku", "idioms")

#: The layer kinds every library has an entry for (where it offers the layer).
KINDS = ("dense", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
         "grouped_conv", "depthwise_conv", "batch_norm", "layer_norm", "group_norm", "rms_norm", "embedding",
         "attention", "lstm", "gru", "dropout", "weight_norm", "spectral_norm", "cnn")


@dataclasses.dataclass(frozen=True)
class CorpusEntry:
    """One corpus model.

    Attributes:
      name: ``"library/layer"``, unique.
      library: ``"linen"``, ``"nnx"``, ``"equinox"``, ``"haiku"`` or ``"jax"`` (plain JAX).
      layer: what it exercises, e.g. ``"conv_transpose2d"``, ``"lstm"``.
      build: ``build(dtype=None) -> (f, params, x1, x2)``; ``dtype`` defaults to JAX's default
        floating dtype.
      fallbacks: the primitives whose consumers ``structured`` forms densely (each with a
        ``DenseFallbackWarning``), and why — empty for full structure.
      method_fallbacks: the methods that fall back to Jacobian contraction (each with a
        ``MethodFallbackWarning``).
      kind: the layer kind of :data:`KINDS` (or, for plain JAX, the idiom) the entry stands for
        in its library; ``None`` for a further layer or variant.
      precision: ``None``, or the lower dtype part of the model computes in whatever the
        parameters' dtype (a library op that casts to float32): the kernel is exact to that
        dtype's precision only, as the methods round differently in that part.
      note: what is special about the entry.
    """

    name: str
    library: str
    layer: str
    build: Callable[..., tuple]
    fallbacks: tuple[str, ...] = ()
    method_fallbacks: tuple[str, ...] = ()
    kind: str | None = None
    precision: str | None = None
    note: str = ""


class _Corpus(Mapping):
    """The registry, filled by importing the library modules on first access."""

    def __init__(self) -> None:
        self._entries: dict[str, CorpusEntry] = {}
        self._loaded = False

    def _load(self) -> dict[str, CorpusEntry]:
        if not self._loaded:
            self._loaded = True
            for module in LIBRARIES:
                importlib.import_module(f"{__name__}.{module}")
            order = {"jax" if m == "idioms" else m: i for i, m in enumerate(LIBRARIES)}
            self._entries = dict(sorted(self._entries.items(), key=lambda kv: order[kv[1].library]))
        return self._entries

    def add(self, entry: CorpusEntry) -> None:
        if entry.name in self._entries:
            raise ValueError(f"duplicate corpus entry {entry.name!r}")
        self._entries[entry.name] = entry

    def __getitem__(self, name: str) -> CorpusEntry:
        try:
            return self._load()[name]
        except KeyError:
            raise KeyError(f"unknown corpus entry {name!r}; valid names: {', '.join(self._entries)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


#: Every corpus entry by name, in library order.
CORPUS: Mapping[str, CorpusEntry] = _Corpus()


def register(library: str, layer: str, *, name: str | None = None, fallbacks: tuple[str, ...] = (),
             method_fallbacks: tuple[str, ...] = (), kind: str | None = None, precision: str | None = None,
             note: str = "") -> Callable:
    """Decorator adding ``build`` to :data:`CORPUS` as ``"<library>/<name or layer>"``."""

    def decorator(build: Callable) -> Callable:
        CORPUS.add(CorpusEntry(name=f"{library}/{name or layer}", library=library, layer=layer, build=build,
                               fallbacks=tuple(fallbacks), method_fallbacks=tuple(method_fallbacks),
                               kind=kind, precision=precision, note=note))
        return build

    return decorator

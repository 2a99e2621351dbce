"""The corpus of real layers (:mod:`ntkc.testing.corpus`): every method's kernel of every layer of
Flax linen and NNX, Equinox and Haiku, and of the plain-JAX idioms, equals the float64 oracle
(full kernel, ``trace_axes=()``, ``vmap_axes=0``, x2 given), and ``structured`` raises a
``DenseFallbackWarning`` exactly for the primitives its entry documents (most entries: none), a
``MethodFallbackWarning`` only for the methods its entry lists.

Default suite, within about 30 s of CPU: every layer kind of ``corpus.KINDS`` in one library,
the libraries in rotation over the kinds (kind i in the i-th library offering it, cyclically), and
every plain-JAX idiom; on each, ``structured`` and one other method, the methods in rotation by
the entry's index, both in one ``jax.jit`` program (one compilation). The full cross — every
method on every entry of every library, further layers and variants included — is marked
``corpus_full`` and deselected by default::

    python -m pytest -n 0 -m corpus_full tests/test_corpus.py
"""

from __future__ import annotations

import functools
import re
import warnings

import jax
import jax.numpy as jnp
import pytest

import ntkc
from ntkc.testing.corpus import CORPUS, KINDS
from reference import oracle_ntk
from zoo_cases import assert_equal_to_oracle

NAMES = list(CORPUS)
OTHERS = ("jacobian", "ntvp", "auto")


def default_entries() -> list[str]:
    """Kind i of ``KINDS`` in the (i mod n)-th of the n libraries offering it, then every idiom."""
    chosen = []
    for i, kind in enumerate(KINDS):
        offering = [name for name in NAMES if CORPUS[name].kind == kind]
        chosen.append(offering[i % len(offering)])
    return chosen + [name for name in NAMES if CORPUS[name].library == "jax" and CORPUS[name].kind]


DEFAULT = default_entries()


def rotation(index: int) -> str:
    """The method that runs next to ``structured`` on the ``index``-th entry by default."""
    return OTHERS[index % len(OTHERS)]


@functools.lru_cache(maxsize=None)
def case(name: str):
    """``(f, params, x1, x2)`` of a corpus entry in float64 (built once per process)."""
    return CORPUS[name].build(jnp.float64)


@functools.lru_cache(maxsize=None)
def reference(name: str):
    f, params, x1, x2 = case(name)
    return oracle_ntk(f, x1, x2, params, trace_axes=(), vmap_axis=(0, 0))


def _primitive(message: str) -> str:
    found = re.search(r"primitive '([^']+)'", message)
    return found.group(1) if found else message


def check(name: str, methods: tuple[str, ...]) -> None:
    """Each method's kernel equals the oracle; the fallbacks are the documented ones."""
    entry, (f, params, x1, x2) = CORPUS[name], case(name)
    kernels = [ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method=m) for m in methods]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = jax.jit(lambda a, b, p: [k(a, b, p) for k in kernels])(x1, x2, params)
    want = reference(name)
    assert sum(leaf.size for leaf in jax.tree_util.tree_leaves(params)) <= 300, f"{name}: too many parameters"
    assert all(leaf.size <= 12 ** 2 * 6 for leaf in jax.tree_util.tree_leaves(want)), f"{name}: over 12 outputs"
    for method, kernel in zip(methods, got):
        assert_equal_to_oracle(kernel, want, jnp.float64, f"{name} {method}", precision=entry.precision)
    dense = {_primitive(str(w.message)) for w in caught if issubclass(w.category, ntkc.DenseFallbackWarning)}
    fell_back = {m for w in caught if issubclass(w.category, ntkc.MethodFallbackWarning)
                 for m in methods if f"method='{m}'" in str(w.message)}
    if "structured" in methods:
        assert dense == set(entry.fallbacks), f"{name}: structured densifies {dense}, documented {entry.fallbacks}"
    else:
        assert dense <= set(entry.fallbacks), f"{name}: undocumented dense fallbacks {dense}"
    assert fell_back == set(entry.method_fallbacks) & set(methods), \
        f"{name}: methods {fell_back} fell back, documented {entry.method_fallbacks}"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in DEFAULT])
def test_structured_and_one_other(name):
    check(name, ("structured", rotation(DEFAULT.index(name))))


@pytest.mark.corpus_full
@pytest.mark.parametrize("method", sorted(set(ntkc.METHODS) | {"auto"}))
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in NAMES])
def test_every_method(name, method):
    check(name, (method,))


def test_corpus_is_well_formed():
    """Names are ``library/layer``; every library has an entry of every kind but weight norm
    (Haiku offers none), one each; the default suite reaches every library and every other
    method. (Sizes are checked where each entry is built.)"""
    for name, entry in CORPUS.items():
        assert name.startswith(entry.library + "/"), name
        assert set(entry.method_fallbacks) <= set(ntkc.METHODS) | {"auto"}, name
    for library in ("linen", "nnx", "equinox", "haiku"):
        kinds = [e.kind for e in CORPUS.values() if e.library == library and e.kind]
        assert sorted(kinds) == sorted(k for k in KINDS if (library, k) != ("haiku", "weight_norm")), library
    assert {CORPUS[name].library for name in DEFAULT} == {"linen", "nnx", "equinox", "haiku", "jax"}
    assert {rotation(i) for i in range(len(DEFAULT))} == set(OTHERS)

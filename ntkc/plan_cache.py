"""The plan cache and the keys it files plans under: shapes, dtypes, tree structures and the
non-array keyword arguments — never values."""

from __future__ import annotations

import collections
import threading
from typing import Any

import jax
import numpy as np

from ntkc.batching import partition_kwargs, split_kwargs, static_key

PyTree = Any


def tree_key(tree: PyTree) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(tree, is_leaf=lambda a: a is None)
    return treedef, tuple(leaves)


def spec_key(tree: PyTree) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((tuple(np.shape(l)), np.dtype(jax.numpy.result_type(l)).str) for l in leaves)


def kwargs_key(kwargs: dict) -> tuple:
    keys = []
    for side in split_kwargs(kwargs):
        arrays, static = partition_kwargs(side)
        keys.append((spec_key(arrays), static_key(static)))
    return tuple(keys)


class PlanCache:
    """A bounded least-recently-used cache of plans."""

    def __init__(self, maxsize: int = 128) -> None:
        self.maxsize = maxsize
        self._plans: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            found = self._plans.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._plans.move_to_end(key)
            return found

    def put(self, key, value) -> None:
        with self._lock:
            self._plans[key] = value
            self._plans.move_to_end(key)
            while len(self._plans) > self.maxsize:
                self._plans.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self.hits = self.misses = 0

    def info(self) -> dict:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "size": len(self._plans), "maxsize": self.maxsize}

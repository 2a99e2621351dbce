"""Aliases of modules that moved: ``__getattr__ = moved(__name__, {...})`` in the old module
finds each name in its new home and warns (``DeprecationWarning``) that it moved.

>>> import warnings
>>> from ntkc.passes import flops
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     rule = flops.eqn_flops
>>> rule.__module__, caught[0].category.__name__
('ntkc.passes.cost', 'DeprecationWarning')
"""

from __future__ import annotations

import importlib
import warnings


def moved(old: str, targets: dict[str, str], default: str):
    """A module ``__getattr__``: name -> ``"module:attribute"`` in ``targets``, any other name
    looked up in module ``default``."""
    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        module, _, attr = targets.get(name, f"{default}:{name}").partition(":")
        value = getattr(importlib.import_module(module), attr, None)
        if value is None:
            raise AttributeError(f"module {old!r} (moved to {default!r}) has no attribute {name!r}")
        warnings.warn(f"{old}.{name} moved to {module}.{attr}; import it from there.", DeprecationWarning,
                      stacklevel=2)
        return value
    return __getattr__

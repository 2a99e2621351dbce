"""Factor recipes for the index rules (registered into :data:`ntkc.backends.factors.FACTOR_OPS`)."""

from __future__ import annotations

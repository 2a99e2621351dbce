"""Factor recipes for the conv rules (registered into :data:`ntkc.backends.factors.FACTOR_OPS`)."""

from __future__ import annotations

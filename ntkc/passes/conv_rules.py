"""Structure rules for the conv primitives (registered into :data:`ntkc.passes.structure_rules.RULES`)."""

from __future__ import annotations

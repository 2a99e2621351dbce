"""Structure rules for the index primitives (registered into :data:`ntkc.passes.structure_rules.RULES`)."""

from __future__ import annotations

"""Rule samples for the index rules (see rule_samples.py)."""

from __future__ import annotations


def register(add) -> None:
    """Add samples with ``add(primitive_name, RuleSample(...), ...)``."""

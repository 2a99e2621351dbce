"""Peak memory of a benchmark row, where it is known.

Usage::

    peak_mib(row)        # MiB, or None
"""

from __future__ import annotations


def peak_mib(row: dict) -> float | None:
    """A row's peak RSS [MiB], or None where it is not known. Rows measured before the worker read
    ``VmHWM`` (no ``"rss"`` field) took ``ru_maxrss``, which starts at the parent's peak: where
    their peak equals their pre-compile reading, the process never rose above that inherited
    floor, and its own peak is unknown (at most that value)."""
    peak = row.get("peak_rss_mib")
    if peak is None or ("rss" not in row and peak - row.get("rss_setup_mib", 0) < 0.5):
        return None
    return peak

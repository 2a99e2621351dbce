"""Moved: FLOP counts are part of the cost model, :mod:`ntkc.passes.cost`."""

from ntkc._moved import moved

__getattr__ = moved(__name__, {}, "ntkc.passes.cost")

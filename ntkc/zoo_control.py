"""Moved: the zoo's control-flow models are :mod:`ntkc.testing.control`."""

from ntkc._moved import moved

__getattr__ = moved(__name__, {}, "ntkc.testing.control")

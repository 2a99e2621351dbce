"""Moved: the zoo's model functions are :mod:`ntkc.testing.models`."""

from ntkc._moved import moved

__getattr__ = moved(__name__, {}, "ntkc.testing.models")

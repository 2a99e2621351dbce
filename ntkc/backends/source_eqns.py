"""Moved: the equation printer of exported source is :mod:`ntkc.export.equations`."""

from ntkc._moved import moved

__getattr__ = moved(__name__, {}, "ntkc.export.equations")

"""Moved: factor recipes live with their rules in :mod:`ntkc.rules` (table: ``RECIPES``)."""

from ntkc._moved import moved

__getattr__ = moved(__name__, {"FACTOR_OPS": "ntkc.rules:RECIPES", "register_factor": "ntkc.rules:defrecipe"},
                    "ntkc.rules")

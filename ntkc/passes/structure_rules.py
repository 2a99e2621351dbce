"""Moved: the structure rules live in :mod:`ntkc.rules` (tables and families), their forms in
:mod:`ntkc.ir.forms`."""

from ntkc._moved import moved

__getattr__ = moved(__name__, {
    "JacobianForm": "ntkc.ir.forms:JacobianForm", "FactorSpec": "ntkc.ir.forms:FactorSpec",
    "operand_factor": "ntkc.ir.forms:operand_factor", "constant_factor": "ntkc.ir.forms:constant_factor",
    "register": "ntkc.rules:defrule",
}, "ntkc.rules")

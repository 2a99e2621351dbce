"""ntkc: a compiler for the finite-width neural tangent kernel of JAX functions."""

from ntkc import adapters
from ntkc.api import ntk_fn, valid_methods
from ntkc.axes import KernelAxes
from ntkc.compiled import CompiledNTK, compile, deserialize
from ntkc.methods import METHODS
from ntkc.report import CostReport, cost_report

__all__ = ["ntk_fn", "valid_methods", "KernelAxes", "METHODS", "cost_report", "CostReport",
           "compile", "CompiledNTK", "deserialize"]
__version__ = "0.1.0"

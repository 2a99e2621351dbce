"""ntkc: a compiler for the finite-width neural tangent kernel of JAX functions."""

from ntkc import adapters, predict
from ntkc._version import __version__
from ntkc.api import NtkImplementation, ntk_fn
from ntkc.axes import KernelAxes
from ntkc.compiled import CompiledNTK, compile, deserialize
from ntkc.errors import (
    ComplexIntermediates, ConvergenceWarning, DenseFallbackWarning, ExportError, ForwardModeUnavailable, MethodFallbackWarning, MultiOutputConsumer,
    ReverseModeUnavailable, StructureUnavailable,
)
from ntkc.methods import METHODS, Method
from ntkc.operator import NTKOperator, identity, ntk_operator
from ntkc.planning import NTKPlan, plan, run_plan, valid_methods
from ntkc.report import CostReport, cost_report
from ntkc.tiling import TilePlan, ntk_matrix, tile_plan

__all__ = ["ntk_fn", "NtkImplementation", "valid_methods", "KernelAxes", "METHODS", "Method", "cost_report", "CostReport",
           "compile", "CompiledNTK", "deserialize", "plan", "run_plan", "NTKPlan", "ntk_matrix", "tile_plan", "TilePlan",
           "ntk_operator", "NTKOperator", "identity", "predict", "ConvergenceWarning",
           "StructureUnavailable", "ComplexIntermediates", "ReverseModeUnavailable", "ForwardModeUnavailable", "MultiOutputConsumer",
           "MethodFallbackWarning", "DenseFallbackWarning", "ExportError", "__version__"]

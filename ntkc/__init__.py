"""ntkc: a compiler for the finite-width neural tangent kernel of JAX functions."""

from ntkc.api import ntk_fn, valid_methods
from ntkc.axes import KernelAxes
from ntkc.methods import METHODS

__all__ = ["ntk_fn", "valid_methods", "KernelAxes", "METHODS"]
__version__ = "0.1.0"

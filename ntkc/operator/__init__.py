"""The NTK as a linear operator: products, solves and spectra without (or with) the matrix.

:func:`ntk_operator` builds an :class:`NTKOperator` (:mod:`ntkc.operator.core`); its vectors'
shapes come from :mod:`ntkc.operator.rows`, its matrix-free products from
:mod:`ntkc.operator.products`, and the choice between those and a dense matrix from
:mod:`ntkc.operator.choice`.
"""

from ntkc.operator.choice import Choice
from ntkc.operator.core import NTKOperator, ScaledIdentity, identity, ntk_operator

__all__ = ["ntk_operator", "NTKOperator", "identity", "ScaledIdentity", "Choice"]

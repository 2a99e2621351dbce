"""Kernels of any size, tile by tile: :func:`ntk_matrix` and :func:`tile_plan`.

A kernel of ``N1 × N2`` examples is a grid of tiles, each one call of a compiled
:class:`ntkc.NTKPlan` for the tile's shapes (:mod:`ntkc.tiling.plan` chooses the tile from the
cost model under a memory budget; :mod:`ntkc.tiling.geometry` places tiles in the kernel and
mirrors them when x2 is x1; :mod:`ntkc.tiling.store` assembles them in memory or in
memory-mapped files and records finished tiles so an interrupted run resumes).
"""

from ntkc.tiling import halves as _halves  # noqa: F401 (it registers its strategy in ntkc.planning.STRATEGIES)
from ntkc.tiling.driver import ntk_matrix, tile_plan
from ntkc.tiling.plan import TilePlan

__all__ = ["ntk_matrix", "tile_plan", "TilePlan"]

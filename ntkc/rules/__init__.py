"""Structure rules: for each linear primitive, the einsum form of its Jacobian, and the recipes
that compute the forms' factors at run time.

The tables live in :mod:`ntkc.rules.table`; the families that fill them are
:mod:`ntkc.rules.linear` (elementwise, contractions, reductions), :mod:`ntkc.rules.conv`
(convolutions, windowed sums) and :mod:`ntkc.rules.index` (reshapes, selections, gathers).
Importing this package registers every family. A new rule goes into the family it belongs to
(or a new module imported here), with ``@defrule("primitive")`` and ``@defrecipe("name")`` for
any recipe its factors need.
"""

from ntkc.rules import conv, index, linear
from ntkc.rules.table import RECIPES, RULES, NoStructure, apply_form, defrecipe, defrule, dense_rule, rule_for

__all__ = ["RULES", "RECIPES", "NoStructure", "defrule", "defrecipe", "dense_rule", "rule_for", "apply_form",
           "conv", "index", "linear"]

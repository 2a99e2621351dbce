"""Every structure rule's form equals its primitive's linear map, and the rule tables agree.

Looped over :data:`ntkc.rules.RULES`: a new rule is tested automatically, and a rule without
samples in ``rule_samples.py`` fails.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ntkc.backends.operands import PrimalEnv
from ntkc.ir.from_jaxpr import bind, lower_linear
from ntkc.passes.consumers import find_uses
from ntkc.rules import RECIPES, RULES, apply_form
from rule_samples import SAMPLES


def _cases():
    for name in sorted(RULES):
        for sample in SAMPLES.get(name, []):
            yield pytest.param(name, sample, id=f"{name}-{sample.id}")


def test_every_rule_has_samples():
    assert sorted(set(RULES) - set(SAMPLES)) == []


def test_samples_name_only_rules():
    assert sorted(set(SAMPLES) - set(RULES)) == []


def test_every_recipe_used_by_a_sample_exists():
    """Recipes are checked where rules produce them: any unknown name fails the rule test; this
    checks the table itself is consistent (callable entries)."""
    assert all(callable(fn) for fn in RECIPES.values())


@pytest.mark.parametrize("name, sample", list(_cases()))
def test_rule_matches_primitive(name, sample):
    graph = lower_linear(sample.fn, sample.theta, sample.other)
    uses = [u for u in find_uses(graph) if u.eqn.name == name]
    assert uses, f"sample {sample.id} has no {name} equation reading θ̇ directly:\n{graph.pretty()}"
    primal = PrimalEnv.of_graph(graph, jax.tree_util.tree_leaves(sample.other))
    rng = np.random.default_rng(0)
    for use in uses:
        for spec in use.form.factors:
            assert spec.recipe in RECIPES, f"{name}: unknown factor recipe {spec.recipe!r}"
        arrays = primal.factors(use)
        for spec, arr in zip(use.form.factors, arrays):
            assert tuple(arr.shape) == tuple(spec.shape), (spec, arr.shape)
        theta_var = use.eqn.inputs[use.position]
        for _ in range(2):
            theta = rng.normal(size=theta_var.shape)
            vals = [primal.linear_zero(v) for v in use.eqn.inputs]
            vals[use.position] = theta
            expected = bind(use.eqn, vals)[0]
            got = apply_form(use.form, arrays, theta, use.output.shape)
            tol = 1e-12 if np.asarray(expected).dtype == np.float64 else 1e-6
            np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=tol, atol=tol)

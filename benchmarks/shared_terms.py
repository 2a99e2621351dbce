"""How much could sharing intermediates across a plan's einsum terms save? An upper bound.

Usage:
    python benchmarks/shared_terms.py [--preset quick] [--repeats 30]

Every contraction of a structured plan runs as a chain of pairwise steps. Two steps are the same
computation when they contract the same arrays with the same label pattern (labels renamed
canonically, size-1 axes ignored, a cotangent identified by its target). For every configuration
of the preset (full kernel, ``vmap_axes=0``) this reports

* the predicted FLOPs of the structured program, of its contractions, and of the steps that
  repeat an earlier one — what computing each intermediate once could save at most;
* measured kernel time of the plan as it is, and of the plan without every term whose whole
  contraction repeats another term's intermediate (a weight's bias term, when both read one
  cotangent) — an upper bound of the time sharing saves (that kernel is wrong: it is a bound).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
import statistics
import sys
import time
import warnings

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from presets import PRESETS  # noqa: E402


def _canonical(leaves, kept):
    ids: dict = {}
    body = tuple((key, tuple(ids.setdefault(l, len(ids)) for l in labels)) for key, labels in sorted(leaves))
    return body, frozenset(ids[l] for l in kept if l in ids)


def step_keys(c, kernel, comp, sizes) -> list[tuple]:
    """``(canonical key, FLOPs)`` of every pairwise step of contraction ``c``."""
    from ntkc.passes.cost import step_flops

    physical = (lambda s: 1) if len(comp.sides) == 1 else (lambda s: s)
    big = lambda labels: tuple(l for l in labels if sizes[l] != 1)

    def array(op):
        if op.kind == "cotangent":  # a cotangent is its target's: uses meeting at one sum share it
            target = comp.sides[physical(op.side) - 1].uses[op.index].output
            return (kernel.output, physical(op.side), "cotangent", id(target))
        return (-1, physical(op.side), op.kind, op.index, op.factor)

    ops = [([(array(op), big(op.labels))], tuple(op.labels)) for op in c.operands]
    keys = []
    for step in c.path or ():
        picked = [ops[i] for i in step]
        for i in sorted(step, reverse=True):
            del ops[i]
        involved = list(dict.fromkeys(l for _, labels in picked for l in labels))
        needed = set(c.output).union(*[set(labels) for _, labels in ops]) if ops else set(c.output)
        kept = tuple(l for l in involved if l in needed)
        leaves = [leaf for group, _ in picked for leaf in group]
        keys.append((_canonical(leaves, big(kept)), step_flops(involved, len(kept) < len(involved), len(picked), sizes)))
        ops.append((leaves, kept))
    return keys


def repeated_steps(plan):
    """(contraction FLOPs, FLOPs of steps repeating an earlier one, ``(kernel, term)`` of terms
    whose whole contraction is a step of another term)."""
    comp = plan.compilation
    seen: set = set()
    total = repeated = 0
    redundant = set()
    for kernel in comp.kernels:
        sizes = kernel.label_sizes()
        for jac in kernel.jacobians:
            sizes.update(zip(jac.labels, jac.shape))
        for c in kernel.contractions():
            for key, flops in step_keys(c, kernel, comp, sizes):
                total += flops
                repeated += flops if key in seen else 0
                seen.add(key)
        terms = [[key for key, _ in step_keys(t.contraction, kernel, comp, sizes)] for t in kernel.terms]
        for t, keys in enumerate(terms):  # of two identical terms, the later one is redundant
            if keys and any(keys[-1] in other and (other[-1] != keys[-1] or u < t)
                            for u, other in enumerate(terms) if u != t and (kernel.output, u) not in redundant):
                redundant.add((kernel.output, t))
    return total, repeated, redundant


def _time(compiled, args, repeats):
    import jax

    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bound(config, repeats: int) -> dict:
    import jax
    import ntkc
    from ntkc.backends import program as programs
    from ntkc.methods.calls import input_values

    f, params, x1, x2 = config.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = ntkc.plan(f, params, x1, x2, trace_axes=(), vmap_axes=0, method="structured")
    total, repeated, redundant = repeated_steps(plan)
    drop = {f"k{u}_term{t}" for u, t in redundant}
    steps = []
    for step in plan.program.steps:
        if getattr(step, "output", None) in drop:
            continue
        if isinstance(step, programs.Sum):
            step = dataclasses.replace(step, args=tuple(a for a in step.args if a not in drop))
        steps.append(step)
    cut = dataclasses.replace(plan.program, steps=tuple(steps))

    def compiled(program):
        def go(params, x1, x2):
            values = input_values(plan.problem, params, x1, {}, x2, {})
            return programs.run(program, dict(zip(program.inputs, values)))
        return jax.jit(go).lower(params, x1, x2).compile()

    args = (params, x1, x2)
    full_s, cut_s = [], []
    for _ in range(3):  # alternate, so both see the same load
        full_s.append(_time(compiled(plan.program), args, repeats))
        cut_s.append(_time(compiled(cut), args, repeats))
    return {"structured": int(plan.costs()["structured"].total_flops), "contractions": total,
            "repeated": repeated, "dropped_terms": len(drop),
            "run_s": statistics.median(full_s), "without_repeats_s": statistics.median(cut_s)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    p.add_argument("--repeats", type=int, default=30)
    a = p.parse_args()
    print("| configuration | structured FLOPs | contraction FLOPs | repeated | repeated ÷ structured | "
          "terms dropped | run [ms] | without them [ms] | time saved at most |")
    print("|---|---|---|---|---|---|---|---|---|")
    saved = []
    for config in PRESETS[a.preset].configs():
        r = bound(config, a.repeats)
        gain = 1 - r["without_repeats_s"] / r["run_s"]
        saved.append(r["run_s"] / r["without_repeats_s"])
        print(f"| {config.key} | {r['structured'] / 1e6:.1f}M | {r['contractions'] / 1e6:.1f}M | "
              f"{r['repeated'] / 1e6:.1f}M | {r['repeated'] / r['structured']:.1%} | {r['dropped_terms']} | "
              f"{1e3 * r['run_s']:.3f} | {1e3 * r['without_repeats_s']:.3f} | {gain:.1%} |", flush=True)
    geo = math.exp(sum(map(math.log, saved)) / len(saved))
    print(f"| geometric mean | | | | | | | | {1 - 1 / geo:.1%} |")


if __name__ == "__main__":
    main()

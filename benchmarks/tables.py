"""The Markdown report of a benchmark run: headline ratios, agreement, losses, tables.

``report(rows, info)`` takes the rows ``run.py`` writes as JSON lines and the run's ``info``
(machine, preset, wall time) and returns the Markdown text of ``bench_<preset>.md``.

Usage::

    rows = [json.loads(line) for line in open("docs/bench_quick.jsonl")]
    print(report(rows, {"preset": "quick"}))
"""

from __future__ import annotations

import math
from collections import defaultdict

from agreement import TOLERANCE
from peak import peak_mib
from presets import BASELINES, ordered

SHORT_MISSING = {"out of memory": "OOM", "time-out": "time-out", "error": "error"}


def _by_config(rows) -> dict[str, dict[str, dict]]:
    configs: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        configs[r["key"]][r["method"]] = r
    return configs


def _time(r: dict | None, field: str = "run_s") -> float | None:
    return None if r is None else r.get(field)


def _cell(r: dict | None) -> str:
    if r is None:
        return "–"
    if "run_s" not in r:
        return SHORT_MISSING.get(r.get("missing"), "–")
    return f"{r['run_s'] * 1e3:.1f}"


def _gmean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def headline(rows, field: str = "run_s") -> list[str]:
    """Per model family: time(method) / time(structured), geometric mean (min–max) over configs;
    ``field`` is ``"run_s"`` (wall time) or ``"cpu_s"`` (CPU time of all threads)."""
    ratios: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for methods in _by_config(rows).values():
        base = _time(methods.get("structured"), field)
        family = next(iter(methods.values()))["model"]
        for m, r in methods.items():
            if base and _time(r, field) and m != "structured":
                ratios[family][m].append(_time(r, field) / base)
    others = [m for m in ordered(r["method"] for r in rows) if m != "structured"]
    lines = ["| model family | " + " | ".join(f"{m} / structured" for m in others) + " |",
             "|---|" + "---|" * len(others)]
    for family, per in ratios.items():
        cells = [("–" if not v else f"{v[0]:.2f}× (1)" if len(v) == 1
                  else f"{_gmean(v):.2f}× ({min(v):.2f}–{max(v):.2f}, {len(v)})") for v in (per.get(m, []) for m in others)]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return lines


def noise(rows, field: str = "run_s") -> float | None:
    """The largest ratio between two timings of one program: ``auto`` and ``structured`` where
    auto picked structured (they compile to the same program), either way round."""
    spread = [max(_time(a, field) / _time(s, field), _time(s, field) / _time(a, field))
              for methods in _by_config(rows).values()
              if (a := methods.get("auto")) and (s := methods.get("structured")) and _time(a, field)
              and _time(s, field) and a["auto_pick"] == "structured"]
    return max(spread) if spread else None


def losses(rows) -> list[str]:
    """Every configuration where some method beats structured, with the cost model's verdict."""
    lines, band = [], noise(rows)
    for key, methods in _by_config(rows).items():
        s = methods.get("structured")
        if not _time(s):
            continue
        timed = {m: r for m, r in methods.items() if _time(r) and m not in ("structured", "auto")}
        if not timed:
            continue
        winner = min(timed, key=lambda m: _time(timed[m]))
        w = timed[winner]
        if _time(w) >= _time(s):
            continue
        flops = s["predicted_flops"] / w["predicted_flops"] if w.get("predicted_flops") else None
        if flops is None:
            verdict = f"no prediction: {winner} is a choice ntkc's cost model does not price"
        elif flops > 1.05:
            verdict = f"predicted: structured needs {flops:.2f}× the FLOPs of {winner}'s algorithm"
        elif flops >= 1 / 1.05:
            verdict = f"a predicted tie ({flops:.2f}×): overheads the FLOP count does not see decide it"
        else:
            verdict = (f"missed: the cost model prices structured at {flops:.2f}× of {winner}'s FLOPs; "
                       "the time goes to what FLOPs do not count (memory traffic, small ops, dispatch)")
        beyond = "yes" if band is None or _time(s) / _time(w) > band else "no"
        cpu = (f"{_time(s, 'cpu_s') / _time(w, 'cpu_s'):.2f}×" if _time(s, "cpu_s") and _time(w, "cpu_s") else "–")
        lines.append(f"| {key} | {winner} | {_time(s) / _time(w):.2f}× | {cpu} | {beyond} | {verdict} |")
    if not lines:
        return ["structured is the fastest method at every measured point."]
    cpu_band = noise(rows, "cpu_s")
    head = [] if band is None else [
        f"Timing noise: where auto picked structured, the two run the same program; their wall times differ by "
        f"up to {band:.2f}× here" + (f" (CPU times by up to {cpu_band:.2f}×)" if cpu_band else "")
        + ". A loss by less than the wall-time spread is not beyond noise.", ""]
    return [*head, "| configuration | faster method (wall) | structured / it | same, CPU time | beyond noise "
            "| cost model |", "|---|---|---|---|---|---|", *lines]


def agreement(rows) -> list[str]:
    """Largest relative Frobenius error of any method's kernel against the reference, per family."""
    worst: dict[str, list] = {}                      # family -> [error, method, configs]
    refs = set()
    for methods in _by_config(rows).values():
        errs = [(r["rel_err"], r["method"]) for r in methods.values() if r.get("rel_err") is not None]
        if not errs:
            continue
        first = next(iter(methods.values()))
        refs.add(first["rel_err_ref"])
        entry = worst.setdefault(first["model"], [0.0, "–", 0])
        entry[2] += 1
        if max(errs)[0] >= entry[0]:
            entry[:2] = max(errs)
    lines = [f"Every method's kernel against the first method measured ({', '.join(sorted(refs))}), as the "
             f"relative Frobenius error; agreement means ≤ {TOLERANCE:g} (float32).", "",
             "| model family | configurations | largest error | method | agree |", "|---|---|---|---|---|"]
    for family, (err, method, n) in worst.items():
        lines.append(f"| {family} | {n} | {err:.1e} | {method} | {'yes' if err <= TOLERANCE else '**NO**'} |")
    return lines


def cost_model(rows) -> list[str]:
    """Per configuration: each baseline's time / structured's, predicted (FLOPs) and measured."""
    lines = ["| configuration | jax_jacobian / structured: predicted | measured | jax_ntvp / structured: predicted "
             "| measured | auto picks | fastest measured (auto aside) |", "|---|---|---|---|---|---|---|"]
    for key, methods in _by_config(rows).items():
        s = methods.get("structured")
        cells = []
        for m in BASELINES:
            r = methods.get(m)
            flops = r and s and r.get("predicted_flops") and s.get("predicted_flops")
            cells.append(f"{r['predicted_flops'] / s['predicted_flops']:.2f}" if flops else "–")
            cells.append(f"{_time(r) / _time(s):.2f}" if _time(r) and _time(s) else _cell(r) if r else "–")
        timed = {m: _time(r) for m, r in methods.items() if _time(r) and m != "auto"}
        fastest = min(timed, key=timed.get) if timed else "–"
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {next(iter(methods.values()))['auto_pick']} | {fastest} |")
    return lines


def time_table(rows) -> list[str]:
    """A row per configuration: every method's median run time [ms], ratios, agreement."""
    names = ordered(r["method"] for r in rows)
    lines = ["| model | image | W | O | N | P | " + " | ".join(names) +
             " | auto picks | jax_jacobian / structured | jax_ntvp / structured | max rel. err |",
             "|---|---|---|---|---|---|" + "---|" * (len(names) + 4)]
    for methods in _by_config(rows).values():
        c = next(iter(methods.values()))
        base = _time(methods.get("structured"))
        ratio = lambda m: f"{_time(methods[m]) / base:.1f}" if base and m in methods and _time(methods[m]) else "–"
        errs = [r["rel_err"] for r in methods.values() if r.get("rel_err") is not None]
        lines.append(f"| {c['model']} | {c['image'] or '–'} | {c['W']} | {c['O']} | {c['N']} | {c['params']:,} | "
                     + " | ".join(_cell(methods.get(m)) for m in names)
                     + f" | {c['auto_pick']} | {ratio('jax_jacobian')} | {ratio('jax_ntvp')} | "
                     + (f"{max(errs):.1e}" if errs else "–") + " |")
    return lines


def _peak(r: dict) -> str:
    """Peak RSS [MiB]; ``≤ X`` where only the inherited floor is known (:func:`peak.peak_mib`)."""
    if r.get("peak_rss_mib") is None:
        return "–"
    peak = peak_mib(r)
    return f"{peak:.0f}" if peak is not None else f"≤ {r['peak_rss_mib']:.0f}"


def detail_table(rows) -> list[str]:
    """A row per (configuration, method): compile, run, memory, predicted and XLA FLOPs."""
    lines = ["| configuration | method | compile [s] | run [ms] | CPU [ms] | peak RSS [MiB] | RSS before compile "
             "[MiB] | predicted GFLOP | XLA GFLOP | predicted memory [MiB] | rel. err | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    num = lambda v, scale, fmt: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v / scale, fmt)
    for r in rows:
        note = r.get("detail", "") if "run_s" not in r else ", ".join(f"fallback {p}" for p in r.get("fallbacks", []))
        lines.append(f"| {r['key']} | {r['method']} | {num(r.get('compile_s'), 1, '.2f')} | {_cell(r)} | "
                     f"{num(r.get('cpu_s'), 1e-3, '.1f')} | "
                     f"{_peak(r)} | {num(r.get('rss_setup_mib'), 1, '.0f')} | "
                     f"{num(r.get('predicted_flops'), 1e9, '.3f')} | {num(r.get('xla_flops'), 1e9, '.3f')} | "
                     f"{num(r.get('predicted_memory_bytes'), 2**20, '.1f')} | {num(r.get('rel_err'), 1, '.1e')} | "
                     f"{note.replace('|', '/')} |")
    return lines


def report(rows, info: dict) -> str:
    """The whole Markdown report: what was measured, on what, and the tables. When and how the
    measurement was made (dates, load averages, the runs a grid was measured in) stays in the
    meta file (``bench_<preset>.meta.json``)."""
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
    cpu = f" (CPU time of all its processes {info['cpu_s'] / 60:.1f} min)" if "cpu_s" in info else ""
    head = [f"# ntkc bench — preset `{info.get('preset')}`", "",
            f"Machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores; {versions}. "
            f"Wall time: {info.get('wall_s', 0) / 60:.1f} min{cpu}. Median of ≥ {info.get('repeats')} "
            f"runs per point, each (configuration, method) in its own process capped at {info.get('memory_gb')} "
            f"GiB, time-out {info.get('timeout_s', 0):.0f} s per process. Full kernels (`trace_axes=()`), "
            "`vmap_axes=0`, float32. Times in ms; OOM = out of memory (predicted over the cap, or the process ran "
            "out), time-out = over the per-process limit (or predicted to be).", ""]
    sections = [("Headline: time of each method / time of structured (geometric mean, min–max, points)",
                 headline(rows)),
                ("The same ratios in CPU time (all threads; robust to other load on a shared machine)",
                 headline(rows, "cpu_s")),
                ("Agreement of the kernels", agreement(rows)),
                ("Where structured loses", losses(rows)),
                ("Cost model: predicted FLOP ratios vs measured time ratios", cost_model(rows)),
                ("Median run time [ms]", time_table(rows)),
                ("Every point", detail_table(rows))]
    for title, lines in sections:
        head += [f"## {title}", "", *lines, ""]
    return "\n".join(head)

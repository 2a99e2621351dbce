"""PNG figures of a benchmark run (matplotlib, the ``bench`` extra).

* ``<preset>_mlp_time.png`` / ``_mlp_memory.png`` — paper Fig. 1/3: run time and peak RSS of the
  10-layer ReLU MLP against width W, log-log, a panel per (N, O), a line per method; a missing
  point is an out-of-memory or a time-out (or, on the memory plot, a peak not known:
  :func:`peak.peak_mib`).
* ``<preset>_flax_time.png`` / ``_flax_memory.png`` — paper Fig. 2/4: the Flax models (ordered by
  parameter count) at each image size, a panel per (N, O, image), a line per method.
* ``<preset>_cost_model.png`` — measured run time against the cost model's predicted FLOPs for
  every point and method, with lines of constant FLOP rate.

Usage::

    paths = plot_all(rows, pathlib.Path("docs/figures"), "quick")
"""

from __future__ import annotations

import pathlib

from peak import peak_mib
from presets import ALL_METHODS

STYLE = {"jax_jacobian": ("tab:gray", "--", "v"), "jax_ntvp": ("tab:brown", "--", "^"),
         "jacobian": ("tab:blue", "-", "v"), "ntvp": ("tab:orange", "-", "^"),
         "structured": ("tab:green", "-", "o"), "auto": ("tab:purple", ":", "x"),
         "nt_jacobian": ("tab:cyan", "-.", "v"), "nt_ntvp": ("tab:olive", "-.", "^"),
         "nt_structured": ("tab:red", "-.", "o"), "nt_auto": ("tab:pink", "-.", "x")}
METRICS = {"time": (lambda r: r.get("run_s"), "run time [s]"), "memory": (peak_mib, "peak RSS [MiB]")}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _panels(rows, keys):
    """Rows grouped by the tuple of ``keys``, in sorted order."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return dict(sorted(groups.items()))


def _grid(plt, n: int):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.2 * cols, 5.5), 3.4 * rows + 0.5), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _lines(ax, rows, x_of, metric: str):
    value = METRICS[metric][0]
    for m in ALL_METHODS:
        pts = sorted((x_of(r), value(r)) for r in rows if r["method"] == m and value(r) is not None)
        if pts:
            color, style, marker = STYLE[m]
            ax.plot(*zip(*pts), style, color=color, marker=marker, label=m, markersize=5)


def mlp_figure(rows, metric: str, path: pathlib.Path) -> pathlib.Path | None:
    rows = [r for r in rows if r["figure"] == "mlp"]
    if not rows:
        return None
    plt = _plt()
    panels = _panels(rows, ("N", "O"))
    fig, axes = _grid(plt, len(panels))
    for ax, ((n, o), group) in zip(axes, panels.items()):
        _lines(ax, group, lambda r: r["W"], metric)
        ax.set(xscale="log", yscale="log", xlabel="width W", ylabel=METRICS[metric][1], title=f"MLP, N={n}, O={o}")
        widths = sorted({r["W"] for r in group})
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"10-layer ReLU MLP: {metric} per method\n(missing point: out of memory or time-out)", fontsize=9)
    return _save(plt, fig, path)


def flax_figure(rows, metric: str, path: pathlib.Path) -> pathlib.Path | None:
    rows = [r for r in rows if r["figure"] == "flax"]
    if not rows:
        return None
    plt = _plt()
    panels = _panels(rows, ("image", "N", "O"))
    fig, axes = _grid(plt, len(panels))
    for ax, ((image, n, o), group) in zip(axes, panels.items()):
        models = sorted({(r["params"], r["model"], r["W"]) for r in group})
        position = {(m, w): i for i, (_, m, w) in enumerate(models)}
        _lines(ax, group, lambda r: position[(r["model"], r["W"])], metric)
        ax.set(yscale="log", ylabel=METRICS[metric][1], title=f"{image}×{image} px, N={n}, O={o}")
        ax.set_xticks(range(len(models)), [f"{m}\nW={w}\n{p / 1e3:.0f}k" for p, m, w in models], fontsize=7)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Flax models, by parameter count: {metric} per method\n(missing point: out of memory or time-out)",
                 fontsize=9)
    return _save(plt, fig, path)


def cost_figure(rows, path: pathlib.Path) -> pathlib.Path | None:
    rows = [r for r in rows if r.get("run_s") and r.get("predicted_flops")]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for m in ALL_METHODS:
        for figure, marker in (("mlp", "o"), ("flax", "s")):
            pts = [(r["predicted_flops"], r["run_s"]) for r in rows if r["method"] == m and r["figure"] == figure]
            if pts:
                ax.scatter(*zip(*pts), color=STYLE[m][0], marker=marker, s=18, alpha=0.8, label=f"{m} ({figure})")
    lo = min(r["predicted_flops"] for r in rows)
    hi = max(r["predicted_flops"] for r in rows)
    for rate in (1e9, 1e10, 1e11):
        ax.plot([lo, hi], [lo / rate, hi / rate], ":", color="0.6", linewidth=0.8)
        ax.annotate(f"{rate / 1e9:.0f} GFLOP/s", (hi, hi / rate), fontsize=7, color="0.4")
    ax.set(xscale="log", yscale="log", xlabel="predicted FLOPs (ntkc.cost_report)", ylabel="measured run time [s]",
           title="Cost model vs measurement (baselines priced as ntkc's same algorithm)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, ncol=2)
    return _save(plt, fig, path)


def _save(plt, fig, path: pathlib.Path) -> pathlib.Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(rows, directory: pathlib.Path, preset: str) -> list[pathlib.Path]:
    """Every figure the rows allow, as ``<directory>/<preset>_*.png``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    made = [mlp_figure(rows, m, directory / f"{preset}_mlp_{m}.png") for m in METRICS]
    made += [flax_figure(rows, m, directory / f"{preset}_flax_{m}.png") for m in METRICS]
    made.append(cost_figure(rows, directory / f"{preset}_cost_model.png"))
    return [p for p in made if p is not None]

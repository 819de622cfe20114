"""CSV and figures made from results (they never train; the Markdown is in documents).
matplotlib loads only here."""
from __future__ import annotations

import csv
import functools
import io
import json
import textwrap
from dataclasses import astuple, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .results import CompareSummary, EpochRecord, RunError, RunResult
from .runner import JobKey

COLORS = {"torch": "#d62728", "keras": "#1f77b4", "jax": "#2ca02c"}
#: each framework's line and marker besides its colour, so that curves lying on each other
#: stay visible: a large hollow circle around a small filled square, a triangle
LINES = {"torch": {"ls": "-", "marker": "o", "mfc": "none", "ms": 8, "lw": 1.6},
         "keras": {"ls": "--", "marker": "s", "ms": 3.5, "lw": 1.3},
         "jax": {"ls": "-.", "marker": "^", "mfc": "none", "ms": 6, "lw": 1.3}}
#: lines with no framework of their own (a study's figures), one after the other
CYCLE: list[dict[str, Any]] = [{"ls": ls, "marker": m, "color": c, **extra} for ls, m, c, extra in (
    ("-", "o", "#1f77b4", {"mfc": "none", "ms": 8}), ("--", "s", "#ff7f0e", {"ms": 3.5}),
    ("-.", "^", "#2ca02c", {"mfc": "none", "ms": 6}), (":", "D", "#d62728", {"ms": 4}),
    ("-", "v", "#9467bd", {"mfc": "none", "ms": 6}), ("--", "x", "#8c564b", {"ms": 6}))]
#: font sizes for figures read at the width a Markdown page shows them (about 900 px)
READABLE = {"font.size": 10, "axes.titlesize": 10.5, "axes.labelsize": 10, "xtick.labelsize": 9,
            "ytick.labelsize": 9, "legend.fontsize": 8.5, "figure.titlesize": 11}
#: the widest figure, inches (at 110 dpi: about the width a page shows without scaling down)
MAX_WIDTH = 10.0


def style(backend: str) -> dict:
    """A framework's colour, line style and marker."""
    return {"color": COLORS.get(backend), **LINES.get(backend, {"ls": "-", "marker": "o"})}


def runs_csv(jobs, results) -> str:
    """One row per run and epoch; test metrics repeated on each row of their run. The
    key columns are runner.JobKey's (a sweep's cell is its variant)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    epoch_fields = [f.name for f in fields(EpochRecord)]
    key_fields = [f.name for f in fields(jobs[0].key)] if jobs else []
    w.writerow([*key_fields, *epoch_fields, "final_test_loss", "final_test_acc", "error"])
    for job in jobs:
        r, key = results[job.key], [getattr(job.key, n) for n in key_fields]
        if isinstance(r, RunError):
            w.writerow([*key, *[""] * len(epoch_fields), "", "", r.last_line])
            continue
        for e in r.epochs:
            w.writerow([*key, *(getattr(e, n) for n in epoch_fields), r.test_loss, r.test_acc, ""])
    return buf.getvalue()


def _plt():
    import sys

    import matplotlib

    if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend for the user's own figures
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _readable(draw):
    """``draw`` with the READABLE font sizes (for this figure only: a caller's own settings
    stay as they are)."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with _plt().rc_context(READABLE):
            return draw(*args, **kwargs)
    return wrapper


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Running mean over ``window`` points (the first points over as many as there are)."""
    if window <= 1:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    n = np.arange(1, len(y) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)


def _band(ax, x, ys, smooth: int = 1, markers: int = 10, **line_style):
    """Mean over seeds as a line, the seeds' min-max as a band; returns the line.
    ``smooth``: a running mean over that many points first (noisy step losses);
    ``markers``: about this many markers along the line."""
    n = min(len(y) for y in ys)
    arr = np.asarray([_smooth(np.asarray(y[:n], dtype=float), smooth) for y in ys])
    x = np.asarray(x)[:n]
    line, = ax.plot(x, arr.mean(0), markevery=max(1, n // markers), **line_style)
    if len(ys) > 1:
        ax.fill_between(x, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.15, lw=0)
    return line


def save_figure(fig, path: Path) -> str:
    """Write ``fig`` as a PNG and close it; returns the file's name."""
    if fig.get_layout_engine() is None:  # a figure that lays itself out keeps its own
        with _plt().rc_context(READABLE):
            fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path.name


def _suptitle(fig, text: str) -> None:
    """The figure's title, each line wrapped to the figure's width (a narrow figure of
    one panel would cut a long title off)."""
    chars = int(fig.get_figwidth() * 11)  # characters per line at the title's size
    fig.suptitle("\n".join(textwrap.fill(line, chars) for line in text.split("\n")))


def _epoch_ticks(ax, epochs: int) -> None:
    """Whole epochs on the x axis (one tick each for a short run)."""
    if epochs <= 12:
        ax.set_xticks(range(1, epochs + 1))
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)


def _grid(n: int, width: float, height: float, **kw):
    """A figure of ``n`` panels, at most two side by side (wider would shrink on a page);
    panels left over are hidden. Returns the figure and its n axes."""
    cols = min(n, max(1, int(MAX_WIDTH // width)), 2)
    rows = -(-n // cols)
    fig, axes = _plt().subplots(rows, cols, figsize=(width * cols, height * rows + 0.6), squeeze=False, **kw)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


@_readable
def curves_figure(path: Path, title: str, ylabel: str, panels: list, log: bool = False) -> str:
    """One PNG of panels (at most two side by side). ``panels``: [(panel title, [(label, x,
    [y per seed])])]; each line is the mean over seeds with the min-max band of the seeds,
    each in a line style and marker of its own."""
    fig, axes = _grid(len(panels), 4.9, 3.7)
    for ax, (panel, lines) in zip(axes, panels):
        for (label, x, ys), st in zip(lines, CYCLE * len(lines)):
            _band(ax, x, ys, smooth=1, label=f"{label} (n={len(ys)})", **st)
        ax.set_title(panel)
        ax.set_xlabel("step" if "step" in ylabel else "epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    _suptitle(fig, f"{title}\n(lines: mean over seeds; bands: min–max of the seeds)")
    return save_figure(fig, path)


def compare_plots(out: Path, jobs, results, summary) -> list[str]:
    """The comparison's figures, one PNG each, the headline (forest.png) first; returns
    their file names. Curves: the mean over seeds with the seeds' min-max as a band. A
    figure whose data no run holds (steps, confusion matrices) is not drawn."""
    mode = "harmonized" if "harmonized" in summary.modes else summary.modes[0]
    by: dict = {}  # (mode, variant, backend): its finished runs
    for job in jobs:
        r = results[job.key]
        if not isinstance(r, RunError):
            by.setdefault((job.key.mode, job.key.variant, job.key.backend), []).append(r)
    runs = [r for rs in by.values() for r in rs]
    names = []
    if summary.paired:  # the headline: the paired difference in test accuracy with its 95% CI
        backends = summary.backends
        names.append(save_figure(forest_figure(summary.paired, f"{summary.spec}: " + (
            f"{backends[0]} − {backends[1]}" if len(backends) == 2 else "each pair's")
            + " test accuracy, paired by seed"), out / "forest.png"))
    if any(r.steps for r in runs):
        names.append(save_figure(_loss_figure(summary, by, mode), out / "loss_bn.png"))
    if not any(r.epochs for r in runs):  # every run failed before its first epoch: nothing to draw
        return names
    for name, metrics, ylabel, scale in (("train_val_loss.png", ("train_loss", "val_loss"), "cross-entropy", 1),
                                         ("accuracy.png", ("train_acc", "val_acc"), "accuracy %", 100)):
        names.append(save_figure(_epochs_figure(summary, by, mode, metrics, ylabel, scale), out / name))
    names.append(save_figure(_test_accuracy_figure(summary), out / "test_accuracy.png"))
    if any(r.confusion for r in runs):
        names.append(save_figure(_confusion_figure(summary, by, mode), out / "confusion.png"))
    if summary.ablation:
        names.append(save_figure(ablation_figure(summary.ablation), out / "ablation.png"))
    return names


def read_compare(out) -> tuple[list, dict, CompareSummary]:
    """A comparison's jobs (each with its ``key``), runs and summary from the files in
    ``out``, for compare_plots without training: results.json, and per run its
    result.json where it is kept (epochs, steps, confusion matrix), else its rows of
    results.csv (epochs alone)."""
    out = Path(out)
    summary = CompareSummary.from_dict(json.loads((out / "results.json").read_text()))
    rows: dict = {}
    with open(out / "results.csv", newline="") as f:
        for row in csv.DictReader(f):
            rows.setdefault((row["mode"], row["variant"], row["backend"], int(row["seed"])), []).append(row)
    floats = [f.name for f in fields(EpochRecord) if f.name != "epoch"]
    jobs: list = []
    results: dict[JobKey, Any] = {}
    for run in summary.runs:
        key = JobKey(run["mode"], run["variant"], run["backend"], run["seed"])
        path = out / "runs" / key.mode / key.variant / key.backend / f"seed{key.seed}" / "result.json"
        jobs.append(SimpleNamespace(key=key))
        if "error" in run:
            results[key] = RunError(run["error"])
        elif path.exists():
            results[key] = RunResult.read(path)
        else:
            values: list[dict[str, Any]] = [{n: float(r[n]) if r.get(n) else None for n in floats}
                                            for r in rows[astuple(key)]]
            epochs = [EpochRecord(int(r["epoch"]), **v) for r, v in zip(rows[astuple(key)], values)]
            results[key] = SimpleNamespace(epochs=epochs, steps=[], confusion=None, test_acc=run["test_acc"])
    return jobs, results, summary


def redraw_compare(out) -> list[str]:
    """Draw a comparison's figures again from its files in ``out`` (read_compare), without
    training; a figure whose data the files no longer hold stays as it is. Returns the
    names drawn."""
    return compare_plots(Path(out), *read_compare(out))


@_readable
def _loss_figure(summary, by: dict, mode: str):
    """Training loss vs step, one panel per variant (with and without BatchNorm, on one
    scale), every backend in each: a running mean over the logged steps, the seeds'
    min-max as a band."""
    variants = summary.variants
    fig, axes = _grid(len(variants), 4.9, 3.8, sharey=True)
    window = 1
    for ax, variant in zip(axes, variants):
        for backend in summary.backends:
            runs = [r for r in by.get((mode, variant, backend), []) if r.steps]
            if not runs:
                continue
            steps = np.asarray(runs[0].steps)[:, 0]
            window = max(1, len(steps) // 50)
            _band(ax, steps, [[v for _, v in r.steps] for r in runs], smooth=window,
                  label=f"{backend} (n={len(runs)})", **style(backend))
        if ax.lines:
            ax.set_yscale("log")
        ax.set_title(f"{variant} ({mode})")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    axes[0].set_ylabel("training cross-entropy (log scale)")
    smoothed = f", running mean over {window} logged points" if window > 1 else ""
    _suptitle(fig, f"{summary.spec}: training loss by step (mean over seeds{smoothed}; band: min–max of the seeds)")
    return fig


@_readable
def _epochs_figure(summary, by: dict, mode: str, metrics: tuple, ylabel: str, scale: float):
    """A training metric (top row) and a validation metric (bottom row) per epoch
    (``metrics``), one column per variant, every backend in each panel."""
    words = {"train": "training (running mean over the epoch)", "val": "validation (end of the epoch)"}
    variants = summary.variants
    recorded = [m for m in metrics if any(getattr(e, m) is not None for rs in by.values() for r in rs
                                          for e in r.epochs)]  # runs validated on the test set have no val
    width = min(4.9, MAX_WIDTH / len(variants))
    fig, axes = _plt().subplots(len(recorded), len(variants), squeeze=False, sharex=True,
                                figsize=(width * len(variants), 3.3 * len(recorded) + 0.6))
    for col, variant in enumerate(variants):
        for row, metric in enumerate(recorded):
            ax = axes[row][col]
            for backend in summary.backends:
                runs = by.get((mode, variant, backend))
                if not runs:
                    continue
                ys = [[(getattr(e, metric) if getattr(e, metric) is not None else np.nan) * scale
                       for e in r.epochs] for r in runs]
                _band(ax, np.arange(1, len(ys[0]) + 1), ys, markers=25, label=f"{backend} (n={len(runs)})",
                      **style(backend))
            ax.set_title(f"{variant}: {words[metric.split('_')[0]]}")
            if row == len(recorded) - 1:
                ax.set_xlabel("epoch")
            _epoch_ticks(ax, max((len(r.epochs) for rs in by.values() for r in rs), default=1))
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
    _suptitle(fig, f"{summary.spec}: {'loss' if scale == 1 else 'accuracy'} per epoch ({mode}): mean over "
              f"seeds, band = min–max of the seeds")
    return fig


@_readable
def _test_accuracy_figure(summary):
    """Final test accuracy of every group: each seed a point, beside the mean ± sd (no
    truncated bars)."""
    groups = summary.groups
    fig, ax = _plt().subplots(figsize=(7.5, 0.6 * len(groups) + 1.6))
    for i, g in enumerate(groups):
        st = style(g["backend"])
        seeds = [r["test_acc"] * 100 for r in summary.runs if r.get("test_acc") is not None
                 and (r["mode"], r["variant"], r["backend"]) == (g["mode"], g["variant"], g["backend"])]
        ax.plot(seeds, [i + 0.18] * len(seeds), "|", color=st["color"], ms=11, mew=1.5,
                label="one seed" if i == 0 else None)
        mean, sd = g["test_acc"]["mean"] * 100, (g["test_acc"]["sd"] or 0) * 100
        ax.errorbar(mean, i - 0.12, xerr=sd, fmt=st["marker"], ms=7, capsize=4, color=st["color"],
                    label="mean ± sd" if i == 0 else None)
        ax.annotate(f"{mean:.2f}", (mean + sd, i - 0.12), textcoords="offset points", xytext=(6, 0),
                    va="center", fontsize=8.5)
    ax.set_yticks(range(len(groups)), [f"{g['mode']} · {g['variant']} · {g['backend']}" for g in groups])
    ax.set_ylim(len(groups) - 0.5, -0.6)
    ax.margins(x=0.12)
    ax.set_xlabel(f"test accuracy % ({summary.seeds} seeds: each seed a tick, under the mean ± sd)")
    ax.set_title(f"{summary.spec}: final test accuracy", pad=22)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False, fontsize=8.5)
    return fig


def error_scale(matrices) -> float:
    """The top of the error colour scale for these confusion matrices (counts): the largest
    off-diagonal share of a true class, in %, over all of them (so that the panels share one
    scale and the largest error has its strongest colour); at least 0.1."""
    off = [per_true_class(m)[~np.eye(len(m), dtype=bool)] for m in matrices]
    return max([0.1] + [float(o.max()) for o in off if o.size])


def confusion_panel(ax, counts, top: float):
    """One confusion matrix (counts, [true][predicted]) in ``ax``: the errors coloured as a
    share of their true class on a scale from 0 to ``top`` %, each with its count; the
    diagonal (the correct predictions) grey, with its count. Returns the errors' image."""
    counts = np.asarray(counts)
    eye = np.eye(len(counts), dtype=bool)
    ax.imshow(np.where(eye, 1.0, np.nan), cmap="Greys", vmin=0, vmax=4)  # the diagonal, light grey
    image = ax.imshow(np.ma.masked_array(per_true_class(counts), eye), cmap="Reds", vmin=0, vmax=top)
    for (t, p), v in np.ndenumerate(counts):
        if t == p:
            ax.text(p, t, f"{v}", ha="center", va="center", fontsize=6, color="#333333")
        elif v:
            dark = per_true_class(counts)[t, p] > 0.6 * top
            ax.text(p, t, f"{v}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(len(counts)))
    ax.set_yticks(range(len(counts)))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return image


@_readable
def _confusion_figure(summary, by: dict, mode: str):
    """Confusion matrices per variant and backend, summed over seeds: the errors coloured by
    their share of the true class on one scale for all panels, the diagonal apart."""
    backends, variants = summary.backends, summary.variants
    side = min(4.4, (MAX_WIDTH - 0.8) / len(backends))
    fig, axes = _plt().subplots(len(variants), len(backends), squeeze=False, layout="constrained",
                                figsize=(side * len(backends) + 0.8, side * len(variants) + 0.7))
    sums = {(v, b): np.sum([np.asarray(r.confusion) for r in by[(mode, v, b)] if r.confusion], axis=0)
            for v in variants for b in backends
            if any(r.confusion for r in by.get((mode, v, b), []))}
    top, image = error_scale(sums.values()), None
    for i, variant in enumerate(variants):
        for j, backend in enumerate(backends):
            ax = axes[i][j]
            if (variant, backend) not in sums:
                ax.axis("off")
                continue
            image = confusion_panel(ax, sums[(variant, backend)], top)
            n = len(by[(mode, variant, backend)])
            ax.set_title(f"{backend}, {variant}: {n} seed{'s' if n != 1 else ''}", fontsize=9.5)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02,
                     label="errors: % of the true class")
    _suptitle(fig, f"{summary.spec}: confusion matrices ({mode}), summed over seeds\n"
              "numbers: test images; diagonal (grey): correct; colour: the errors' share of their true class")
    return fig


def per_true_class(m) -> np.ndarray:
    """A confusion matrix [true][predicted] as percent of each true class (rows sum to 100)."""
    m = np.asarray(m, dtype=float)
    return 100 * m / np.maximum(m.sum(1, keepdims=True), 1)


def _sides(ax, a: str, b: str) -> None:
    """Say on the x axis of a difference a − b which side favours which: "← b better"
    left of zero, "a better →" right of it (the limits keep zero in the middle)."""
    lo, hi = ax.get_xlim()
    half = max(abs(lo), abs(hi))
    ax.set_xlim(-half, half)
    kw = {"xycoords": ("data", "axes fraction"), "textcoords": "offset points", "va": "top", "fontsize": 9,
          "color": "#444444", "fontweight": "bold"}
    ax.annotate(f"← {b} better", (0, 1), xytext=(-6, -4), ha="right", **kw)
    ax.annotate(f"{a} better →", (0, 1), xytext=(6, -4), ha="left", **kw)


@_readable
def forest_figure(paired: list, title: str):
    """Paired differences in test accuracy (pp) with their 95% CI, one row per mode and
    variant; a single seed is a point without an interval. The axis says which side
    favours which framework."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(paired) + 1.9))
    for i, p in enumerate(paired):
        a = p["test_acc"]
        mean = a["mean_diff"] * 100
        if a["ci_low"] is not None:
            ax.errorbar(mean, i, xerr=[[mean - a["ci_low"] * 100], [a["ci_high"] * 100 - mean]], fmt="s",
                        capsize=5, color="black")
            text = f"{mean:+.2f} ({a['ci_low'] * 100:+.2f} to {a['ci_high'] * 100:+.2f}), n={a['n']}"
        else:
            ax.plot(mean, i, "s", mfc="white", color="black")
            text = f"{mean:+.2f} (n={a['n']}: no CI)"
        ax.annotate(text, (mean, i), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8.5)
    ax.axvline(0, color="grey", lw=1, ls="--")
    pairs = list(dict.fromkeys((p.get("a", "torch"), p.get("b", "keras")) for p in paired))
    ax.set_yticks(range(len(paired)), [(f"{p['a']} − {p['b']} · " if len(pairs) > 1 else "")
                                       + f"{p['mode']} · {p['variant']}" for p in paired])
    ax.set_ylim(len(paired) - 0.4, -1.1)
    ax.set_xlabel("difference in test accuracy, percentage points (95% CI, paired t)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    _sides(ax, *(pairs[0] if len(pairs) == 1 else ("the first", "the second")))
    return fig


@_readable
def ablation_figure(ablation: list):
    """Native gap with one default at a time harmonized, one panel per variant (dots; the
    all-native gap as a dashed line, zero as a grey one)."""
    plt = _plt()
    variants = list(dict.fromkeys(a["variant"] for a in ablation))
    width = min(5.5, MAX_WIDTH / len(variants))
    fig, axes = plt.subplots(1, len(variants), figsize=(width * len(variants),
                                                         0.45 * len(ablation) / len(variants) + 2.3),
                             squeeze=False, sharex=True)
    for ax, variant in zip(axes[0], variants):
        rows = [a for a in ablation if a["variant"] == variant]
        ax.plot([a["gap_with_item_harmonized"] * 100 for a in rows], range(len(rows)), "o", color="black")
        ax.axvline(rows[0]["native_gap"] * 100, color="#d62728", ls="--", lw=1, label="all native")
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(rows)), [a["item"] for a in rows])
        ax.set_ylim(len(rows) - 0.5, -1.2)
        ax.set_title(f"{variant}")
        ax.set_xlabel("torch − keras test accuracy, pp")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    for ax in axes[0]:
        _sides(ax, "torch", "keras")
    _suptitle(fig, "Native gap with one default harmonized at a time")
    return fig


def _curve(r, metric: str):
    """(x, y) of one run for a figure."""
    if metric == "steps":
        return [s for s, _ in r.steps], [v for _, v in r.steps]
    x = [e.epoch for e in r.epochs]
    if metric == "total_time_s":
        return x, list(np.cumsum([e.time_s for e in r.epochs]))
    if metric == "val_gain_pp":
        acc = [e.val_acc for e in r.epochs]
        return x[1:], [(b - a) * 100 for a, b in zip(acc, acc[1:])]
    scale = 100 if metric.endswith("_acc") else 1  # accuracies in percent, as everywhere
    return x, [None if getattr(e, metric) is None else getattr(e, metric) * scale for e in r.epochs]


def study_figure(base: Path, figure, read: dict) -> str | None:
    """One of a study's figures (a reproduce.Figure) from its finished runs (``read``:
    {setting: {(mode, variant, backend, seed): run or None}}); None if none has finished."""
    metric, drawn = figure.metric, []
    for panel in figure.panels:
        out, lines = [], panel["lines"]
        for setting, variant, mode, backend in lines:
            runs = [r for (m, v, b, _), r in read[setting].items() if (m, v, b) == (mode, variant, backend)]
            curves = [_curve(r, metric) for r in runs if r is not None]
            if curves:
                label = f"{backend} {mode}" + ("" if variant == "as-is" else f", {variant}")
                if len({l[0] for l in lines}) > 1:
                    label = f"{setting}: {label}"
                out.append((label, curves[0][0], [c[1] for c in curves]))
        drawn.append((panel["title"], out))
    if not any(lines for _, lines in drawn):
        return None
    return curves_figure(base / figure.file, figure.title, figure.ylabel, drawn,
                         log=metric in ("steps", "train_loss", "test_loss"))

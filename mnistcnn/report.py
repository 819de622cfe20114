"""CSV and figures made from results (they never train; the Markdown is in documents).
matplotlib loads only here."""
from __future__ import annotations

import csv
import io
from dataclasses import fields
from pathlib import Path

import numpy as np

from .results import EpochRecord, RunError

COLORS = {"torch": "#d62728", "keras": "#1f77b4", "jax": "#2ca02c"}
STYLES = {"no-bn": "-", "bn": "--", "as-is": "-"}


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(ax, x, ys, **style):
    """Mean over seeds as a line, the seeds' min-max as a band; returns the line."""
    n = min(len(y) for y in ys)
    arr = np.asarray([list(y[:n]) for y in ys], dtype=float)
    line, = ax.plot(np.asarray(x)[:n], arr.mean(0), **style)
    if len(ys) > 1:
        ax.fill_between(np.asarray(x)[:n], arr.min(0), arr.max(0), color=line.get_color(), alpha=0.15, lw=0)
    return line


def save_figure(fig, path: Path) -> str:
    """Write ``fig`` as a PNG and close it; returns the file's name."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path.name


def curves_figure(path: Path, title: str, ylabel: str, panels: list, log: bool = False) -> str:
    """One PNG of panels side by side. ``panels``: [(panel title, [(label, x, [y per seed])])];
    each line is the mean over seeds with the min-max band of the seeds."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, (panel, lines) in zip(axes[0], panels):
        for label, x, ys in lines:
            n = min(len(y) for y in ys)
            arr = np.asarray([y[:n] for y in ys], dtype=float)
            line, = ax.plot(x[:n], arr.mean(0), label=f"{label} (n={len(ys)})")
            if len(ys) > 1:
                ax.fill_between(x[:n], arr.min(0), arr.max(0), color=line.get_color(), alpha=0.15)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("step" if "step" in ylabel else "epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"{title}\n(lines: mean over seeds; bands: min–max of the seeds)", fontsize=10)
    return save_figure(fig, path)


def compare_plots(out: Path, jobs, results, summary) -> list[str]:
    """The comparison's figures, one PNG each, the headline (forest.png) first; returns
    their file names. Curves: the mean over seeds with the seeds' min-max as a band."""
    mode = "harmonized" if "harmonized" in summary.modes else summary.modes[0]
    by: dict = {}  # (mode, variant, backend): its finished runs
    for job in jobs:
        r = results[job.key]
        if not isinstance(r, RunError):
            by.setdefault((job.key.mode, job.key.variant, job.key.backend), []).append(r)
    names = []
    if summary.paired:  # the headline: the paired difference in test accuracy with its 95% CI
        backends = summary.backends
        names.append(save_figure(forest_figure(summary.paired, f"{summary.spec}: " + (
            f"{backends[0]} − {backends[1]}" if len(backends) == 2 else "each pair's")
            + " test accuracy, paired by seed"), out / "forest.png"))
    names.append(save_figure(_loss_figure(summary, by, mode), out / "loss_bn.png"))
    for name, metrics, ylabel, scale in (("train_val_loss.png", ("train_loss", "val_loss"), "cross-entropy", 1),
                                         ("accuracy.png", ("train_acc", "val_acc"), "accuracy %", 100)):
        names.append(save_figure(_epochs_figure(summary, by, mode, metrics, ylabel, scale), out / name))
    names.append(save_figure(_test_accuracy_figure(summary), out / "test_accuracy.png"))
    names.append(save_figure(_confusion_figure(summary, by, mode), out / "confusion.png"))
    if summary.ablation:
        names.append(save_figure(ablation_figure(summary.ablation), out / "ablation.png"))
    return names


def _loss_figure(summary, by: dict, mode: str):
    """Training loss vs step, with and without BatchNorm: one panel per backend and one of
    them all."""
    backends = summary.backends
    fig, axes = _plt().subplots(1, len(backends) + 1, figsize=(5 * (len(backends) + 1), 4), sharey=True)
    for ax, panel in zip(axes, list(backends) + ["both"]):
        for (m, variant, backend), runs in sorted(by.items()):
            if m != mode or panel not in ("both", backend) or not runs[0].steps:
                continue
            steps = np.asarray(runs[0].steps)[:, 0]
            _band(ax, steps, [[v for _, v in r.steps] for r in runs], ls=STYLES.get(variant, "-"),
                  color=COLORS.get(backend), label=f"{backend}, {variant} (n={len(runs)})")
        ax.set_yscale("log")
        ax.set_title(f"{panel}: training loss ({mode})" if panel != "both"
                     else f"{'both' if len(backends) == 2 else 'all'} backends ({mode})")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("cross-entropy, mean of logged steps (log scale)")
    fig.suptitle("Training loss: mean over seeds, band = min–max of the seeds", fontsize=10)
    return fig


def _epochs_figure(summary, by: dict, mode: str, metrics: tuple, ylabel: str, scale: float):
    """A training and a validation metric per epoch (``metrics``), one panel per variant."""
    labels = {"train": "train (running mean over the epoch)", "val": "validation (end of epoch)"}
    variants = summary.variants
    fig, axes = _plt().subplots(1, len(variants), figsize=(5.5 * len(variants), 4), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        for backend in summary.backends:
            runs = by.get((mode, variant, backend))
            if not runs:
                continue
            for metric, style in zip(metrics, ("-", ":")):
                ys = [[(getattr(e, metric) if getattr(e, metric) is not None else np.nan) * scale
                       for e in r.epochs] for r in runs]
                _band(ax, np.arange(1, len(ys[0]) + 1), ys, ls=style, marker="o", ms=3,
                      color=COLORS.get(backend), label=f"{backend} {labels[metric.split('_')[0]]}")
        ax.set_title(f"{summary.spec} {variant} ({mode}, n={summary.seeds} seeds)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"{'Loss' if scale == 1 else 'Accuracy'} per epoch: mean over seeds, band = min–max",
                 fontsize=10)
    return fig


def _test_accuracy_figure(summary):
    """Final test accuracy of every group: a dot plot with mean ± sd (no truncated bars)."""
    groups = summary.groups
    fig, ax = _plt().subplots(figsize=(7, 0.45 * len(groups) + 1.4))
    for i, g in enumerate(groups):
        sd = (g["test_acc"]["sd"] or 0) * 100
        ax.errorbar(g["test_acc"]["mean"] * 100, i, xerr=sd, fmt="o", capsize=4, color=COLORS.get(g["backend"]))
        ax.annotate(f"{g['test_acc']['mean'] * 100:.2f}", (g["test_acc"]["mean"] * 100, i),
                    textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_yticks(range(len(groups)), [f"{g['mode']} · {g['variant']} · {g['backend']}" for g in groups],
                  fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"test accuracy % (mean ± sd over {summary.seeds} seeds)")
    ax.set_title(f"{summary.spec}: final test accuracy", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _confusion_figure(summary, by: dict, mode: str):
    """Confusion matrices per variant and backend, summed over seeds and normalised per
    true class."""
    backends, variants = summary.backends, summary.variants
    fig, axes = _plt().subplots(len(variants), len(backends), figsize=(4.6 * len(backends), 3.9 * len(variants)),
                                squeeze=False)
    for i, variant in enumerate(variants):
        for j, backend in enumerate(backends):
            ax = axes[i][j]
            runs = by.get((mode, variant, backend))
            if not runs:
                ax.axis("off")
                continue
            m = np.sum([np.asarray(r.confusion) for r in runs], axis=0)
            pct = per_true_class(m)
            image = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
            for (t, p), v in np.ndenumerate(pct):
                if t != p and v >= 0.05:
                    ax.text(p, t, f"{v:.1f}", ha="center", va="center", fontsize=5.5)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the true class")
            ax.set_title(f"{backend}, {variant}: sum of {len(runs)} seeds", fontsize=9)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_xticks(range(10))
            ax.set_yticks(range(10))
    fig.suptitle(f"Confusion matrices ({mode}), per true class in %; off-diagonal numbers are errors",
                 fontsize=10)
    return fig


def per_true_class(m) -> np.ndarray:
    """A confusion matrix [true][predicted] as percent of each true class (rows sum to 100)."""
    m = np.asarray(m, dtype=float)
    return 100 * m / np.maximum(m.sum(1, keepdims=True), 1)


def forest_figure(paired: list, title: str):
    """Paired differences in test accuracy (pp) with their 95% CI, one row per mode and
    variant; a single seed is a point without an interval."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(paired) + 1.5))
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
        ax.annotate(text, (mean, i), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
    ax.axvline(0, color="grey", lw=1, ls="--")
    pairs = len({(p.get("a"), p.get("b")) for p in paired}) > 1
    ax.set_yticks(range(len(paired)), [(f"{p['a']} − {p['b']} · " if pairs else "") + f"{p['mode']} · {p['variant']}"
                                       for p in paired], fontsize=8)
    ax.set_ylim(len(paired) - 0.4, -0.7)
    ax.set_xlabel("difference in test accuracy, percentage points (95% CI, paired t)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def ablation_figure(ablation: list):
    """Native gap with one default at a time harmonized, one panel per variant (dots; the
    all-native gap as a dashed line, zero as a grey one)."""
    plt = _plt()
    variants = list(dict.fromkeys(a["variant"] for a in ablation))
    fig, axes = plt.subplots(1, len(variants), figsize=(5.5 * len(variants), 0.45 * len(ablation) / len(variants) + 2),
                             squeeze=False, sharex=True)
    for ax, variant in zip(axes[0], variants):
        rows = [a for a in ablation if a["variant"] == variant]
        ax.plot([a["gap_with_item_harmonized"] * 100 for a in rows], range(len(rows)), "o", color="black")
        ax.axvline(rows[0]["native_gap"] * 100, color="#d62728", ls="--", lw=1, label="all native")
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(rows)), [a["item"] for a in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{variant}", fontsize=10)
        ax.set_xlabel("torch − keras test accuracy, pp")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Native gap with one default harmonized at a time", fontsize=10)
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

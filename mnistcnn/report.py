"""Tables and plots made from results (they never train). matplotlib loads only here."""
from __future__ import annotations

import csv
import io
import os
from dataclasses import fields
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .results import EpochRecord, RunError

COLORS = {"torch": "#d62728", "keras": "#1f77b4", "jax": "#2ca02c"}
#: how a backend is named in titles
TITLES = {"torch": "PyTorch", "keras": "Keras (TensorFlow)", "jax": "Keras (JAX)"}
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def compare_plots(out: Path, jobs, results, summary) -> list[str]:
    """The comparison's figures, one PNG each, the headline (forest.png) first; returns
    their file names. Curves: the mean over seeds with the seeds' min-max as a band."""
    plt = _plt()
    mode = "harmonized" if "harmonized" in summary.modes else summary.modes[0]
    backends, variants = summary.backends, summary.variants
    by = {}
    for job in jobs:
        r = results[job.key]
        if not isinstance(r, RunError):
            by.setdefault((job.key.mode, job.key.variant, job.key.backend), []).append(r)
    names = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)

    # 1. the headline: paired torch - keras difference in test accuracy with its 95% CI
    if summary.paired:
        fig = forest_figure(summary.paired, f"{summary.spec}: " + (
            f"{backends[0]} − {backends[1]}" if len(backends) == 2 else "each pair's") + " test accuracy, paired by seed")
        save(fig, "forest.png")

    # 2. training loss vs step, with and without batch norm: one panel per backend + overlay
    fig, axes = plt.subplots(1, len(backends) + 1, figsize=(5 * (len(backends) + 1), 4), sharey=True)
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
    save(fig, "loss_bn.png")

    # 3. train vs validation loss per epoch, 4. accuracy per epoch (percent)
    labels = {"train": "train (running mean over the epoch)", "val": "validation (end of epoch)"}
    for name, metrics, ylabel, scale in (("train_val_loss.png", ("train_loss", "val_loss"), "cross-entropy", 1),
                                         ("accuracy.png", ("train_acc", "val_acc"), "accuracy %", 100)):
        fig, axes = plt.subplots(1, len(variants), figsize=(5.5 * len(variants), 4), squeeze=False)
        for ax, variant in zip(axes[0], variants):
            for backend in backends:
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
        save(fig, name)

    # 5. final test accuracy, every group: a dot plot with mean ± sd (no truncated bars)
    groups = summary.groups
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(groups) + 1.4))
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
    save(fig, "test_accuracy.png")

    # 6. confusion matrices, summed over seeds and normalised per true class
    fig, axes = plt.subplots(len(variants), len(backends), figsize=(4.6 * len(backends), 3.9 * len(variants)),
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
    save(fig, "confusion.png")

    # 7. the ablation: one panel per variant
    if summary.ablation:
        fig = ablation_figure(summary.ablation)
        save(fig, "ablation.png")
    return names


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


def frameworks(backends) -> str:
    """'PyTorch vs Keras' for the reports' two; every framework named beyond them."""
    return "PyTorch vs Keras" if list(backends) == ["torch", "keras"] else " vs ".join(TITLES.get(b, b) for b in backends)


def _pct(d, key="mean"):
    return "–" if d is None or d.get(key) is None else f"{d[key] * 100:.2f}"


def compare_markdown(s) -> str:
    """report.md of a compare.CompareSummary."""
    cfg = s.config
    lines = [
        f"# {s.spec}: {frameworks(s.backends)}",
        "",
        f"Command: `{s.command}`  ",
        f"Date: {s.date}. Seeds: {s.seeds}. Epochs: {cfg['epochs']}, batch {cfg['batch_size']}, "
        f"{cfg['optimizer']} lr {cfg['lr']}, normalisation {cfg['normalization']}, "
        f"validation {cfg['val_size']} images, precision {cfg.get('precision', 'float32')}"
        + (f", training limited to {cfg['train_limit']} images" if cfg.get("train_limit") else "") + ".",
        f"BatchNorm: {s.batchnorm}." if s.batchnorm else "",
        "",
        "## Verdicts (paired by seed: same initial weights and batches under harmonized)",
        "",
    ]
    if s.sequential:
        q = s.sequential
        lines[-2:-2] = [f"Seeds: {q['seeds']}, chosen by a CI target of ±{q['target_pp']:g} pp (at most "
                        f"{q['max_seeds']}); stopped because {q['stopped']}. Rule: {q['rule']}.", ""]
    for p in s.paired:
        lines.append(f"- **{p['variant']}, {p['mode']}**: {p['verdict']}.")
    lines += ["", "## Results per backend (mean ± sd over seeds)", "",
              "| mode | variant | backend | test acc % | sd | test loss | epoch time s | images/s |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for g in s.groups:
        sd = g["test_acc"]["sd"]
        lines.append(
            f"| {g['mode']} | {g['variant']} | {g['backend']} | {_pct(g['test_acc'])} | "
            f"{'–' if sd is None else f'{sd * 100:.2f}'} | {g['test_loss']['mean']:.4f} | "
            f"{g['epoch_time_s']['mean']:.1f} | {g['images_per_s']['mean']:,.0f} |")
    pairs = len({(p["a"], p["b"]) for p in s.paired}) > 1
    lines += ["", "## Paired differences" + ("" if pairs else " (torch − keras)"), "",
              "| mode | variant |" + (" pair |" if pairs else "") + " n | Δ test acc pp | 95% CI pp | p | Δ test loss | 95% CI |",
              "|---|---|" + ("---|" if pairs else "") + "---:|---:|---|---:|---:|---|"]
    for p in s.paired:
        a, l = p["test_acc"], p["test_loss"]
        ci = "–" if a["ci_low"] is None else f"{a['ci_low'] * 100:+.2f} to {a['ci_high'] * 100:+.2f}"
        lci = "–" if l["ci_low"] is None else f"{l['ci_low']:+.4f} to {l['ci_high']:+.4f}"
        pv = "–" if a["p_value"] is None else f"{a['p_value']:.3g}"
        lines.append(f"| {p['mode']} | {p['variant']} |" + (f" {p['a']} − {p['b']} |" if pairs else "")
                     + f" {a['n']} | {a['mean_diff'] * 100:+.2f} | {ci} | "
                     f"{pv} | {l['mean_diff']:+.4f} | {lci} |")
    if s.ablation:
        lines += ["", "## Which native defaults make the difference", "",
                  "Native runs with one default at a time harmonized: a gap that shrinks points at a contributor.",
                  "", "| variant | default harmonized | native gap pp | gap then pp | shrinks by pp |",
                  "|---|---|---:|---:|---:|"]
        for a in s.ablation:
            lines.append(f"| {a['variant']} | {a['item']} | {a['native_gap'] * 100:+.2f} | "
                         f"{a['gap_with_item_harmonized'] * 100:+.2f} | {a['shrinks_by_pp']:+.2f} |")
    failures = [r for r in s.runs if "error" in r]
    if failures:
        lines += ["", "## Failed runs", ""] + [
            f"- {r['mode']}/{r['variant']}/{r['backend']}/seed{r['seed']}: {r['error']}" for r in failures]
    lines += ["", "## Parameters", ""] + [
        f"- {v}: {p['trainable']:,} trainable, {p['state']:,} BatchNorm statistics" for v, p in s.params.items()]
    lines += ["", "## Plots", ""] + [f"![{n}]({n})" for n in s.plots]
    lines += ["", "## Environment", ""]
    for backend, env in s.environment.items():
        lines.append(f"- {backend}: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    lines += ["", "Each run ran in its own process; threads were set explicitly (see the environment). "
              "Raw data: results.json and results.csv (one row per run and epoch).", ""]
    return "\n".join(lines)


def sweep_markdown(s: dict) -> str:
    lines = [f"# Sweep of {s['spec']}", "", f"Command: `{s['command']}`  ",
             f"Date: {s['date']}. Seeds: {s['seeds']}. Base config: epochs {s['config']['epochs']}, "
             f"batch {s['config']['batch_size']}, {s['config']['optimizer']} lr {s['config']['lr']}.", "",
             "| cell | backend | val acc % per epoch | test acc % | test loss | epoch time s | total time s | gain pp/epoch |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in s["rows"]:
        if not r["runs"]:
            lines.append(f"| {r['cell']} | {r['backend']} | failed: {r['errors'][0].splitlines()[-1]} | | | | | |")
            continue
        sd = r["test_acc"]["sd"]
        acc = f"{r['test_acc']['mean'] * 100:.2f}" + (f" ± {sd * 100:.2f}" if sd is not None else "")
        gain = "–" if r["improvement_pp_per_epoch"] is None else f"{r['improvement_pp_per_epoch']:+.2f}"
        lines.append(f"| {r['cell']} | {r['backend']} | {' / '.join(f'{v * 100:.2f}' for v in r['val_acc_per_epoch'])} | "
                     f"{acc} | {r['test_loss']['mean']:.4f} | {r['epoch_time_s']:.1f} | {r['total_time_s']:.1f} | {gain} |")
    return "\n".join(lines) + "\n"


def results_doc(report_dirs, doc_dir="docs") -> str:
    """docs/results.md from result files: the published numbers of the zoo against both
    backends (built and counted now), then every study's results with its command."""
    import json

    from . import zoo
    from .compare import CompareSummary
    from .reproduce import answer_000, markdown, rows_table, study_costs
    from .summary import backend_rows

    studies = {d: json.loads((d / "reproduce.json").read_text())
               for d in map(Path, report_dirs) if (d / "reproduce.json").exists()}
    answers = [f"**{answer_000(s)}**" for s in studies.values() if s.get("report") == "000" and not s.get("smoke")]
    lines = ["# Results", "", *[a + "\n" for a in answers],
             "Generated by `mnistcnn results-doc` from the result files of real runs; nothing here is typed by hand.",
             "", "## Published architecture numbers against both frameworks", "",
             "Every parameter count and layer width the reference reports published, next to what each "
             "framework counts for our zoo entry (models built and counted when this file was generated).", "",
             "| model | published number | report | torch | keras | matches |", "|---|---|---:|---:|---:|---|"]
    for name in zoo.names():
        published = zoo.ZOO[name].published
        if not published:
            continue
        spec = zoo.get(name)
        counts = {b: [n for _, n in backend_rows(spec, b)] for b in ("torch", "keras")}
        rows = spec.rows
        for key, value in published.items():
            if key == "total":
                ours = {b: sum(c) for b, c in counts.items()}
                what = "total parameters"
            elif key == "keras_layer_params":
                ours = {b: [n for n in c if n] for b, c in counts.items()}
                what = "per-layer params (Keras, BN = 4C)"
            elif key == "flatten":
                ours = {b: next(r.output_shape[0] for r in rows if r.layer.flattens) for b in counts}
                what = "flatten width"
            elif key == "dense_after_flatten":
                i = next(i for i, r in enumerate(rows) if r.layer.flattens) + 1
                ours = {b: c[i] for b, c in counts.items()}
                what = "dense after flatten"
            elif key == "keras_total_bn_axis1":
                ours = {b: spec.keras_count_with_bn_axis(1) for b in counts}  # spec-level recount
                what = "Keras total with BatchNormalization(axis=1)"
            else:
                continue
            fmt = lambda v: "–" if v is None else (", ".join(f"{x:,}" for x in v) if isinstance(v, list) else f"{v:,}")  # noqa: E731
            ok = ("not reproducible: layer list unknown (zoo entry is a reconstruction)" if ours["torch"] is None
                  else "yes" if ours["torch"] == ours["keras"] == value else "**no**")
            lines.append(f"| {name} | {what} | {fmt(value)} | {fmt(ours['torch'])} | {fmt(ours['keras'])} | {ok} |")
    if studies:
        lines += ["", "## Every published number, at its report's own protocol", "",
                  "A row per number the reference reports published: what each framework gives under the "
                  "report's protocol, natively and harmonized, over seeds (accuracies in %, mean ± sd; "
                  "differences in points with their 95% CI, paired by seed), and whether the published value "
                  "lies inside the 95% prediction interval of its own framework's native runs; where not, "
                  "the known cause. Each report's protocol, costs and figures follow below.", "",
                  *rows_table([r for s in studies.values() for r in s["rows"] if r["published"] is not None],
                              with_report=True), "", study_costs(list(studies.values()))]
    lines += ["", "Below: every study, with the command that made it, in the order given to "
              "`mnistcnn results-doc`: the example studies and each reference report's study (its protocol, "
              "the numbers it did not publish, its costs and figures).", ""]
    for d in map(Path, report_dirs):
        if (d / "results.json").exists():
            s = CompareSummary.from_dict(json.loads((d / "results.json").read_text()))
            lines += [f"## {d.name}: {s.spec}, {frameworks(s.backends)}", "", f"Command: `{s.command}` ({s.date})", ""]
            lines += [f"- **{p['variant']}, {p['mode']}**: {p['verdict']}." for p in s.paired]
            lines += ["", "| mode | variant | backend | test acc % (mean ± sd) | test loss | images/s |", "|---|---|---|---|---:|---:|"]
            for g in s.groups:
                sd = g["test_acc"]["sd"]
                lines.append(f"| {g['mode']} | {g['variant']} | {g['backend']} | {g['test_acc']['mean'] * 100:.2f}"
                             f"{'' if sd is None else f' ± {sd * 100:.2f}'} (n={g['test_acc']['n']}) | "
                             f"{g['test_loss']['mean']:.4f} | {g['images_per_s']['mean']:,.0f} |")
            if s.ablation:
                lines += ["", "| variant | default harmonized | native gap pp | gap then pp |", "|---|---|---:|---:|"]
                lines += [f"| {a['variant']} | {a['item']} | {a['native_gap'] * 100:+.2f} | "
                          f"{a['gap_with_item_harmonized'] * 100:+.2f} |" for a in s.ablation]
            rel = os.path.relpath(d, doc_dir)
            if s.paired and not (d / "forest.png").exists():  # reports made before the headline figure
                fig = forest_figure(s.paired, f"{s.spec}: {s.backends[0]} − {s.backends[1]} test accuracy, "
                                              "paired by seed")
                fig.tight_layout()
                fig.savefig(d / "forest.png", dpi=110)
                _plt().close(fig)
            figures = ["forest.png"] + [n for n in s.plots if n != "forest.png"]
            lines += [""] + [f"![{n}]({rel}/{n})" for n in figures if (d / n).exists()][:2]  # the headline figures
            lines.append("")
        elif d in studies:
            text = markdown(studies[d], image_dir=os.path.relpath(d, doc_dir) + "/", published_rows=False)
            lines += ["#" + text.split("\n", 1)[0], *text.split("\n")[1:]]
        elif (d / "sweep.json").exists():
            s = json.loads((d / "sweep.json").read_text())
            lines += [f"## {d.name}", "", f"Command: `{s['command']}` ({s['date']})", ""]
            lines += sweep_markdown(s).split("\n")[4:]
        else:
            raise ConfigError(f"{d} holds no results.json, reproduce.json or sweep.json: give the output "
                              "directories of `mnistcnn compare`, `sweep` or `reproduce REPORT`.")
    return "\n".join(lines) + "\n"

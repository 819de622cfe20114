"""The Markdown the tool writes, from result data (it never trains): a comparison's
report.md, a sweep's sweep.md, a study's reproduce.md, and docs/results.md, which gathers
them with the published architecture counts."""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np

from . import report, stats, zoo
from .errors import ConfigError
from .results import CompareSummary
from .summary import backend_rows

#: how a backend is named in titles
TITLES = {"torch": "PyTorch", "keras": "Keras (TensorFlow)", "jax": "Keras (JAX)"}


def frameworks(backends) -> str:
    """'PyTorch vs Keras' for the reports' two; every framework named beyond them."""
    if list(backends) == ["torch", "keras"]:
        return "PyTorch vs Keras"
    return " vs ".join(TITLES.get(b, b) for b in backends)


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
              "| mode | variant |" + (" pair |" if pairs else "")
              + " n | Δ test acc pp | 95% CI pp | p | Δ test loss | 95% CI |",
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
    lines += speed_lines(s)
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


def _run_name(r: dict) -> str:
    return f"{r['mode']}/{r['variant']}/{r['backend']}/seed{r['seed']}"


def busy(r: dict) -> bool:
    """Whether the machine was busy during a run (a compare run row): its load average
    at an epoch's end above the cores the machine has (more threads wanted a core than
    there were)."""
    return r.get("load_avg") is not None and bool(r.get("cpu_count")) and r["load_avg"] > r["cpu_count"]


def speed_lines(s) -> list:
    """report.md's speed section: per backend, images per second of wall time and per
    CPU-second, and what the timing was taken under; a warning naming each run during
    which the machine was busy, and the runs whose timing context was not recorded."""
    runs = [r for r in s.runs if "error" not in r]
    lines = ["", "## Speed", "",
             "Wall time counts every second of a training epoch; CPU time only the seconds the run's threads "
             "were on a core, so other work on the machine slows the first far more than the second. Load: "
             "the highest 1-minute load average at an epoch's end, against the machine's cores.", "",
             "| mode | variant | backend | runs | threads | images/s (wall) | images per CPU-second | "
             "CPU time / wall time | load / cores |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for g in s.groups:
        rs = [r for r in runs if (r["mode"], r["variant"], r["backend"]) == (g["mode"], g["variant"], g["backend"])]
        if not rs:
            continue
        timed = [r for r in rs if r.get("images_per_cpu_s") is not None]
        loaded = [r for r in rs if r.get("load_avg") is not None]
        threads = sorted({str(r.get("threads")) for r in rs})
        per_cpu = f"{np.mean([r['images_per_cpu_s'] for r in timed]):,.0f}" if timed else "unknown"
        ratio = f"{np.mean([r['cpu_s'] / r['total_time_s'] for r in timed]):.2f}" if timed else "unknown"
        load = (f"{max(r['load_avg'] for r in loaded):.2f} / {loaded[0].get('cpu_count') or '?'}" if loaded
                else "unknown")
        lines.append(f"| {g['mode']} | {g['variant']} | {g['backend']} | {len(rs)} | {', '.join(threads)} | "
                     f"{np.mean([r['images_per_s'] for r in rs]):,.0f} | {per_cpu} | {ratio} | {load} |")
    hot = [r for r in runs if busy(r)]
    if hot:
        lines += ["", f"**Warning: the machine was busy during {len(hot)} of {len(runs)} runs** (load average above "
                  "its cores): their wall-time speeds say as much about the other work as about the framework. "
                  "Compare the frameworks by images per CPU-second, or train again on an idle machine.", ""]
        for r in hot:
            ratio = "unknown" if r.get("cpu_s") is None else f"{r['cpu_s'] / r['total_time_s']:.2f}"
            lines.append(f"- `{_run_name(r)}`: load average {r['load_avg']:.2f} on {r['cpu_count']} cores; "
                         f"CPU time / wall time {ratio} with {r.get('threads')} threads; "
                         f"{r['images_per_s']:,.0f} images/s")
    unknown = [r for r in runs if r.get("images_per_cpu_s") is None or r.get("load_avg") is None]
    if unknown:
        lines += ["", f"Timing context unknown for {len(unknown)} of {len(runs)} runs: their result files "
                  "predate the CPU-time and load records, so whether the machine was busy during them cannot "
                  "be told, nor their speed per CPU-second; their wall-time speeds may not compare the "
                  "frameworks fairly."]
    return lines


def sweep_markdown(s: dict) -> str:
    lines = [f"# Sweep of {s['spec']}", "", f"Command: `{s['command']}`  ",
             f"Date: {s['date']}. Seeds: {s['seeds']}. Base config: epochs {s['config']['epochs']}, "
             f"batch {s['config']['batch_size']}, {s['config']['optimizer']} lr {s['config']['lr']}.", "",
             "| cell | backend | val acc % per epoch | test acc % | test loss | epoch time s | total time s "
             "| gain pp/epoch |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in s["rows"]:
        if not r["runs"]:
            lines.append(f"| {r['cell']} | {r['backend']} | failed: {r['errors'][0].splitlines()[-1]} | | | | | |")
            continue
        sd = r["test_acc"]["sd"]
        acc = f"{r['test_acc']['mean'] * 100:.2f}" + (f" ± {sd * 100:.2f}" if sd is not None else "")
        gain = "–" if r["improvement_pp_per_epoch"] is None else f"{r['improvement_pp_per_epoch']:+.2f}"
        per_epoch = " / ".join(f"{v * 100:.2f}" for v in r["val_acc_per_epoch"])
        lines.append(f"| {r['cell']} | {r['backend']} | {per_epoch} | {acc} | {r['test_loss']['mean']:.4f} | "
                     f"{r['epoch_time_s']:.1f} | {r['total_time_s']:.1f} | {gain} |")
    return "\n".join(lines) + "\n"


def results_doc(report_dirs, doc_dir="docs") -> str:
    """docs/results.md from result files: the published numbers of the zoo against both
    backends (built and counted now), then every study's results with its command."""
    dirs = [Path(d) for d in report_dirs]
    studies = {d: json.loads((d / "reproduce.json").read_text()) for d in dirs if (d / "reproduce.json").exists()}
    answers = [f"**{answer_000(s)}**" for s in studies.values() if s.get("report") == "000" and not s.get("smoke")]
    lines = ["# Results", "", *[a + "\n" for a in answers],
             "Generated by `mnistcnn results-doc` from the result files of real runs; nothing here is typed by hand.",
             "", "## Published architecture numbers against both frameworks", "",
             "Every parameter count and layer width the reference reports published, next to what each "
             "framework counts for our zoo entry (models built and counted when this file was generated).", "",
             "| model | published number | report | torch | keras | matches |", "|---|---|---:|---:|---:|---|",
             *_architecture_rows()]
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
    for d in dirs:
        if (d / "results.json").exists():
            lines += _compare_section(d, os.path.relpath(d, doc_dir))
        elif d in studies:
            text = study_markdown(studies[d], image_dir=os.path.relpath(d, doc_dir) + "/", published_rows=False)
            lines += ["#" + text.split("\n", 1)[0], *text.split("\n")[1:]]
        elif (d / "sweep.json").exists():
            s = json.loads((d / "sweep.json").read_text())
            lines += [f"## {d.name}", "", f"Command: `{s['command']}` ({s['date']})", ""]
            lines += sweep_markdown(s).split("\n")[4:]
        else:
            raise ConfigError(f"{d} holds no results.json, reproduce.json or sweep.json: give the output "
                              "directories of `mnistcnn compare`, `sweep` or `reproduce REPORT`.")
    return "\n".join(lines) + "\n"


def _flat(spec) -> int:
    """The index of the spec's layer that flattens."""
    return next(i for i, r in enumerate(spec.rows) if r.layer.flattens)


#: each kind of number a zoo entry's ``published`` holds: its words, and ours from the
#: spec and one framework's per-layer counts
_ARCHITECTURE_NUMBERS = {
    "total": ("total parameters", lambda spec, counts: sum(counts)),
    "keras_layer_params": ("per-layer params (Keras, BN = 4C)", lambda spec, counts: [n for n in counts if n]),
    "flatten": ("flatten width", lambda spec, counts: spec.rows[_flat(spec)].output_shape[0]),
    "dense_after_flatten": ("dense after flatten", lambda spec, counts: counts[_flat(spec) + 1]),
    # a spec-level recount: no framework builds BatchNorm over the height
    "keras_total_bn_axis1": ("Keras total with BatchNormalization(axis=1)",
                             lambda spec, counts: spec.keras_count_with_bn_axis(1)),
}


def _count(v) -> str:
    return "–" if v is None else (", ".join(f"{x:,}" for x in v) if isinstance(v, list) else f"{v:,}")


def _architecture_rows() -> list:
    """A table row per number the zoo's entries published, against what each framework
    counts for the entry (models built now)."""
    lines = []
    for name in zoo.names():
        published = zoo.ZOO[name].published
        if not published:
            continue
        spec = zoo.get(name)
        counts = {b: [n for _, n in backend_rows(spec, b)] for b in ("torch", "keras")}
        for key, value in published.items():
            if key not in _ARCHITECTURE_NUMBERS:
                continue
            what, number = _ARCHITECTURE_NUMBERS[key]
            ours = {b: number(spec, c) for b, c in counts.items()}
            ok = ("not reproducible: layer list unknown (zoo entry is a reconstruction)" if ours["torch"] is None
                  else "yes" if ours["torch"] == ours["keras"] == value else "**no**")
            lines.append(f"| {name} | {what} | {_count(value)} | {_count(ours['torch'])} | {_count(ours['keras'])} "
                         f"| {ok} |")
    return lines


def _compare_section(d: Path, rel: str) -> list:
    """docs/results.md's section of a comparison in ``d`` (``rel``: that directory from the
    document's): its verdicts, groups, ablation and headline figures."""
    s = CompareSummary.from_dict(json.loads((d / "results.json").read_text()))
    lines = [f"## {d.name}: {s.spec}, {frameworks(s.backends)}", "", f"Command: `{s.command}` ({s.date})", ""]
    lines += [f"- **{p['variant']}, {p['mode']}**: {p['verdict']}." for p in s.paired]
    lines += ["", "| mode | variant | backend | test acc % (mean ± sd) | test loss | images/s |",
              "|---|---|---|---|---:|---:|"]
    for g in s.groups:
        sd = g["test_acc"]["sd"]
        lines.append(f"| {g['mode']} | {g['variant']} | {g['backend']} | {g['test_acc']['mean'] * 100:.2f}"
                     f"{'' if sd is None else f' ± {sd * 100:.2f}'} (n={g['test_acc']['n']}) | "
                     f"{g['test_loss']['mean']:.4f} | {g['images_per_s']['mean']:,.0f} |")
    loaded = [r for r in s.runs if busy(r)]
    if loaded:
        lines += ["", f"The machine was busy during {len(loaded)} of {len(s.runs)} runs (load average up to "
                      f"{max(r['load_avg'] for r in loaded):.1f} on {loaded[0]['cpu_count']} cores): the images/s "
                      f"column is no speed comparison; the CPU-time figures are in [report.md]({rel}/report.md)."]
    if s.ablation:
        lines += ["", "| variant | default harmonized | native gap pp | gap then pp |", "|---|---|---:|---:|"]
        lines += [f"| {a['variant']} | {a['item']} | {a['native_gap'] * 100:+.2f} | "
                  f"{a['gap_with_item_harmonized'] * 100:+.2f} |" for a in s.ablation]
    if s.paired and not (d / "forest.png").exists():  # reports made before the headline figure
        report.save_figure(report.forest_figure(
            s.paired, f"{s.spec}: {s.backends[0]} − {s.backends[1]} test accuracy, paired by seed"), d / "forest.png")
    figures = ["forest.png"] + [n for n in s.plots if n != "forest.png"]
    return lines + [""] + [f"![{n}]({rel}/{n})" for n in figures if (d / n).exists()][:2] + [""]  # the headline figures


def _duration(seconds) -> str:
    if seconds is None:
        return "?"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _fmt(d, metric) -> str:
    if d is None:
        return "–"
    scale, digits = (100, 2) if metric.endswith("acc") else (1, 4 if "loss" in metric else 0)
    sd = "" if d["sd"] is None else f" ± {d['sd'] * scale:.{digits}f}"
    return f"{d['mean'] * scale:.{digits}f}{sd} (n={d['n']})"


def _fmt_diff(p, metric) -> str:
    if p is None:
        return "–"
    scale = 100 if metric.endswith("acc") else 1
    ci = "" if p["ci_low"] is None else f" [{p['ci_low'] * scale:+.2f}, {p['ci_high'] * scale:+.2f}]"
    return f"{p['mean_diff'] * scale:+.2f}{ci}"


def answer_000(s: dict, target_pp: float = 0.1) -> str:
    """Report 000's question in one sentence, from its study's summary: the paired native
    PyTorch - TensorFlow difference in test accuracy (the model without BatchNorm, which
    the report describes), its 95% CI, and how many seeds a CI of +-``target_pp`` needs at
    the spread observed (n = (1.96 sd / target)^2)."""
    row = next(r for r in s["rows"] if r["what"] == "PyTorch test accuracy [no-bn]")
    head = "Report 000 found PyTorch 98.8% vs TensorFlow 99.09% test accuracy for one CNN"
    d = row.get("diff_native")
    if not d or d["n"] < 2 or d["ci_low"] is None:
        h = row.get("diff_harmonized")
        return (f"{head}; our native runs at its most likely protocol are under way"
                + ("" if not h or h["ci_low"] is None else
                   f" (harmonized, the same network in both gives {h['mean_diff'] * 100:+.2f} pp, 95% CI "
                   f"{h['ci_low'] * 100:+.2f} to {h['ci_high'] * 100:+.2f}, {h['n']} seeds)") + ".")
    mean, lo, hi, sd = (d[k] * 100 for k in ("mean_diff", "ci_low", "ci_high", "sd_diff"))
    need = max(2, math.ceil((1.96 * sd / target_pp) ** 2))
    torch_acc, keras_acc = row["torch_native"]["mean"] * 100, row["keras_native"]["mean"] * 100
    precise = stats.ci_half_width(d) <= target_pp
    if lo <= 0 <= hi:
        verdict = (f"the frameworks do not differ by more than {max(-lo, hi):.2f} pp" if precise
                   else "no gap between the frameworks is detectable at this precision")
    else:
        verdict = f"{'PyTorch' if mean > 0 else 'TensorFlow'} is ahead at this precision"
    more = ("" if precise else f"; a CI of ±{target_pp:g} pp would take about {need} seeds "
            f"at the spread seen (sd of the difference {sd:.2f} pp)")
    published = {r["what"].split()[0]: r.get("published") for r in s["rows"] if r["what"].endswith("accuracy [no-bn]")}
    if None not in (published.get("PyTorch"), published.get("TensorFlow")):
        gap, half = (published["PyTorch"] - published["TensorFlow"]) * 100, stats.prediction_half_width(sd, d["n"])
        more += (f"; one run of each, as the report compared, differs by {mean - half:+.2f} to {mean + half:+.2f} pp "
                 f"(95% prediction interval of a pair of runs), so its {gap:+.2f} pp "
                 + ("is the scatter of single runs" if mean - half <= gap <= mean + half
                    else "is more than single runs scatter"))
    return (f"{head}; at its most likely protocol (Adam, batch 64, 10 epochs), natively, we measure PyTorch "
            f"{torch_acc:.2f}% vs TensorFlow {keras_acc:.2f}%, a paired difference of {mean:+.2f} pp (95% CI "
            f"{lo:+.2f} to {hi:+.2f}, {d['n']} seeds): {verdict}{more}.")


def _extra_columns(rows) -> list:
    """Cells of backends beyond torch and keras (jax_native, jax_harmonized), where run."""
    return [f"{b}_{mode}" for b in ("jax",) for mode in ("native", "harmonized")
            if any(r.get(f"{b}_{mode}") for r in rows)]


def rows_table(rows: list, with_report: bool = False) -> list:
    """The lines of the table of ``rows``: a row per number (accuracies in %), each
    framework native and harmonized, the paired differences, and whether the published
    value lies inside its own framework's 95% PI (where not: the known cause).
    ``with_report``: a first column naming each row's report (rows of several reports)."""
    extra = _extra_columns(rows)
    lines = [("| report " if with_report else "") + "| setting | published number | published | torch native | "
             "keras native | torch harmonized | keras harmonized | torch − keras native | torch − keras harmonized "
             "| inside own 95% PI |" + "".join(f" {c.replace('_', ' ')} |" for c in extra),
             ("|---" if with_report else "") + "|---|---|---:|---|---|---|---|---|---|---|" + "---|" * len(extra)]
    for r in rows:
        m = r["metric"]
        pub = "–" if r["published"] is None else _fmt({"mean": r["published"], "sd": None, "n": 1}, m).split(" (")[0]
        inside = {True: "yes", False: f"**no**: {r.get('differences') or 'not explained yet'}",
                  None: "–"}[r.get("inside")]
        lines.append((f"| {r['report']} " if with_report else "")
                     + f"| {r['setting']} | {r['what']} | {pub} | {_fmt(r.get('torch_native'), m)} | "
                     f"{_fmt(r.get('keras_native'), m)} | {_fmt(r.get('torch_harmonized'), m)} | "
                     f"{_fmt(r.get('keras_harmonized'), m)} | {_fmt_diff(r.get('diff_native'), m)} | "
                     f"{_fmt_diff(r.get('diff_harmonized'), m)} | {inside} |"
                     + "".join(f" {_fmt(r.get(c), m)} |" for c in extra))
    return lines


def cost_rows(s: dict) -> list:
    """Per setting and backend of a study's summary: runs planned, finished and failed, the
    median training seconds of a finished run, the runs left to train and what they would
    take at that median (None where no run has finished)."""
    # a failed run (setting/mode/runs/mode/variant/backend/seedN) is no run left to train
    failed = Counter((p[0], p[-2]) for p in (f["run"].split("/") for f in s.get("failed", [])))
    out = []
    for x in s.get("spent", []):
        for backend, d in x["backends"].items():
            median = float(np.median(d["seconds"])) if d["seconds"] else None
            n_failed = failed[(x["setting"], backend)]
            left = d["planned"] - len(d["seconds"]) - n_failed
            out.append({"setting": x["setting"], "backend": backend, "planned": d["planned"],
                        "finished": len(d["seconds"]), "failed": n_failed, "median_s": median, "left": left,
                        "left_s": None if median is None else left * median})
    return out


def _precise(s: dict, setting: dict) -> bool:
    """Whether a setting's precision rule has stopped: the native paired CI of each of its
    published numbers within the target, or the most seeds trained."""
    variant, target_pp, most = setting["precision"]
    diffs = [r["diff_native"] for r in s["rows"] if r["setting"] == setting["name"] and r["published"] is not None
             and r["what"].endswith(f"[{variant}]") and r.get("diff_native")]
    return bool(diffs) and all(d["n"] >= most or d["ci_low"] is not None and stats.ci_half_width(d) <= target_pp
                               for d in diffs)


def study_costs(summaries: list) -> str:
    """One sentence: the training time of the studies' finished runs, and what their runs
    still planned would take at each setting's median run."""
    done = {s["report"]: s["run_time_s"] / 3600 for s in summaries}
    costs = [c for s in summaries for c in cost_rows(s)]
    left = sum(c["left_s"] for c in costs if c["left_s"] is not None) / 3600
    unpriced = sum(c["left"] for c in costs if c["median_s"] is None)
    sequential = [f"report {s['report']}'s further seeds under its precision rule"
                  for s in summaries
                  if any(st.get("precision") and not _precise(s, st) for st in s.get("settings", []))]
    return (f"Training time of the finished runs: {sum(done.values()):.1f} h ("
            + ", ".join(f"report {r}: {h:.1f} h" for r, h in done.items()) + "), on the machines each study's "
            "cost table names. " + (f"The runs still planned would take about {left:.1f} h more at each setting's "
                                    "median finished run" + (", plus" if unpriced else "") if left else
                                    "Every setting with a finished run has all its runs"
                                    + ("; left:" if unpriced else ""))
            + (f" {unpriced} runs of settings with none finished yet" if unpriced else "")
            + (f" ({' and '.join(sequential)} not counted)" if sequential else "") + ".")


def study_markdown(s: dict, image_dir: str = "", published_rows: bool = True) -> str:
    """The study's table: one row per published number (accuracies in %), then its
    figures (``image_dir``: their directory relative to where the text goes).
    ``published_rows=False``: the table keeps only the rows of numbers the report did not
    publish (its published ones are in a table of their own: docs/results.md's)."""
    rows = [r for r in s["rows"] if published_rows or r["published"] is None]
    lines = [f"# Report {s['report']}: {s['title']}", "", f"Command: `{s['command']}` ({s['date']}); "
             f"training time of the finished runs {s['run_time_s'] / 60:.1f} min"
             + (" (SMOKE SIZE: not results)" if s["smoke"] else "")
             + ("" if s.get("complete", True) else " (STUDY UNDER WAY: some runs have not finished; "
                "n gives the seeds each cell has)") + ".", "", s["protocol"]]
    if not published_rows:
        lines += ["", f"Its published numbers are the report {s['report']} rows of the table at the top."]
    if rows:
        lines += ["", *rows_table(rows)]
    ablated = [(r, k.removeprefix("diff_")) for r in s["rows"] for k in r if k.startswith("diff_native+") and r[k]]
    if ablated:
        lines += ["", "Which native default makes the frameworks differ: the native torch − keras difference with "
                  "one default harmonized at a time (compare's --ablate; a difference that vanishes names the cause):",
                  "", "| setting | published number | all native | mode | torch − keras then |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['setting']} | {r['what']} | {_fmt_diff(r.get('diff_native'), r['metric'])} | {mode} | "
                  f"{_fmt_diff(r[f'diff_{mode}'], r['metric'])} |" for r, mode in ablated]
    costs = [c for c in s.get("costs", []) if c["paired"]]
    if costs:
        lines += ["", "What the change costs: its own framework's native runs against the setting it changes, "
                  "paired by seed (the same batches):", "", "| setting | against | framework | "
                  "against − setting | seeds |", "|---|---|---|---|---:|"]
        lines += [f"| {c['setting']} | {c['against']} | {c['framework']} | "
                  f"{_fmt_diff(c['paired'], 'test_acc')} | {c['paired']['n']} |" for c in costs]
    if s.get("spent"):
        machines = "; ".join(sorted({m for x in s["spent"] for m in x["machines"]})) or "no run finished yet"
        lines += ["", f"What the runs cost here ({machines}): training "
                  "time per run (the median of the finished runs), and what the unfinished runs would take "
                  "at that median:", "", "| setting | backend | runs finished | median per run | unfinished, "
                  "at that median |", "|---|---|---:|---:|---:|"]
        for c in cost_rows(s):
            failed = f" ({c['failed']} failed)" if c["failed"] else ""
            lines.append(f"| {c['setting']} | {c['backend']} | {c['finished']} of {c['planned']}{failed} | "
                         f"{_duration(c['median_s'])} | {_duration(c['left_s']) if c['left'] else '–'} |")
    if s.get("failed"):
        lines += ["", "Runs that failed (not in the table or the figures; a rerun retries them):", ""]
        lines += [f"- `{f['run']}`: {f['error']}" for f in s["failed"]]
    lines += ["", "Accuracies in %, mean ± sd over seeds; differences in points with their 95% CI (paired "
              "by seed); PI: the 95% prediction interval of a new run of the report's own framework, "
              "native defaults, from our seeds.", ""]
    known: dict = {}  # text -> the settings it applies to
    for r in s["rows"]:
        if r.get("differences"):
            known.setdefault(r["differences"], dict.fromkeys([]))[r["setting"]] = None
    if known:
        lines += ["Known differences between the report's runs and ours (from its text), the causes a "
                  "published value outside our range is read against:", ""]
        lines += [f"- **{', '.join(settings)}**: {text}" for text, settings in known.items()]
        lines.append("")
    lines += [f"![{f}]({image_dir}{f})" for f in s.get("figures", [])]
    return "\n".join(lines)

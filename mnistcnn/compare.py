"""The comparison (the project's main job) and sweeps over variants of a spec.

compare: one spec, both backends, with and without batch norm, several seeds, under
the harmonized defaults (is any framework difference left?) and optionally native
(how big is the difference people see?) with one default at a time switched back
(--ablate: which defaults cause it). Writes results.json, results.csv, report.md and
PNG plots into one directory; results come first, the report and plots are made from them.
"""
from __future__ import annotations

import datetime
import itertools
import json
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

from . import stats, variants, zoo
from ._io import atomic_write_text
from .errors import SpecError
from .runner import Job, run_jobs
from .train import DEFAULT_ITEMS, TrainConfig

BACKENDS = ("torch", "keras")


def mode_config(cfg: TrainConfig, mode: str) -> TrainConfig:
    """'harmonized', 'native', or 'native+<item>' (native with one item harmonized)."""
    if mode == "harmonized":
        return replace(cfg, defaults="harmonized", harmonize=())
    if mode == "native":
        return replace(cfg, defaults="native", harmonize=())
    item = mode.removeprefix("native+")
    if item not in DEFAULT_ITEMS:
        raise SpecError(f"Unknown mode {mode!r}. Valid: harmonized, native, "
                        + ", ".join(f"native+{i}" for i in DEFAULT_ITEMS))
    return replace(cfg, defaults="native", harmonize=(item,))


def _run_row(key_names, key, r) -> dict:
    row = dict(zip(key_names, key))
    if isinstance(r, str):
        return row | {"error": r}
    last = r.epochs[-1]
    return row | {
        "test_acc": r.test_acc, "test_loss": r.test_loss, "final_val_acc": last.val_acc,
        "epoch_time_s": sum(e.time_s for e in r.epochs) / len(r.epochs),
        "total_time_s": sum(e.time_s for e in r.epochs),
        "images_per_s": sum(e.images_per_s for e in r.epochs) / len(r.epochs),
        "val_acc_per_epoch": [e.val_acc for e in r.epochs],
        "threads": r.environment.get("torch_threads", r.environment.get("tf_intra_op_threads")),
    }


def compare(spec, out, seeds: int = 3, cfg: TrainConfig | None = None, backends=BACKENDS,
            bn: bool = True, modes=("harmonized",), ablate: bool = False, workers: int = 1,
            isolate: bool = True, data_dir=None, progress: bool = True,
            command: str | None = None) -> dict:
    """Run the comparison and write its report directory; returns the summary dict."""
    from . import report

    spec, out, cfg = zoo.resolve(spec), Path(out), cfg or TrainConfig()
    modes = list(modes)
    if ablate:
        modes = list(dict.fromkeys(modes + ["harmonized", "native"] + [f"native+{i}" for i in DEFAULT_ITEMS]))
    specs = variants.batchnorm_pair(spec) if bn else {"as-is": spec}
    jobs = [
        Job((mode, variant, backend, seed), s, backend, replace(mode_config(cfg, mode), seed=seed),
            out / "runs" / mode / variant / backend / f"seed{seed}")
        for mode in modes for variant, s in specs.items() for seed in range(seeds)
        for backend in backends
    ]
    results = run_jobs(jobs, data_dir, workers, isolate, progress)

    key_names = ("mode", "variant", "backend", "seed")
    summary = {
        "spec": spec.name, "command": command or " ".join(["mnistcnn"] + sys.argv[1:]),
        "date": datetime.date.today().isoformat(), "config": json.loads(json.dumps(asdict(cfg))),
        "seeds": seeds, "modes": modes, "variants": list(specs), "backends": list(backends),
        "params": {v: {"trainable": s.trainable_params, "state": s.state_params} for v, s in specs.items()},
        "runs": [_run_row(key_names, j.key, results[j.key]) for j in jobs],
        "groups": [], "paired": [],
    }
    ok = {k: r for k, r in results.items() if not isinstance(r, str)}
    for mode, variant in itertools.product(modes, specs):
        for backend in backends:
            rs = [ok[(mode, variant, backend, s)] for s in range(seeds) if (mode, variant, backend, s) in ok]
            if rs:
                summary["groups"].append({
                    "mode": mode, "variant": variant, "backend": backend,
                    "test_acc": stats.describe([r.test_acc for r in rs]),
                    "test_loss": stats.describe([r.test_loss for r in rs]),
                    "epoch_time_s": stats.describe([sum(e.time_s for e in r.epochs) / len(r.epochs) for r in rs]),
                    "images_per_s": stats.describe([e.images_per_s for r in rs for e in r.epochs]),
                })
        if len(backends) == 2:
            a, b = backends
            both = [s for s in range(seeds) if (mode, variant, a, s) in ok and (mode, variant, b, s) in ok]
            if both:
                acc = stats.paired([ok[(mode, variant, a, s)].test_acc for s in both],
                                   [ok[(mode, variant, b, s)].test_acc for s in both])
                loss = stats.paired([ok[(mode, variant, a, s)].test_loss for s in both],
                                    [ok[(mode, variant, b, s)].test_loss for s in both])
                summary["paired"].append({
                    "mode": mode, "variant": variant, "a": a, "b": b, "test_acc": acc, "test_loss": loss,
                    "verdict": stats.verdict(acc, a, b),
                    "loss_verdict": stats.verdict(loss, a, b, "test loss", scale=1.0, unit=""),
                })
    if ablate:
        summary["ablation"] = _ablation(summary)
    summary["environment"] = {b: next((r.environment for k, r in ok.items() if k[2] == b), {})
                              for b in backends}
    # results first, so that they are on disk even if plotting fails; results.json is
    # written again below with the plots' names
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "results.csv", report.runs_csv(jobs, results))
    summary["plots"] = report.compare_plots(out, jobs, results, summary)
    atomic_write_text(out / "report.md", report.compare_markdown(summary))
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _ablation(summary) -> list:
    """For each default item: the native torch-keras gap, and the gap left when that one
    item is harmonized. A gap that shrinks points at a contributor."""
    gap = {(p["mode"], p["variant"]): p["test_acc"]["mean_diff"] for p in summary["paired"]}
    rows = []
    for variant in summary["variants"]:
        native = gap.get(("native", variant))
        for item in DEFAULT_ITEMS:
            with_item = gap.get((f"native+{item}", variant))
            if native is not None and with_item is not None:
                rows.append({"variant": variant, "item": item, "native_gap": native,
                             "gap_with_item_harmonized": with_item,
                             "shrinks_by_pp": (abs(native) - abs(with_item)) * 100})
    return rows


# -- sweeps ---------------------------------------------------------------------------
_CONFIG_TYPES = {f.name: type(f.default) for f in fields(TrainConfig)
                 if isinstance(f.default, (int, float, str)) and not isinstance(f.default, bool)}
_CONFIG_TYPES.update(lr=float, eps=float, rho=float)


def parse_grid(items) -> dict:
    """['activation=relu,tanh', 'lr=0.01,0.001'] -> {'activation': ['relu', 'tanh'], 'lr': [0.01, 0.001]}"""
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values:
            raise SpecError(f"Bad grid axis {item!r}: expected key=value1,value2,...")
        if key == "arch":
            grid[key] = values.split(",")
            continue
        if key in ("hidden", "kernel", "conv_blocks"):
            cast = int
        elif key in variants.SPEC_AXES:
            cast = str
        elif key in _CONFIG_TYPES:
            cast = _CONFIG_TYPES[key]
        else:
            raise SpecError(f"Unknown grid axis {key!r}. Valid: arch, {', '.join(variants.SPEC_AXES)}, "
                            f"or a training setting ({', '.join(sorted(_CONFIG_TYPES))}).")
        try:
            grid[key] = [cast(v) for v in values.split(",")]
        except ValueError:
            raise SpecError(f"Bad value in grid axis {item!r}: expected {cast.__name__}s.") from None
    return grid


def _cell_name(cell: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in cell.items()) or "base"


def sweep(spec, grid: dict, out, seeds: int = 1, cfg: TrainConfig | None = None,
          backends=BACKENDS, workers: int = 2, isolate: bool = True, data_dir=None,
          progress: bool = True, command: str | None = None) -> dict:
    """Every combination of the grid's values, in every backend and seed. Runs go through
    a process pool; finished runs on disk are skipped; a failed run is reported."""
    from . import report

    cfg, out = cfg or TrainConfig(), Path(out)
    cells = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    jobs = []
    for cell in cells:
        s = zoo.resolve(cell.get("arch", spec))
        for axis, fn in variants.SPEC_AXES.items():
            if axis in cell:
                s = fn(s, cell[axis])
        c = replace(cfg, **{k: v for k, v in cell.items() if k in _CONFIG_TYPES})
        name = _cell_name(cell).replace("/", "_").replace(":", "_")
        for seed in range(seeds):
            for backend in backends:
                jobs.append(Job((_cell_name(cell), backend, seed), s, backend, replace(c, seed=seed),
                                out / "runs" / name / backend / f"seed{seed}"))
    results = run_jobs(jobs, data_dir, workers, isolate, progress)
    rows = []
    for cell in cells:
        for backend in backends:
            rs = [results[(_cell_name(cell), backend, s)] for s in range(seeds)]
            good = [r for r in rs if not isinstance(r, str)]
            row = {"cell": _cell_name(cell), **cell, "backend": backend, "runs": len(good),
                   "errors": [r for r in rs if isinstance(r, str)]}
            if good:
                epochs = min(len(r.epochs) for r in good)
                val = [sum(r.epochs[e].val_acc or 0 for r in good) / len(good) for e in range(epochs)]
                row.update(
                    val_acc_per_epoch=val,
                    test_acc=stats.describe([r.test_acc for r in good]),
                    test_loss=stats.describe([r.test_loss for r in good]),
                    epoch_time_s=sum(e.time_s for r in good for e in r.epochs) / sum(len(r.epochs) for r in good),
                    total_time_s=sum(sum(e.time_s for e in r.epochs) for r in good) / len(good),
                    # mean epoch-to-epoch gain in validation accuracy, in points
                    improvement_pp_per_epoch=((val[-1] - val[0]) / (len(val) - 1) * 100) if len(val) > 1 else None,
                )
            rows.append(row)
    summary = {"spec": zoo.resolve(spec).name, "grid": grid, "seeds": seeds, "backends": list(backends),
               "config": json.loads(json.dumps(asdict(cfg))), "date": datetime.date.today().isoformat(),
               "command": command or " ".join(["mnistcnn"] + sys.argv[1:]), "rows": rows}
    atomic_write_text(out / "sweep.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "sweep.csv", report.runs_csv(jobs, results, ("cell", "backend", "seed")))
    atomic_write_text(out / "sweep.md", report.sweep_markdown(summary))
    return summary

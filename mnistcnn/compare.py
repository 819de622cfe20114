"""The comparison (the project's main job) and sweeps over variants of a spec.

compare: one spec, two or more backends (every pair compared), with and without batch norm, several seeds, under
the harmonized defaults (is any framework difference left?) and optionally native
(how big is the difference people see?) with one default at a time switched back
(--ablate: which defaults cause it). Writes results.json, results.csv, report.md and
PNG plots into one directory; results come first, the report and plots are made from them.

The module is callable: ``mnistcnn.compare(spec, out, ...)`` runs ``compare`` (the
package's one entry for a comparison, the command line's ``mnistcnn compare``).
"""
from __future__ import annotations

import datetime
import inspect
import itertools
import json
import sys
import types
from dataclasses import asdict, fields, replace
from pathlib import Path

from . import documents, report, stats, zoo
from ._io import atomic_write_text, dir_lock
from .backends import PAIR
from .config import BN_VARIANT, DEFAULT_ITEMS, TrainConfig, mode_config
from .errors import ConfigError, SpecError
from .results import CompareSummary, RunError, SweepSummary
from .runner import Job, JobKey, run_jobs
from .spec import variants

BACKENDS = PAIR


def _seeds(cfg: TrainConfig, n: int) -> range:
    """The n seeds of a comparison, from the config's own seed on (--seed 7 --seeds 3: 7, 8, 9)."""
    return range(cfg.seed, cfg.seed + n)


def plan(spec, out: Path, seeds: int, cfg: TrainConfig, backends, bn: bool, modes, only=None) -> list[Job]:
    """A comparison's runs, each in its directory under ``out``/runs; ``only``: of these
    variants (e.g. ("no-bn",)), not all. The runs come in the order they train: the
    backends interleaved, seed by seed (torch seed 0, keras seed 0, torch seed 1, ...), so
    that a machine busier at one time than another slows every framework alike instead of
    all runs of one."""
    specs = variants.batchnorm_pair(spec, BN_VARIANT) if bn else {"as-is": spec}
    specs = {v: s for v, s in specs.items() if only is None or v in only}
    return [Job(JobKey(mode, variant, backend, seed), s, backend, replace(mode_config(cfg, mode), seed=seed),
                out / "runs" / mode / variant / backend / f"seed{seed}")
            for mode in modes for variant, s in specs.items() for seed in _seeds(cfg, seeds)
            for backend in backends]


def batchnorm_words(bn) -> str:
    return (f"BatchNorm momentum {bn.momentum:g} (Keras convention: running = {bn.momentum:g}·running "
            f"+ {1 - bn.momentum:g}·batch), epsilon {bn.epsilon:g}")


def _check_compare(seeds, cfg, ci_target_pp, max_seeds) -> None:
    """What compare refuses before anything runs: seeds out of range, settings it decides
    itself, and a maximum without a CI target."""
    _check_seeds(seeds, "seeds")
    if cfg is not None and (cfg.defaults, cfg.harmonize) != (TrainConfig.defaults, TrainConfig.harmonize):
        raise ConfigError("A comparison sets each run's defaults mode itself: `defaults` and `harmonize` in "
                          "`cfg` do not apply. Choose the modes instead (`modes=('native',)`, `ablate=True`).",
                          arguments=("defaults", "harmonize", "modes", "ablate"))
    if ci_target_pp is None:
        if max_seeds is not None:
            raise ConfigError(f"`max_seeds={max_seeds!r}` applies with `ci_target_pp` only (the most seeds to add "
                              "while the CI is wider than the target). Leave it out, or give a `ci_target_pp`.")
        return
    max_seeds = 30 if max_seeds is None else max_seeds
    _check_seeds(max_seeds, "max_seeds")
    if isinstance(ci_target_pp, bool) or not isinstance(ci_target_pp, (int, float)) or not ci_target_pp > 0 \
            or max_seeds < 3:
        raise ConfigError(f"Invalid CI target: expected `ci_target_pp` > 0 and `max_seeds` >= 3. Received "
                          f"ci_target_pp={ci_target_pp!r}, max_seeds={max_seeds!r}.")


def _to_ci_target(spec, out, seeds: int, ci_target_pp: float, max_seeds: int, plots: bool, kw: dict):
    """compare under the sequential rule (SEQUENTIAL_RULE): rounds of seeds until every
    paired CI is within the target or max_seeds, then the report with its figures."""
    n = min(max(seeds, 3), max_seeds)
    while True:
        s = compare(spec, out, seeds=n, plots=False, **kw)
        widest = max((stats.ci_half_width(p["test_acc"]) for p in s.paired if p["test_acc"]["ci_low"] is not None),
                     default=float("inf"))
        if widest <= ci_target_pp or n >= max_seeds:
            break
        n = min(max_seeds, n + max(1, kw["workers"]))  # one round of seeds per worker
    reason = (f"every paired 95% CI is within +-{ci_target_pp:g} pp (widest +-{widest:.3f})"
              if widest <= ci_target_pp else
              f"the maximum of {max_seeds} seeds was reached (widest CI +-{widest:.3f} pp)")
    s = compare(spec, out, seeds=n, plots=plots, **kw)  # the report, with its figures
    s.sequential = {"target_pp": ci_target_pp, "max_seeds": max_seeds, "seeds": n, "stopped": reason,
                    "rule": SEQUENTIAL_RULE}
    atomic_write_text(Path(out) / "results.json", s.to_json())
    atomic_write_text(Path(out) / "report.md", documents.compare_markdown(s))
    return s


def _run_row(key: JobKey, r) -> dict:
    row = asdict(key)
    if isinstance(r, RunError):
        return row | {"error": r.message}
    last = r.epochs[-1]
    cpu, loads = [e.cpu_s for e in r.epochs], [e.load_avg for e in r.epochs]
    timed = None not in cpu and sum(cpu) > 0  # result files before the CPU-time record have none
    return row | {
        "test_acc": r.test_acc, "test_loss": r.test_loss, "final_val_acc": last.val_acc,
        "epoch_time_s": sum(e.time_s for e in r.epochs) / len(r.epochs),
        "total_time_s": sum(e.time_s for e in r.epochs),
        "images_per_s": sum(e.images_per_s for e in r.epochs) / len(r.epochs),
        "val_acc_per_epoch": [e.val_acc for e in r.epochs],
        "threads": r.environment.get("threads"),
        # what the timing was taken under: CPU seconds of the run's process, images per CPU
        # second, the highest 1-minute load average at an epoch's end, the machine's cores
        "cpu_s": sum(cpu) if timed else None,
        "images_per_cpu_s": sum(e.images_per_s * e.time_s for e in r.epochs) / sum(cpu) if timed else None,
        "load_avg": max(loads) if loads and None not in loads else None,
        "cpu_count": r.environment.get("cpu_count"),
    }


#: the stopping rule of compare's CI target, in words (recorded with each such report)
SEQUENTIAL_RULE = (
    "fixed-width sequential confidence interval (Chow and Robbins, 1965, Ann. Math. Statist. 36:457-462): "
    "seeds are added, the same to both backends, until the 95% t interval of every paired difference is no "
    "wider than +-target, or until the maximum; the rule looks at the interval's width only (the spread of "
    "the differences), never at the estimate or its significance, so it is not a peek-until-significant "
    "loop; its coverage is the nominal 95% asymptotically and close to it from 3 seeds on")


def compare(spec, out, seeds: int = 3, cfg: TrainConfig | None = None, backends=BACKENDS,
            bn: bool | None = None, modes=("harmonized",), ablate: bool = False, workers: int = 1,
            isolate: bool = True, data_dir=None, progress: bool = True,
            command: str = "mnistcnn.compare() from Python", plots: bool = True,
            executor: str = "local", address: str | None = None, ci_target_pp: float | None = None,
            max_seeds: int | None = None, variants=None) -> CompareSummary:
    """Run the comparison and write its report directory. ``command`` is recorded as
    what produced it; ``plots=False`` leaves the figures out; ``executor='ray'`` runs each
    training as a Ray task (``address``: an existing cluster). ``ci_target_pp``: add seeds
    (from ``seeds``, at least 3) until every paired 95% CI of test accuracy is no wider than
    +-that many points, or ``max_seeds`` (SEQUENTIAL_RULE). ``variants``: train only these
    of the BatchNorm pair (e.g. ("no-bn",)), not both. ``bn``: True trains the BatchNorm pair
    (the spec without BatchNorm and with it), False the spec as given; None (the default)
    the pair for a zoo architecture named by its name (the reference studies' protocol),
    the spec as given otherwise (a user's model or spec file is compared as it is)."""
    _check_compare(seeds, cfg, ci_target_pp, max_seeds)
    if ci_target_pp is not None:
        kw = dict(cfg=cfg, backends=backends, bn=bn, modes=modes, ablate=ablate, workers=workers, isolate=isolate,
                  data_dir=data_dir, progress=progress, command=command, executor=executor, address=address,
                  variants=variants)
        return _to_ci_target(spec, out, seeds, ci_target_pp, 30 if max_seeds is None else max_seeds, plots, kw)

    named = isinstance(spec, str)
    spec, out, cfg = zoo.resolve(spec), Path(out), cfg or TrainConfig()
    if bn is None:  # the zoo's chains stand for the reports' BatchNorm pair; a model of the user's as given,
        # and so a model with blocks, whose BatchNorms belong to its blocks
        bn = named and not any(r.layer.parts(r.input_shape) for r in spec.rows)
    modes = list(modes)
    if ablate:
        modes = list(dict.fromkeys(modes + ["harmonized", "native"] + [f"native+{i}" for i in DEFAULT_ITEMS]))
    jobs = plan(spec, out, seeds, cfg, backends, bn, modes, variants)
    specs = {job.key.variant: job.spec for job in jobs}  # as-is, or no-bn and bn
    with dir_lock(out):  # one writer per report directory
        results = run_jobs(jobs, data_dir, workers, isolate, progress, executor, address)

        summary = CompareSummary(
            spec=spec.name, command=command, date=datetime.date.today().isoformat(),
            config=json.loads(json.dumps(asdict(cfg))), seeds=seeds, modes=modes, variants=list(specs),
            backends=list(backends),
            batchnorm=(f"the BN variant has {batchnorm_words(BN_VARIANT)}, in every backend under "
                       f"harmonized; under native each framework's own" if "bn" in specs
                   else f"as in the spec ({spec.name} has no layer to put BatchNorm after)" if "as-is" in specs and bn
                   else f"the model as given ({spec.name}, {spec.total_params:,} parameters), no BatchNorm "
                        "variants (bn=True or --bn-pair trains the pair without and with BatchNorm)" if "as-is" in specs
                   else "as in the spec"),
            params={v: {"trainable": s.trainable_params, "state": s.state_params} for v, s in specs.items()},
            runs=[_run_row(j.key, results[j.key]) for j in jobs])
        ok = {k: r for k, r in results.items() if not isinstance(r, RunError)}
        for mode, variant in itertools.product(modes, specs):
            runs = {b: {s: ok.get(JobKey(mode, variant, b, s)) for s in _seeds(cfg, seeds)} for b in backends}
            for backend in backends:
                rs = [r for r in runs[backend].values() if r is not None]
                if rs:
                    summary.groups.append({
                        "mode": mode, "variant": variant, "backend": backend,
                        "test_acc": stats.describe([r.test_acc for r in rs]),
                        "test_loss": stats.describe([r.test_loss for r in rs]),
                        "epoch_time_s": stats.describe([sum(e.time_s for e in r.epochs) / len(r.epochs) for r in rs]),
                        "images_per_s": stats.describe([e.images_per_s for r in rs for e in r.epochs]),
                    })
            for a, b in itertools.combinations(backends, 2):  # every pair, paired by seed
                both = [(ra, rb) for s in _seeds(cfg, seeds) if (ra := runs[a][s]) and (rb := runs[b][s])]
                if both:
                    acc = stats.paired([ra.test_acc for ra, _ in both], [rb.test_acc for _, rb in both])
                    loss = stats.paired([ra.test_loss for ra, _ in both], [rb.test_loss for _, rb in both])
                    summary.paired.append({
                        "mode": mode, "variant": variant, "a": a, "b": b, "test_acc": acc, "test_loss": loss,
                        "verdict": stats.verdict(acc, a, b),
                        "loss_verdict": stats.verdict(loss, a, b, "test loss", scale=1.0, unit=""),
                    })
        if ablate:
            summary.ablation = _ablation(summary)
        summary.environment = {b: next((r.environment for k, r in ok.items() if k.backend == b), {})
                               for b in backends}
        # results first, so that they are on disk even if plotting fails; results.json is
        # written again below with the plots' names
        atomic_write_text(out / "results.json", summary.to_json())
        atomic_write_text(out / "results.csv", report.runs_csv(jobs, results))
        if plots:
            summary.plots = report.compare_plots(out, jobs, results, summary)
        atomic_write_text(out / "report.md", documents.compare_markdown(summary))
        atomic_write_text(out / "results.json", summary.to_json())
        summary.directory = out  # where plot() and run_results() read the runs
        return summary


def _ablation(summary) -> list:
    """For each default item: the native gap of the first two backends (torch - keras),
    and the gap left when that one item is harmonized. A gap that shrinks points at a
    contributor."""
    first = tuple(summary.backends[:2])
    gap = {(p["mode"], p["variant"]): p["test_acc"]["mean_diff"] for p in summary.paired
           if (p["a"], p["b"]) == first}
    rows = []
    for variant in summary.variants:
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
        if key in grid:
            raise SpecError(f"Grid axis {key!r} is given twice: give its values once, e.g. {key}=a,b.")
        if key == "arch":
            grid[key] = values.split(",")
            continue
        cast: type
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


#: the most seeds per setting: each is a training run per backend and variant, and the
#: plan of a larger count (10^8 asked for) is itself minutes of work before any output
MAX_SEEDS = 1000


def _check_seeds(n, name: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SEEDS:
        raise ConfigError(f"Invalid value for `{name}`. Expected an integer from 1 to {MAX_SEEDS}. "
                          f"Received {name}={n!r}.")


def _check_grid(grid: dict, seeds) -> None:
    """A grid whose cells are distinct runs: every axis with values, none repeated (0.01 and
    1e-2 are one cell, which two runs would race for), and the seeds given as seeds."""
    _check_seeds(seeds, "seeds")
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"Invalid value for `grid`. Expected axes and their values, e.g. {{'lr': [0.1, 0.01]}}. "
                          f"Received grid={grid!r}.")
    if "seed" in grid:
        raise ConfigError("`seed` is not a grid axis: each cell trains the seeds `seed`, `seed` + 1, ... "
                          "(`seeds` of them). Give those instead.", arguments=("seed", "seeds"))
    for axis, values in grid.items():
        if isinstance(values, (str, bytes)) or not values:
            raise ConfigError(f"Grid axis {axis!r} needs a list of values, e.g. {axis}=[a, b]. Received {values!r}.")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise ConfigError(f"Grid axis {axis}={','.join(map(str, values))} repeats "
                              f"{', '.join(map(str, repeated))}: equal values are one cell. Give each value once.")


def _check_axes_apply(spec, grid: dict) -> None:
    """Refuse a spec axis whose values give the same model (an axis that does not apply to
    the architecture, such as hidden= on a model without a hidden layer): its cells would
    be identical runs under different names."""
    for arch in grid.get("arch", [spec]):
        base = zoo.resolve(arch)
        for axis, values in grid.items():
            if axis in variants.SPEC_AXES and len(values) > 1:
                built = {variants.SPEC_AXES[axis](base, v).layers for v in values}
                if len(built) < len(set(values)):
                    raise ConfigError(
                        f"Grid axis {axis}={','.join(map(str, values))} does not change {base.name!r}: "
                        f"its values give the same model ({axis} does not apply to this architecture). "
                        "Drop the axis, or choose an architecture it applies to.")


def _cell_name(cell: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in cell.items()) or "base"


def sweep(spec, grid: dict, out, seeds: int = 1, cfg: TrainConfig | None = None,
          backends=BACKENDS, workers: int = 2, isolate: bool = True, data_dir=None,
          progress: bool = True, command: str = "mnistcnn.sweep() from Python",
          executor: str = "local", address: str | None = None) -> SweepSummary:
    """Every combination of the grid's values, in every backend and seed. Runs go through
    a process pool; finished runs on disk are skipped; a failed run is reported.
    Returns the summary written to sweep.json (one row per cell and backend), a dict that
    shows itself in a notebook (results.SweepSummary)."""
    cfg, out = cfg or TrainConfig(), Path(out)
    _check_grid(grid, seeds)
    cells = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    _check_axes_apply(spec, grid)
    jobs = []
    for cell in cells:
        s = zoo.resolve(cell.get("arch", spec))
        for axis, fn in variants.SPEC_AXES.items():
            if axis in cell:
                s = fn(s, cell[axis])
        c = replace(cfg, **{k: v for k, v in cell.items() if k in _CONFIG_TYPES})
        name = _cell_name(cell).replace("/", "_").replace(":", "_")
        for seed in _seeds(cfg, seeds):
            for backend in backends:
                jobs.append(Job(JobKey(c.defaults, _cell_name(cell), backend, seed), s, backend,
                                replace(c, seed=seed), out / "runs" / name / backend / f"seed{seed}"))
    with dir_lock(out):  # one writer per sweep directory
        results = run_jobs(jobs, data_dir, workers, isolate, progress, executor, address)
        by_cell: dict = {}
        for job in jobs:
            by_cell.setdefault((job.key.variant, job.key.backend), []).append(results[job.key])
        rows = []
        for cell in cells:
            for backend in backends:
                rs = by_cell[(_cell_name(cell), backend)]
                good = [r for r in rs if not isinstance(r, RunError)]
                row = {"cell": _cell_name(cell), **cell, "backend": backend, "runs": len(good),
                       "errors": [r.message for r in rs if isinstance(r, RunError)]}
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
        summary = SweepSummary({
                   "spec": zoo.resolve(spec).name, "grid": grid, "seeds": seeds, "backends": list(backends),
                   "config": json.loads(json.dumps(asdict(cfg))), "date": datetime.date.today().isoformat(),
                   "command": command, "rows": rows}, out)
        atomic_write_text(out / "sweep.json", json.dumps(summary, indent=2) + "\n")
        atomic_write_text(out / "sweep.csv", report.runs_csv(jobs, results))
        atomic_write_text(out / "sweep.md", documents.sweep_markdown(summary))
        return summary


class _CallableModule(types.ModuleType):
    """``mnistcnn.compare`` is this module and, called, the comparison itself:
    ``mnistcnn.compare(spec, out, ...)`` is ``mnistcnn.compare.compare(spec, out, ...)``,
    so that the one obvious entry and the module of plan/sweep keep the same name."""

    __call__ = staticmethod(compare)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = inspect.signature(compare)  # what help() and editors show for mnistcnn.compare(...)

"""Each reference report's study under its own protocol, in each backend (PyTorch and Keras by default).

A study is a list of settings (an architecture and the report's training protocol); each
setting runs as ``compare`` runs (each backend, harmonized and native, several seeds)
into its own directory, and every number the report published becomes one row: the
published value next to each framework's mean and spread at the same point of training,
the paired torch - keras difference, and whether the published value lies inside the 95%
prediction interval of its own framework's native runs.

The studies are data: one JSON file per report in mnistcnn/studies (its settings, its
published numbers, its figures and, in ``protocol``, what the report states, what was chosen
where it is silent, and why); this module runs them and tabulates what they found, and
mnistcnn.documents writes it up. Runs resume and skip finished work, so a long study
continues across sittings. ``smoke=True`` keeps each protocol but trains on a few hundred
images, one seed: for the tests, never for results.
"""
from __future__ import annotations

import datetime
import json
import time
from dataclasses import asdict, astuple, dataclass, replace
from importlib import resources
from pathlib import Path

from . import compare, documents, stats, zoo
from ._io import atomic_write_text
from .backends import PAIR
from .config import TrainConfig
from .errors import ConfigError
from .report import study_figure
from .runner import ERROR_FILE, finished
from .spec import variants

BACKENDS = PAIR


@dataclass(frozen=True)
class Published:
    """One number a report published, and where in our runs the same quantity is."""

    what: str  # in words, e.g. "test accuracy, 5 epochs"
    value: float  # accuracies as fractions
    metric: str  # test_acc | test_loss | train_acc | train_loss | val_acc | train_loss_last | total_time_s
    framework: str  # the report's own framework: torch | keras
    epoch: int | None = None  # 1-based epoch of the run; None: the end of the run


@dataclass(frozen=True)
class Setting:
    name: str  # its directory
    arch: str  # zoo name
    config: dict  # TrainConfig fields of the report's protocol
    published: tuple = ()
    #: (mode, backends) groups to run; each group is one compare into <setting>/<mode>
    #: native first: the report's own framework at its defaults is what a published number is
    #: read against, so a study stopped half-way has those rows first
    runs: tuple = (("native", BACKENDS), ("harmonized", BACKENDS))  # modes as compare's: also native+<item>
    seeds: int = 3
    bn_pair: bool = False  # also the spec with/without BatchNorm (report 000)
    axes: tuple = ()  # spec variants applied to the zoo model: (("activation", "tanh"),)
    #: what is known to differ between the report's runs and ours (from its text: its
    #: protocol, versions, bugs): the named causes a published value outside our runs' range
    #: is read against
    differences: str = ""
    #: the setting this one's native runs are paired against, seed by seed (same batches):
    #: the cost of what this one changes (report 004: BatchNorm on axis 1)
    against: str = ""
    #: (variant, +-pp, most seeds): after every setting's groups, its native runs of that
    #: variant continue, seed by seed, until the paired 95% CI of test accuracy is within
    #: +-pp (compare's sequential rule) or most seeds: the precision a report's question
    #: needs (report 000: is there a gap of 0.3 pp?)
    precision: tuple = ()

    def spec(self):
        s = zoo.get(self.arch)
        for axis, value in self.axes:
            s = variants.SPEC_AXES[axis](s, value)
        return s


@dataclass(frozen=True)
class Figure:
    """A figure the report drew, made from our runs (report.study_figure)."""

    file: str  # its PNG, in the study's directory
    title: str
    ylabel: str
    metric: str  # an epoch field, steps, total_time_s or val_gain_pp
    #: side by side, each {"title": ..., "lines": ((setting, variant, mode, backend), ...)}
    panels: tuple


@dataclass(frozen=True)
class Study:
    report: str
    title: str
    protocol: str  # what the report states, what we chose where it is silent, and why
    settings: tuple
    #: unpublished rows: test accuracy after these epochs of each setting (sensitivity)
    sensitivity_epochs: tuple = ()
    figures: tuple = ()  # Figure


def _tuples(x):
    """JSON's lists as the tuples the dataclasses hold (dicts keep their keys)."""
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    return tuple(map(_tuples, x)) if isinstance(x, list) else x


def load_study(file) -> Study:
    """A study from its JSON file (a Path or an importlib.resources file): the fields of
    Study, each setting's of Setting with its published numbers' of Published and each
    figure's of Figure; a field left out takes its default. The report is the file's name."""
    d = _tuples(json.loads(file.read_text()))
    settings = tuple(Setting(**{**s, "published": tuple(Published(**p) for p in s.get("published", ()))})
                     for s in d.pop("settings"))
    figures = tuple(Figure(**f) for f in d.pop("figures", ()))
    return Study(file.name.removesuffix(".json"), settings=settings, figures=figures, **d)


#: the five reference reports' studies, one file each in mnistcnn/studies (package data)
STUDIES = {f.name.removesuffix(".json"): load_study(f) for f in
           sorted(resources.files(__package__).joinpath("studies").iterdir(), key=lambda f: f.name)
           if f.name.endswith(".json")}

#: smoke size: every setting's protocol on 64 images for at most 2 epochs
SMOKE: dict = dict(train_limit=64, test_limit=100)
SMOKE_EPOCHS = 2


def _value(r, metric: str, epoch: int | None):
    """The quantity ``metric`` of run ``r`` at the end of 1-based ``epoch`` (None: the end)."""
    last = epoch is None or epoch >= len(r.epochs)
    e = r.epochs[-1] if last or epoch is None else r.epochs[epoch - 1]
    if metric == "test_acc":
        return r.test_acc if last else e.test_acc
    if metric == "test_loss":
        return r.test_loss if last else e.test_loss
    if metric == "train_loss_last":
        return r.steps[-1][1] if r.steps else e.train_loss
    if metric == "total_time_s":
        return sum(x.time_s for x in r.epochs[:len(r.epochs) if last else epoch])
    return getattr(e, metric)


def _runs(setting_dir: Path, setting: Setting, cfg: TrainConfig) -> dict:
    """{(mode, variant, backend, seed): the finished run or None} for every run the setting
    plans: read once, for its table rows and its cost; a finished run of another protocol
    or model (the setting changed since) is an error, not a row."""
    spec = setting.spec()
    runs = {astuple(job.key): finished(job.out, job) for mode, backends in setting.runs
            for job in compare.plan(spec, setting_dir / mode, setting.seeds, cfg, backends, setting.bn_pair, (mode,))}
    if setting.precision:  # its further seeds, up to the last one trained (the rule stops them)
        variant, _, most = setting.precision
        mode, backends = setting.runs[0]
        more = {job.key: finished(job.out, job) for job in compare.plan(
            spec, setting_dir / mode, most, cfg, backends, setting.bn_pair, (mode,), (variant,))
            if job.key.seed >= cfg.seed + setting.seeds}
        last = max((key.seed for key, r in more.items() if r is not None), default=-1)
        runs.update({astuple(key): r for key, r in more.items() if key.seed <= last})
    return runs


def _group_values(runs: dict, published: Published, variant: str) -> dict:
    """{(mode, backend): [value per seed, None where the run is missing]}."""
    out: dict = {}
    for (mode, v, backend, _), r in runs.items():  # seeds in order
        if v == variant:
            out.setdefault((mode, backend), []).append(
                None if r is None else _value(r, published.metric, published.epoch))
    return out


def _row(study: Study, setting: Setting, p: Published | None, values: dict, what: str) -> dict:
    row: dict = {"report": study.report, "setting": setting.name, "what": what, "differences": setting.differences,
           "published": None if p is None else p.value, "framework": None if p is None else p.framework,
           "metric": "test_acc" if p is None else p.metric}
    for (mode, backend), vs in values.items():
        got = [v for v in vs if v is not None]
        row[f"{backend}_{mode}"] = stats.describe(got) if got else None
    for mode, backends in setting.runs:
        if set(backends) == set(BACKENDS):
            pairs = [(a, b) for a, b in zip(values[(mode, "torch")], values[(mode, "keras")])
                     if a is not None and b is not None]
            row[f"diff_{mode}"] = stats.paired([a for a, _ in pairs], [b for _, b in pairs]) if pairs else None
    if p is not None:
        own = [v for v in values.get(("native", p.framework), []) if v is not None]
        interval = stats.prediction_interval(own) if len(own) > 1 else None
        row["prediction_interval"] = interval
        row["inside"] = None if interval is None else interval[0] <= p.value <= interval[1]
    return row


def with_backends(study: Study, backends) -> Study:
    """The study with ``backends`` wherever it runs both frameworks (torch, keras): e.g.
    torch, keras, jax adds Keras on JAX beside them. Runs of the report's own framework
    alone (report 004's native Keras) stay as they are."""
    backends = tuple(backends)
    return replace(study, settings=tuple([
        replace(s, runs=tuple((mode, backends if set(bs) == set(BACKENDS) else bs) for mode, bs in s.runs))
        for s in study.settings]))


def reproduce(report: str, out, smoke: bool = False, seeds: int | None = None, workers: int = 1,
              data_dir=None, progress: bool = True,
              command: str = "mnistcnn.reproduce.reproduce() from Python", train: bool = True,
              backends=BACKENDS, only=None) -> dict:
    """Run report ``report``'s study into ``out``/<report>/ and write reproduce.json and
    reproduce.md there; returns the summary. Finished runs are skipped; ``train=False``
    only tabulates the runs already finished (a study still under way). ``backends``:
    the frameworks of its two-framework runs (with_backends). ``only``: the names of the
    settings to train (the others are tabulated from their finished runs)."""
    study, base = _study(report, seeds, backends, only), Path(out) / report
    started, n_seeds = time.perf_counter(), n_seeds_of(study, smoke, seeds)
    if train:
        _train([s for s in study.settings if only is None or s.name in only], base, n_seeds, smoke,
               precision=seeds is None, workers=workers, data_dir=data_dir, progress=progress, command=command)
    settings = [replace(s, seeds=n_seeds[s.name]) for s in study.settings]
    read = {s.name: _runs(base / s.name, s, _config(s, smoke)) for s in settings}
    rows = [row for s in settings for row in _rows(study, s, read[s.name])]
    spent = [_spent(s.name, read[s.name]) for s in settings]
    figures = [study_figure(base, f, read) for f in study.figures]
    summary = {"report": report, "title": study.title, "protocol": study.protocol, "smoke": smoke,
               "complete": all(r.get(k) is not None and r[k]["n"] >= n_seeds[r["setting"]]
                               for r in rows for k in _cells(study, r["setting"])),
               "command": command, "date": datetime.date.today().isoformat(),
               "wall_time_s": time.perf_counter() - started,
               "run_time_s": sum(sum(d["seconds"]) for x in spent for d in x["backends"].values()),
               "settings": [asdict(s) for s in study.settings], "rows": rows,
               "figures": [f for f in figures if f],
               "costs": [_cost(study, s, n_seeds, read) for s in study.settings if s.against],
               "failed": _failed(base), "spent": spent}
    atomic_write_text(base / "reproduce.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(base / "reproduce.md", documents.study_markdown(summary))
    return summary


def _study(report: str, seeds, backends, only) -> Study:
    """Report ``report``'s study with ``backends``, once the arguments are checked."""
    if report not in STUDIES:
        raise ConfigError(f"Unknown report {report!r}. Valid: {', '.join(STUDIES)}, or all.")
    if seeds is not None and (not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f"Invalid value for `seeds`. Expected an integer >= 1 (or none: the study's "
                          f"own). Received seeds={seeds!r}.")
    study = with_backends(STUDIES[report], backends)
    names = [s.name for s in study.settings]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ConfigError(f"Report {report} has no setting {', '.join(unknown)}. Its settings: "
                          f"{', '.join(names)}.")
    return study


def _train(chosen: list, base: Path, n_seeds: dict, smoke: bool, precision: bool, **kw) -> None:
    """Train the ``chosen`` settings: every setting's first group (native) before any
    setting's second, so that a study stopped half-way has the runs its published numbers
    are read against in all its settings; then, with ``precision`` (the study's own seeds)
    and not ``smoke``, each setting's further seeds under its precision rule. ``kw``:
    compare's workers, data_dir, progress and command."""
    for group in range(max((len(s.runs) for s in chosen), default=0)):
        for setting in chosen:
            if group < len(setting.runs):
                mode, backends = setting.runs[group]
                compare.compare(setting.spec(), base / setting.name / mode, seeds=n_seeds[setting.name],
                                cfg=_config(setting, smoke), backends=backends, bn=setting.bn_pair, modes=(mode,),
                                isolate=not smoke, plots=not smoke, **kw)
    for setting in chosen:
        if setting.precision and not smoke and precision:
            variant, target_pp, most = setting.precision
            mode, backends = setting.runs[0]
            compare.compare(setting.spec(), base / setting.name / mode, seeds=setting.seeds,
                            cfg=_config(setting, smoke), backends=backends, bn=setting.bn_pair, modes=(mode,),
                            ci_target_pp=target_pp, max_seeds=most, variants=(variant,), **kw)


def _rows(study: Study, setting: Setting, runs: dict) -> list:
    """The setting's table rows, for each variant it trains: one per published number, and
    one per sensitivity epoch of the study (not published)."""
    rows = []
    for variant in ("no-bn", "bn") if setting.bn_pair else ("as-is",):
        label = "" if variant == "as-is" else f" [{variant}]"
        for p in setting.published:
            rows.append(_row(study, setting, p, _group_values(runs, p, variant), p.what + label))
        for k in study.sensitivity_epochs:
            probe = Published(f"test accuracy after {k} epochs", 0.0, "test_acc", "torch", k)
            rows.append(_row(study, setting, None, _group_values(runs, probe, variant),
                             f"(not published) {probe.what}{label}"))
    return rows


def _spent(name: str, runs: dict) -> dict:
    """What the setting's runs cost here: per backend, runs planned and the training seconds
    of each finished one, and the machines they ran on."""
    backends: dict = {}
    machines = set()
    for (_, _, backend, _), r in runs.items():
        d = backends.setdefault(backend, {"planned": 0, "seconds": []})
        d["planned"] += 1
        if r is not None:
            d["seconds"].append(sum(e.time_s for e in r.epochs))
            machines.add(machine(r.environment))
    return {"setting": name, "backends": backends, "machines": sorted(machines)}


def machine(env: dict) -> str:
    """A run's CPU as its cost table names it: model, vector extensions, cores."""
    ext = env.get("cpu_extensions")
    ext = "extensions not recorded" if ext is None else ", ".join(ext) or "no vector extensions named"
    return f"{env.get('cpu', '?')} ({ext}), {env.get('cpu_count', '?')} cores"


def _failed(base: Path) -> list:
    """The runs whose last attempt failed and that no finished run has replaced: their
    place under ``base`` and the error's first line (a diverged run is a result too)."""
    return [{"run": f.parent.relative_to(base).as_posix(), "error": f.read_text().strip().splitlines()[0]}
            for f in sorted(base.glob(f"**/{ERROR_FILE}")) if finished(f.parent) is None]


def _cost(study: Study, setting: Setting, n_seeds: dict, read: dict) -> dict:
    """The setting's own framework's native runs against those of the setting it changes,
    paired by seed: ``against`` − ``setting``, at the published number's epoch (``read``:
    each setting's _runs)."""
    p = setting.published[0]
    other = next(s for s in study.settings if s.name == setting.against)
    n = min(n_seeds[setting.name], n_seeds[other.name])
    values = [_group_values({k: r for k, r in read[s.name].items() if k[3] < n}, p, "as-is")
              [("native", p.framework)] for s in (other, setting)]
    pairs = [(a, b) for a, b in zip(*values) if a is not None and b is not None]
    return {"setting": setting.name, "against": other.name, "framework": p.framework, "what": p.what,
            "paired": stats.paired([a for a, _ in pairs], [b for _, b in pairs]) if pairs else None}


def _cells(study: Study, setting_name: str) -> list:
    setting = next(s for s in study.settings if s.name == setting_name)
    return [f"{b}_{mode}" for mode, backends in setting.runs for b in backends]


def _config(setting: Setting, smoke: bool) -> TrainConfig:
    cfg = TrainConfig(**setting.config)
    if smoke:
        cfg = replace(cfg, epochs=min(cfg.epochs, SMOKE_EPOCHS), **SMOKE, val_size=min(cfg.val_size, 64))
    return cfg


def n_seeds_of(study: Study, smoke: bool, seeds: int | None) -> dict:
    return {s.name: 1 if smoke else (seeds or s.seeds) for s in study.settings}

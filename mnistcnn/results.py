"""What runs produce, as plain data: per-epoch records, a run's result (result.json,
epochs.csv), for a run that failed its error, and what a comparison found (its
results.json). Tables, documents and plots read these; nothing here trains.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import _display
from .config import Optimizer
from .errors import ConfigError


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    lr: float
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    time_s: float  # training time of the epoch (evaluation excluded)
    images_per_s: float
    test_loss: float | None = None  # with TrainConfig.test_every_epoch
    test_acc: float | None = None
    cpu_s: float | None = None  # CPU time of the training process in the epoch, all its threads
    load_avg: float | None = None  # the machine's 1-minute load average at the epoch's end


@dataclass
class RunResult:
    backend: str
    spec: dict  # the spec actually trained (config.TrainConfig.trained_spec)
    config: dict
    optimizer: Optimizer
    epochs: list = field(default_factory=list)
    test_loss: float | None = None
    test_acc: float | None = None
    confusion: list | None = None  # [true][predicted] counts on the test set
    steps: list = field(default_factory=list)  # [step, mean training loss since the last]
    trainable_params: int = 0
    state_params: int = 0
    environment: dict = field(default_factory=dict)
    completed: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def read(cls, path) -> RunResult:
        """The run in ``path`` (a result.json); a damaged file (truncated, another file's
        content, unreadable) is one error naming it and the fix."""
        try:
            return cls.from_json(Path(path).read_text())
        except OSError as e:
            raise ConfigError(f"Cannot read {path}: {e.strerror or e}. Delete it, or pass `overwrite=True` "
                              "to train the run again.") from None
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ConfigError(f"{path} is damaged or not a mnistcnn run's result ({type(e).__name__}: {e}). "
                              "Delete it, or pass `overwrite=True` to train the run again.") from None

    @classmethod
    def from_json(cls, text: str) -> RunResult:
        d = json.loads(text)
        d["epochs"] = [EpochRecord(**e) for e in d["epochs"]]
        opt = d["optimizer"]
        if "form" in opt:  # result.json of mnistcnn before the Optimizer type
            form = opt.pop("form")
            opt["formulas"] = "torch" if form == "torch" else "native"
        d["optimizer"] = Optimizer(**opt)
        return cls(**d)

    def epochs_csv(self) -> str:
        buf = io.StringIO()
        names = [f.name for f in fields(EpochRecord)]
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["backend", "seed", *names])
        for e in self.epochs:
            writer.writerow([self.backend, self.config["seed"], *(getattr(e, n) for n in names)])
        return buf.getvalue()

    # -- display (a notebook shows _repr_html_) --------------------------------------
    def __str__(self) -> str:
        test = "not tested yet" if self.test_acc is None else \
            f"test accuracy {self.test_acc * 100:.2f}%, test loss {self.test_loss:.4f}"
        return (f"{self.spec['name']} in {self.backend} ({self.config.get('defaults')}, seed "
                f"{self.config.get('seed')}): {test} after {len(self.epochs)} of {self.config.get('epochs')} "
                f"epochs, {sum(e.time_s for e in self.epochs):.1f} s of training")

    def _doc(self) -> _display.Doc:
        doc = _display.Doc().heading(str(self))
        doc.line(f"{self.optimizer.name} lr {self.optimizer.lr:g}, batch {self.config.get('batch_size')}, "
                 f"{self.trainable_params:,} trainable parameters")
        pct = lambda v: "–" if v is None else f"{v * 100:.2f}"  # noqa: E731
        num = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
        return doc.table(["epoch", "train loss", "train acc %", "val loss", "val acc %", "time s", "images/s"],
                         [[e.epoch, num(e.train_loss), pct(e.train_acc), num(e.val_loss), pct(e.val_acc),
                           f"{e.time_s:.1f}", f"{e.images_per_s:,.0f}"] for e in self.epochs], right=range(7))

    def _repr_html_(self) -> str:
        return self._doc().html()

    def _repr_markdown_(self) -> str:
        return self._doc().markdown()

    def records(self) -> list[dict]:
        """One record per epoch (EpochRecord's fields), with the backend and seed."""
        return [{"backend": self.backend, "seed": self.config.get("seed"), **asdict(e)} for e in self.epochs]

    def to_pandas(self):
        """records() as a pandas DataFrame (pandas: pip install 'mnistcnn[notebook]')."""
        return _display.to_pandas(self.records())

    def plot(self) -> _display.Figures:
        """Loss and accuracy per epoch (training: running mean over the epoch; validation:
        at its end), as matplotlib figures ('loss', 'accuracy') from mnistcnn.report."""
        from . import report

        mode = self.config.get("defaults", "harmonized")
        one = CompareSummary(spec=self.spec["name"], command="", date="", config=self.config, seeds=1, modes=[mode],
                             variants=["as-is"], backends=[self.backend], params={},
                             runs=[{"mode": mode, "variant": "as-is", "backend": self.backend,
                                    "seed": self.config.get("seed"), "test_acc": self.test_acc}])
        by = {(mode, "as-is", self.backend): [self]}
        return _display.figures([
            ("loss", report._epochs_figure(one, by, mode, ("train_loss", "val_loss"), "cross-entropy", 1)),
            ("accuracy", report._epochs_figure(one, by, mode, ("train_acc", "val_acc"), "accuracy %", 100))])


@dataclass(frozen=True)
class RunError:
    """A run that failed: the one-line cause ('ErrorType: message')."""

    message: str

    @property
    def last_line(self) -> str:
        return self.message.strip().splitlines()[-1] if self.message.strip() else ""


@dataclass
class CompareSummary:
    """What a comparison found, as written to results.json (report.md and the plots are
    made from it)."""

    spec: str
    command: str
    date: str
    config: dict
    seeds: int
    modes: list
    variants: list
    backends: list
    params: dict  # variant -> {"trainable": n, "state": n}
    batchnorm: str = ""  # the BN variant's BatchNorm, in words (config.BN_VARIANT); "" before it was recorded
    runs: list = field(default_factory=list)  # one row per run (error rows hold "error")
    groups: list = field(default_factory=list)  # per (mode, variant, backend): test metrics
    paired: list = field(default_factory=list)  # per (mode, variant): paired a - b
    ablation: list = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    plots: list = field(default_factory=list)
    #: with a CI target: the target, the seeds it took, why it stopped, and the rule
    sequential: dict | None = None

    def __post_init__(self):
        #: the report directory (set by compare and load_comparison; not in results.json)
        self.directory: Path | None = None

    @classmethod
    def from_dict(cls, d: dict) -> CompareSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    # -- display: a short verdict as text, the tables in a notebook ----------------------
    def _title(self) -> str:
        cfg = self.config
        return (f"{self.spec}: {' vs '.join(self.backends)}, {self.seeds} seed{'s' * (self.seeds != 1)}, "
                f"{cfg.get('epochs')} epoch{'s' * (cfg.get('epochs') != 1)}"
                + (f" on {cfg['train_limit']:,} training images" if cfg.get("train_limit") else "")
                + (f" ({self.directory})" if self.directory else ""))

    def _verdicts(self) -> list[str]:
        lines = [f"{p['variant']}, {p['mode']}" + ("" if len(self.backends) == 2 else f", {p['a']} - {p['b']}")
                 + f": {p['verdict']}" for p in self.paired]
        failed = [r for r in self.runs if "error" in r]
        if failed:
            lines.append(f"{len(failed)} of {len(self.runs)} runs failed (records('runs') has their errors)")
        return lines or ["no pair of backends finished the same seed: no verdict"]

    def __str__(self) -> str:
        return "\n".join([self._title(), *(f"  {v}" for v in self._verdicts())])

    __repr__ = __str__

    def _doc(self) -> _display.Doc:
        pct = lambda d, k="mean": "–" if d.get(k) is None else f"{d[k] * 100:.2f}"  # noqa: E731
        pp = lambda v: f"{v * 100:+.2f}"  # noqa: E731
        doc = _display.Doc().heading(self._title()).items(self._verdicts())
        doc.table(["mode", "variant", "backend", "seeds", "test acc %", "sd", "test loss", "epoch time s"],
                  [[g["mode"], g["variant"], g["backend"], g["test_acc"]["n"], pct(g["test_acc"]),
                    pct(g["test_acc"], "sd"), f"{g['test_loss']['mean']:.4f}", f"{g['epoch_time_s']['mean']:.1f}"]
                   for g in self.groups], right=range(3, 8))
        doc.table(["mode", "variant", "pair", "n", "difference pp", "95% CI pp", "p"],
                  [[p["mode"], p["variant"], f"{p['a']} − {p['b']}", p["test_acc"]["n"], pp(p["test_acc"]["mean_diff"]),
                    "–" if p["test_acc"]["ci_low"] is None else
                    f"{pp(p['test_acc']['ci_low'])} to {pp(p['test_acc']['ci_high'])}",
                    "–" if p["test_acc"]["p_value"] is None else f"{p['test_acc']['p_value']:.3g}"]
                   for p in self.paired], right=range(3, 7))
        if self.ablation:
            doc.line("Native runs with one default at a time harmonized: a gap that shrinks points at a contributor.")
            doc.table(["variant", "default harmonized", "native gap pp", "gap then pp", "shrinks by pp"],
                      [[a["variant"], a["item"], pp(a["native_gap"]), pp(a["gap_with_item_harmonized"]),
                        f"{a['shrinks_by_pp']:+.2f}"] for a in self.ablation], right=range(2, 5))
        return doc

    def _repr_html_(self) -> str:
        return self._doc().html()

    def _repr_markdown_(self) -> str:
        return self._doc().markdown()

    #: the tables records() gives
    TABLES = ("runs", "groups", "paired", "ablation")

    def records(self, table: str = "runs") -> list[dict]:
        """The rows of one table as flat dicts: 'runs' (one per run: its key, test accuracy
        and loss, times, or its error), 'groups' (per mode, variant and backend: test
        metrics over seeds, as n/mean/sd/min/max columns), 'paired' (per mode, variant
        and pair of backends: the paired difference, its CI and the verdict) or 'ablation'."""
        if table not in self.TABLES:
            raise ValueError(f"Unknown table {table!r}: expected one of {', '.join(self.TABLES)}.")
        return [_display.flat(r) for r in getattr(self, table)]

    def to_pandas(self, table: str = "runs"):
        """records(table) as a pandas DataFrame (pandas: pip install 'mnistcnn[notebook]')."""
        return _display.to_pandas(self.records(table))

    def run_results(self) -> dict:
        """(mode, variant, backend, seed) -> the finished RunResult, read from the runs'
        directories (each with its per-epoch records and loss curve)."""
        if self.directory is None:
            raise ConfigError("This comparison has no directory to read its runs from: use "
                              "mnistcnn.load_comparison(`directory`).")
        out = {}
        for r in self.runs:
            path = Path(self.directory) / "runs" / r["mode"] / r["variant"] / r["backend"] / f"seed{r['seed']}"
            if "error" not in r and (path / "result.json").exists():
                out[(r["mode"], r["variant"], r["backend"], r["seed"])] = RunResult.read(path / "result.json")
        return out

    #: the figures plot() draws, in the order of the report
    FIGURES = ("forest", "loss", "train_val_loss", "accuracy", "test_accuracy", "confusion", "ablation")

    def plot(self, *names: str, mode: str | None = None) -> _display.Figures:
        """The report's figures as matplotlib figures (mnistcnn.report draws them): all of
        FIGURES that apply, or those named. ``mode``: whose curves (default harmonized)."""
        from . import report

        unknown = set(names) - set(self.FIGURES)
        if unknown:
            raise ValueError(f"Unknown figure(s) {', '.join(sorted(unknown))}: expected some of "
                             f"{', '.join(self.FIGURES)}.")
        mode = mode or ("harmonized" if "harmonized" in self.modes else self.modes[0])
        wanted = [n for n in self.FIGURES if n in (names or self.FIGURES)]
        by: dict = {}
        if set(wanted) & {"loss", "train_val_loss", "accuracy", "confusion"}:
            for (m, variant, backend, _), r in sorted(self.run_results().items()):
                by.setdefault((m, variant, backend), []).append(r)
        pair = " − ".join(self.backends) if len(self.backends) == 2 else "each pair's"
        draw = {
            "forest": lambda: report.forest_figure(self.paired, f"{self.spec}: {pair} test accuracy, paired by seed"),
            "loss": lambda: report._loss_figure(self, by, mode),
            "train_val_loss": lambda: report._epochs_figure(self, by, mode, ("train_loss", "val_loss"),
                                                            "cross-entropy", 1),
            "accuracy": lambda: report._epochs_figure(self, by, mode, ("train_acc", "val_acc"), "accuracy %", 100),
            "test_accuracy": lambda: report._test_accuracy_figure(self),
            "confusion": lambda: report._confusion_figure(self, by, mode),
            "ablation": lambda: report.ablation_figure(self.ablation),
        }
        runs = [r for rs in by.values() for r in rs]
        applies = {"forest": bool(self.paired), "ablation": bool(self.ablation), "test_accuracy": bool(self.groups),
                   "loss": any(r.steps for r in runs), "confusion": any(r.confusion for r in runs)}
        return _display.figures((n, draw[n]()) for n in wanted if applies.get(n, bool(by)))


def load_comparison(directory) -> CompareSummary:
    """A comparison's results, re-opened from its directory (results.json and the runs)."""
    path = Path(directory) / "results.json"
    try:
        summary = CompareSummary.from_dict(json.loads(path.read_text()))
    except OSError as e:
        raise ConfigError(f"Cannot read {path}: {e.strerror or e}. Is `directory` a comparison's output "
                          "directory (mnistcnn.compare(spec, out))?") from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path} is damaged or not a comparison's results ({type(e).__name__}: {e}).") from None
    summary.directory = Path(directory)
    return summary


class SweepSummary(dict):
    """What a sweep found, as written to sweep.json (a dict: "spec", "grid", "seeds",
    "backends", "config", "rows" with one row per cell and backend), which shows itself
    in a notebook, gives its rows as records and draws its figures."""

    def __init__(self, data: dict, directory=None):
        super().__init__(data)
        self.directory = None if directory is None else Path(directory)

    def _title(self) -> str:
        axes = "; ".join(f"{k}={','.join(map(str, v))}" for k, v in self["grid"].items())
        epochs = self["config"].get("epochs")
        return (f"Sweep of {self['spec']} over {axes}: {' and '.join(self['backends'])}, {self['seeds']} seed"
                f"{'s' * (self['seeds'] != 1)}, {epochs} epoch{'s' * (epochs != 1)}"
                + (f" ({self.directory})" if self.directory else ""))

    def _best(self) -> list[str]:
        lines = []
        for backend in self["backends"]:
            done = [r for r in self["rows"] if r["backend"] == backend and r["runs"]]
            if done:
                done.sort(key=lambda r: r["test_acc"]["mean"])
                best, worst = done[-1], done[0]
                lines.append(f"{backend}: best {best['cell']} at {best['test_acc']['mean'] * 100:.2f}% test accuracy"
                             + ("" if len(done) < 2 else
                                f", worst {worst['cell']} at {worst['test_acc']['mean'] * 100:.2f}%"))
        failed = sum(len(r["errors"]) for r in self["rows"])
        return lines + ([f"{failed} run{'s' * (failed != 1)} failed (records() has their errors)"] if failed else [])

    def __str__(self) -> str:
        return "\n".join([self._title(), *(f"  {line}" for line in self._best())])

    __repr__ = __str__

    def _doc(self) -> _display.Doc:
        doc = _display.Doc().heading(self._title()).items(self._best())
        rows = []
        for r in self["rows"]:
            if not r["runs"]:
                rows.append([r["cell"], r["backend"], "failed: " + r["errors"][0].strip().splitlines()[-1], "", "", ""])
                continue
            sd = r["test_acc"]["sd"]
            rows.append([r["cell"], r["backend"], " / ".join(f"{v * 100:.2f}" for v in r["val_acc_per_epoch"]),
                         f"{r['test_acc']['mean'] * 100:.2f}" + ("" if sd is None else f" ± {sd * 100:.2f}"),
                         f"{r['test_loss']['mean']:.4f}", f"{r['epoch_time_s']:.1f}"])
        return doc.table(["cell", "backend", "val acc % per epoch", "test acc %", "test loss", "epoch time s"],
                         rows, right=range(3, 6))

    def _repr_html_(self) -> str:
        return self._doc().html()

    def _repr_markdown_(self) -> str:
        return self._doc().markdown()

    def records(self) -> list[dict]:
        """One flat dict per cell and backend: the cell's settings, test accuracy and loss
        (n/mean/sd/min/max columns), times, errors."""
        return [_display.flat(r) for r in self["rows"]]

    def to_pandas(self):
        """records() as a pandas DataFrame (pandas: pip install 'mnistcnn[notebook]')."""
        return _display.to_pandas(self.records())

    def run_results(self) -> dict:
        """(cell, backend, seed) -> the finished RunResult, read from the runs' directories."""
        if self.directory is None:
            raise ConfigError("This sweep has no directory to read its runs from: use "
                              "mnistcnn.load_sweep(`directory`).")
        first, out = self["config"]["seed"], {}
        for r in self["rows"]:
            name = r["cell"].replace("/", "_").replace(":", "_")
            for seed in range(first, first + self["seeds"]):
                path = self.directory / "runs" / name / r["backend"] / f"seed{seed}" / "result.json"
                if path.exists():
                    out[(r["cell"], r["backend"], seed)] = RunResult.read(path)
        return out

    def plot(self) -> _display.Figures:
        """'test_accuracy': each cell's test accuracy in each backend (mean ± sd over seeds);
        'val_accuracy': validation accuracy per epoch, one panel per cell (mnistcnn.report draws them)."""
        from . import report

        mode = self["config"].get("defaults", "harmonized")
        runs = self.run_results()
        # the sweep seen as a comparison of its cells (variants), which the figures draw
        view = CompareSummary(
            spec=self["spec"], command=self.get("command", ""), date=self.get("date", ""), config=self["config"],
            seeds=self["seeds"], modes=[mode], variants=list(dict.fromkeys(r["cell"] for r in self["rows"])),
            backends=self["backends"], params={},
            runs=[{"mode": mode, "variant": cell, "backend": backend, "seed": seed, "test_acc": r.test_acc}
                  for (cell, backend, seed), r in runs.items()],
            groups=[{"mode": mode, "variant": r["cell"], "backend": r["backend"], "test_acc": r["test_acc"]}
                    for r in self["rows"] if r["runs"]])
        by: dict = {}
        for (cell, backend, _), run in sorted(runs.items()):
            by.setdefault((mode, cell, backend), []).append(run)
        figs = [("test_accuracy", report._test_accuracy_figure(view))]
        if by:
            figs.append(("val_accuracy", report._epochs_figure(view, by, mode, ("val_acc",), "accuracy %", 100)))
        return _display.figures(figs)


def load_sweep(directory) -> SweepSummary:
    """A sweep's results, re-opened from its directory (sweep.json and the runs)."""
    path = Path(directory) / "sweep.json"
    try:
        return SweepSummary(json.loads(path.read_text()), directory)
    except OSError as e:
        raise ConfigError(f"Cannot read {path}: {e.strerror or e}. Is `directory` a sweep's output "
                          "directory (mnistcnn.sweep(spec, grid, out))?") from None
    except ValueError as e:
        raise ConfigError(f"{path} is damaged or not a sweep's results ({e}).") from None


def load_run(directory) -> RunResult:
    """A run's result, re-opened from its directory (or its result.json)."""
    path = Path(directory)
    return RunResult.read(path if path.suffix == ".json" else path / "result.json")

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

    @classmethod
    def from_dict(cls, d: dict) -> CompareSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

"""Each reference report's study under its own protocol, in both frameworks.

A study is a list of settings (an architecture and the report's training protocol); each
setting runs as ``compare`` runs (both backends, harmonized and native, several seeds)
into its own directory, and every number the report published becomes one row: the
published value next to each framework's mean and spread at the same point of training,
the paired torch - keras difference, and whether the published value lies inside the 95%
prediction interval of its own framework's native runs.

Where a report is silent about a setting, the protocol below says what was chosen and why
(``Study.protocol``). Runs resume and skip finished work, so a long study continues across
sittings. ``smoke=True`` keeps each protocol but trains on a few hundred images, one seed:
for the tests, never for results.
"""
from __future__ import annotations

import datetime
import json
import time
from dataclasses import asdict, astuple, dataclass, replace
from pathlib import Path

from . import compare, documents, stats, zoo
from ._io import atomic_write_text
from .backends import PAIR
from .config import DEFAULT_ITEMS, TrainConfig
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
class Study:
    report: str
    title: str
    protocol: str  # what the report states, what we chose where it is silent, and why
    settings: tuple
    #: unpublished rows: test accuracy after these epochs of each setting (sensitivity)
    sensitivity_epochs: tuple = ()
    #: the figures the report drew, made from our runs: (file, title, y label, metric,
    #: panels as (panel title, [(setting, variant, mode, backend)]))
    figures: tuple = ()


def _pub(what, value, metric, framework, epoch=None):
    return Published(what, value, metric, framework, epoch)


def _keras_001_published(label, test, first, last):
    """Report 001's numbers of one Keras run: ``test`` (accuracy, loss) or None, and the
    training (accuracy, loss) it printed for epoch 1 (``first``) and 5 (``last``, or None)."""
    rows = [] if test is None else [_pub(f"test accuracy, {label}", test[0], "test_acc", "keras"),
                                    _pub(f"test loss, {label}", test[1], "test_loss", "keras")]
    for epoch, numbers in ((1, first), (5, last)):
        if numbers:
            rows += [_pub(f"training accuracy, epoch {epoch}, {label}", numbers[0], "train_acc", "keras", epoch),
                     _pub(f"training loss, epoch {epoch}, {label}", numbers[1], "train_loss", "keras", epoch)]
    return tuple(rows)


_ADAM_64_UNIT = dict(optimizer="adam", lr=1e-3, batch_size=64, normalization="unit", val_size=0,
                     epochs=10, test_every_epoch=True)
#: report 001's Keras optimizer is not in its text: one epoch of its relu model with each
#: candidate, against the training accuracy and loss it printed for epoch 1 (Keras' defaults)
_OPTIMIZERS_001 = (("sgd", dict(optimizer="sgd", lr=0.01, momentum=0.0)),
                   ("adam", dict(optimizer="adam", lr=1e-3)),
                   ("rmsprop", dict(optimizer="rmsprop", lr=1e-3, momentum=0.0)),
                   ("adadelta", dict(optimizer="adadelta", lr=1e-3, rho=0.95, eps=1e-7)),
                   ("adadelta-lr1", dict(optimizer="adadelta", lr=1.0, rho=0.95, eps=1e-7)))
#: the candidate whose first epoch is the report's (plain SGD)
_KERAS_001 = dict(**dict(_OPTIMIZERS_001)["sgd"], batch_size=128, epochs=5, normalization="unit", val_size=0)
#: the relu model's numbers: test (accuracy, loss), training (accuracy, loss) of epochs 1 and 5
_RELU_001 = ((0.9733, 0.0853), (0.563, 1.373), (0.9234, 0.2664))
_TORCH_001 = dict(optimizer="sgd", lr=0.01, momentum=0.5, batch_size=128, epochs=5,
                  normalization="standard", val_size=0)
_SGD_003 = dict(optimizer="sgd", momentum=0.9, batch_size=50, normalization="standard", val_size=0,
                test_every_epoch=True)
_KERAS_004 = dict(optimizer="adam", lr=1e-3, batch_size=128, epochs=12, normalization="unit",
                  val_size=0, test_every_epoch=True)
_RUNS = (("native", BACKENDS), ("harmonized", BACKENDS))
_CONFIG_002 = dict(optimizer="adam", lr=1e-3, batch_size=64, epochs=20, val_size=10_000, normalization="unit",
                   test_every_epoch=True)
_PUBLISHED_002 = (
    _pub("last-epoch training accuracy, 10 epochs", 0.4678, "train_acc", "torch", 10),
    _pub("last-epoch validation accuracy, 10 epochs", 0.4736, "val_acc", "torch", 10),
    _pub("test accuracy, 10 epochs", 0.4794, "test_acc", "torch", 10),
    _pub("total training time s, 10 epochs", 245, "total_time_s", "torch", 10),
    _pub("last-epoch training accuracy, 20 epochs", 0.4834, "train_acc", "torch", 20),
    _pub("last-epoch validation accuracy, 20 epochs", 0.4904, "val_acc", "torch", 20),
    _pub("test accuracy, 20 epochs", 0.4854, "test_acc", "torch", 20),
    _pub("total training time s, 20 epochs", 426, "total_time_s", "torch", 20))
#: compare's --ablate for a model without BatchNorm: native with one default harmonized
_ABLATE_NO_BN = (("native+init", BACKENDS), ("native+optimizer", BACKENDS))
_ABLATE = tuple((f"native+{item}", BACKENDS) for item in DEFAULT_ITEMS)
_D001_KERAS = ("Its Keras optimizer is not in the text (SGD with Keras' default lr 0.01 here, the candidate "
               "whose first epoch matches the one it printed: the keras-relu-epoch1-* rows); one run per "
               "number.")
_D001_TORCH = ("The 2019 pytorch/examples main.py protocol is assumed (SGD lr 0.01, momentum 0.5); one run per "
               "number.")
_D003 = ("Its 'final loss' is one batch's loss (ours: the mean of the last 10 logged steps); one run per "
         "number.")
#: report 004's Keras log, as printed (the models as published, BatchNorm on axis 1): (epoch,
#: training loss, training accuracy, validation loss, validation accuracy), None where the
#: line is cut off; the first and the last epoch whose line is legible (the test set validates)
_EPOCHS_004 = {"keras3-cnn": ((1, 0.4069, 0.8740, 0.1157, 0.9648), (12, 0.0305, 0.9898, 0.0534, None)),
               "keras5-cnn": ((1, 0.2118, 0.9349, 0.0499, 0.9849), (12, 0.0234, 0.9935, 0.0272, None)),
               "keras7-cnn": ((4, 0.0635, 0.9808, 0.0502, 0.9867), (12, None, None, 0.0311, None))}


def _epochs_004(log):
    """Report 004's per-epoch numbers as published rows (the epoch-12 validation accuracy is
    its test accuracy, a row of its own)."""
    return tuple(_pub(f"epoch {e}: {what}", v, metric, "keras", e) for e, *values in log
                 for (what, metric), v in zip((("training loss", "train_loss"), ("training accuracy", "train_acc"),
                                               ("validation (test set) loss", "test_loss"),
                                               ("validation (test set) accuracy", "test_acc")), values)
                 if v is not None)


#: report 004: its own framework natively, both frameworks harmonized, 2 seeds (the costly one)
_RUNS_004 = (("native", ("keras",)), ("harmonized", BACKENDS))


STUDIES = {s.report: s for s in [
    Study("000", "PyTorch vs TensorFlow, one CNN in both, with and without BatchNorm",
          "The report gives the architecture and the two accuracies only: no epochs, optimizer, "
          "batch size or preprocessing. Chosen: Adam (lr 1e-3), the optimizer of both frameworks' "
          "MNIST tutorials of its time (TensorFlow 2.3, PyTorch 1.7); batch 64; inputs /255; 10 epochs "
          "on all 60,000 training images, tested on the 10,000 test images. How much the choice of "
          "epochs matters is measured: test accuracy after 1, 2, 5 and 10 epochs of the same runs. "
          "The native runs of its model (without BatchNorm) go on, seed after seed, until the paired "
          "95% CI of the torch − keras test accuracy is within ±0.1 pp (at most 30 seeds): the "
          "precision its 0.29 pp question needs.",
          (Setting("seed000-cnn", "seed000-cnn", _ADAM_64_UNIT, (
              _pub("PyTorch test accuracy", 0.988, "test_acc", "torch"),
              _pub("TensorFlow test accuracy", 0.9909, "test_acc", "keras"),
          ), bn_pair=True, precision=("no-bn", 0.1, 30),
              differences="The report states neither epochs, optimizer, batch size nor preprocessing (ours: Adam 1e-3, batch 64, "
                          "/255, 10 epochs; the sensitivity rows give 1, 2 and 5 epochs); it ran torch 1.7.0 and "
                          "TensorFlow 2.3.1 (ours 2.13.0 and 2.21.0); it names no activation for the 1024-wide "
                          "layer (ReLU here); one run per number."),),
          sensitivity_epochs=(1, 2, 5, 10),
          figures=(("loss_bn.png", "Report 000's figure: training loss per epoch, with and without BatchNorm",
                    "training loss (mean over the epoch)", "train_loss",
                    tuple((f"{fw}", tuple(("seed000-cnn", v, m, b) for v in ("no-bn", "bn")
                                          for m in ("native", "harmonized")))
                          for fw, b in (("PyTorch", "torch"), ("TensorFlow (Keras)", "keras")))),)),
    Study("001", "Keras and PyTorch lab: vary one thing at a time",
          "Stated: batch 128, 5 epochs, 60,000 training images, tested on the test set; for each Keras "
          "model it printed the training accuracy and loss of every epoch. Keras side: the optimizer is "
          "not in the text. Its model is the Keras mnist_cnn example's structure with BatchNorm added; "
          "that example compiles with Adadelta(), whose default learning rate is 1e-3 in tf.keras and "
          "Keras 3 (rho 0.95, epsilon 1e-7), but five epochs of Adadelta at 1e-3 stay near chance "
          "(keras-relu-adadelta). The keras-relu-epoch1-* rows train one epoch of the relu model with "
          "each candidate at Keras' default learning rate, natively: only plain SGD (lr 0.01, no "
          "momentum, what compile(optimizer='sgd') gives) learns as slowly as the report's first epoch, "
          "so every Keras setting uses it; inputs /255 as in that example. PyTorch side: the 2019 "
          "pytorch/examples Net and its main.py protocol: SGD lr 0.01, momentum 0.5, inputs normalised "
          "with 0.1307/0.3081.",
          (Setting("keras-relu", "keras-bn-cnn", _KERAS_001,
                   _keras_001_published("relu", *_RELU_001)
                   + _keras_001_published("two conv blocks (the relu model again)", (0.9745, 0.0852),
                                          (0.5652, 1.363), (0.9239, 0.2656)),
                   # PyTorch natively ~1 point above Keras natively: the ablation names the default
                   runs=(*_RUNS, *_ABLATE), differences=_D001_KERAS),
           *(Setting(f"keras-{act}", "keras-bn-cnn", _KERAS_001, _keras_001_published(act, *numbers),
                     axes=(("activation", act),), differences=_D001_KERAS)
             for act, numbers in (("sigmoid", ((0.9674, 0.1096), (0.6097, 1.213), (0.9133, 0.2901))),
                                  ("tanh", ((0.9687, 0.1239), (0.5644, 1.394), (0.9165, 0.2897))))),
           Setting("keras-one-conv", "keras-bn-cnn-1conv", _KERAS_001,
                   _keras_001_published("one conv block", (0.9773, 0.0719), (0.6888, 0.9833), (0.944, 0.2054)),
                   differences=_D001_KERAS),
           *(Setting(f"keras-relu-epoch1-{name}", "keras-bn-cnn", {**_KERAS_001, **optimizer, "epochs": 1},
                     _keras_001_published("relu", None, _RELU_001[1], None), runs=(("native", ("keras",)),),
                     seeds=1, differences="One epoch of the relu model: the optimizer's fingerprint.")
             for name, optimizer in _OPTIMIZERS_001),
           Setting("keras-relu-adadelta", "keras-bn-cnn", {**_KERAS_001, **dict(_OPTIMIZERS_001)["adadelta"]},
                   _keras_001_published("relu", *_RELU_001), runs=(("harmonized", BACKENDS),),
                   differences="The Keras example's Adadelta() at its tf.keras default lr 1e-3, not the report's "
                               "optimizer (keras-relu-epoch1-*)."),
           Setting("torch-net-50", "pytorch-examples-net", _TORCH_001, (
               _pub("test accuracy, 50 hidden (first run)", 0.9660, "test_acc", "torch"),
               _pub("test loss, 50 hidden (first run)", 0.1065, "test_loss", "torch"),
               _pub("test accuracy, max pooling (second run of the same Net)", 0.9658, "test_acc", "torch"),
               _pub("test loss, max pooling (second run of the same Net)", 0.1073, "test_loss", "torch")),
               differences=_D001_TORCH),
           Setting("torch-net-25", "pytorch-examples-net-25", _TORCH_001, (
               _pub("test accuracy, 25 hidden", 0.9624, "test_acc", "torch"),
               _pub("test loss, 25 hidden", 0.1313, "test_loss", "torch")), differences=_D001_TORCH),
           Setting("torch-net-avgpool", "pytorch-examples-net-avgpool", _TORCH_001, (
               _pub("test accuracy, average pooling", 0.9359, "test_acc", "torch"),
               _pub("test loss, average pooling", 0.2147, "test_loss", "torch")),
               # natively 2.3 points apart (harmonized not): the ablation names the default
               runs=(*_RUNS, *_ABLATE_NO_BN), differences=_D001_TORCH))),
    Study("002", "PyTorch CNN with a 2-feature bottleneck",
          "Stated: Adam lr 1e-3, batch 64, 50,000 training / 10,000 validation / 10,000 test images, "
          "10 and 20 epochs. One 20-epoch run per seed gives both: with a constant learning rate and "
          "deterministic training, its first 10 epochs are the 10-epoch run. Inputs /255 (not stated; "
          "torchvision's ToTensor). Times are this machine's, not the report's.",
          (Setting("bottleneck-2", "bottleneck-cnn", _CONFIG_002, _PUBLISHED_002,
                   differences="Its architecture is not in the text (the zoo's is reconstructed from its error "
                               "message and, for the ReLU on the 2 features, from its accuracy: "
                               "bottleneck-2-linear); its times are its own machine's, which it does not "
                               "name; one run per number."),
           Setting("bottleneck-2-linear", "bottleneck-cnn:relu=0", _CONFIG_002, _PUBLISHED_002,
                   runs=(("native", ("torch",)),), seeds=2,
                   differences="A linear 2-wide layer (no ReLU on the 2 features): the reconstruction the "
                               "report's accuracy rules out; its times are its own machine's.")),
          figures=tuple((f"{metric}.png", f"Report 002's figure: {words}", words, metric,
                         (("bottleneck-cnn, 2 features", tuple(("bottleneck-2", "as-is", m, b)
                                                               for m in ("native", "harmonized") for b in BACKENDS)),))
                        for metric, words in (("time_s", "training time per epoch, s"),
                                              ("total_time_s", "total training time, s"),
                                              ("val_gain_pp", "epoch-to-epoch gain in validation accuracy, points")))),
    Study("003", "PyTorch: simple FC, simple CNN, complex CNN, MLP, learning rates",
          "Stated: SGD with momentum 0.9, batch 50, inputs normalised with 0.1307/0.3081, all 60,000 "
          "training images, tested on the test set; epochs and learning rates per model as below. "
          "'Final loss' is the last training batch's loss the report printed; ours is the mean "
          "training loss of the last logged 10 steps. The MLP's epochs are not stated: 5, as for "
          "the other models of the report.",
          (Setting("simple-fc", "simple-fc", {**_SGD_003, "lr": 1e-3, "epochs": 5}, (
              _pub("test accuracy, 5 epochs", 0.9210, "test_acc", "torch"),
              _pub("final training loss", 0.368408, "train_loss_last", "torch")), differences=_D003),
           Setting("simple-cnn", "simple-cnn", {**_SGD_003, "lr": 1e-3, "epochs": 5}, (
               _pub("test accuracy, 5 epochs", 0.9828, "test_acc", "torch"),
               _pub("final training loss", 0.065379, "train_loss_last", "torch")),
               differences=_D003 + " Its text (line 222) puts a ReLU after each max pooling, its assignment "
                                   "(line 463, used here) one after the second only."),
           *(Setting(f"mlp-lr{lr:g}", "mlp", {**_SGD_003, "lr": lr, "epochs": 5}, (
               _pub(f"test accuracy, lr {lr:g}", acc, "test_acc", "torch"),),
               # where the native frameworks differ (an MLP: no BatchNorm items), the ablation names the cause
               runs=_RUNS if lr == 0.01 else (*_RUNS, *_ABLATE_NO_BN),
               differences="Its dropout stays on when it tests (F.dropout(x, p=0.2) without "
                           "training=self.training, lines 316-322; ours is off in inference); its epochs are "
                           "not stated (5 here); one run per number.")
             for lr, acc in ((0.01, 0.9786), (1e-3, 0.9597), (1e-4, 0.8953))),
           # the learning-rate figures' other curves (no published number)
           *(Setting(f"{arch}-lr{lr:g}", arch, {**_SGD_003, "lr": lr, "epochs": 5},
                     runs=(("native", ("torch",)),))  # the figure draws PyTorch natively only
             for arch, lr in (("simple-fc", 0.01), ("simple-fc", 1e-4), ("simple-cnn", 0.1), ("simple-cnn", 0.01))),
           Setting("simple-cnn-continued", "simple-cnn",
                   {**_SGD_003, "lr": 1e-3, "epochs": 15, "schedule": "multistep", "milestones": (5, 10)}, (
               _pub("test accuracy after 5 epochs at lr 1e-3", 0.9770, "test_acc", "torch", 5),
               _pub("test accuracy after 5 more at lr 1e-4", 0.9853, "test_acc", "torch", 10),
               _pub("test accuracy after 5 more at lr 1e-5", 0.9854, "test_acc", "torch", 15)),
               differences="It does not say whether the optimizer (its momentum buffer) was kept across the "
                           "three stages (one run with a multistep schedule here); one run per number."),
           Setting("complex-cnn", "complex-cnn",
                   {**_SGD_003, "lr": 0.01, "epochs": 4, "schedule": "multistep", "milestones": (2,)}, (
               _pub("test accuracy, 2 epochs at lr 0.01", 0.9902, "test_acc", "torch", 2),
               _pub("test accuracy, 2 more at lr 0.001", 0.9932, "test_acc", "torch", 4)),
               differences="As for the continued simple CNN: a multistep schedule in one run here; one run "
                           "per number.")),
          figures=(("lr_loss.png", "Report 003's figure: training loss per learning rate (PyTorch, native)",
                    "training loss (mean of 10 steps), by step", "steps",
                    (("simple FC", tuple((n, "as-is", "native", "torch") for n in ("simple-fc-lr0.01", "simple-fc",
                                                                                  "simple-fc-lr0.0001"))),
                     ("MLP", tuple((f"mlp-lr{lr:g}", "as-is", "native", "torch") for lr in (0.01, 1e-3, 1e-4))),
                     ("simple CNN", tuple((n, "as-is", "native", "torch") for n in ("simple-cnn-lr0.1",
                                                                                   "simple-cnn-lr0.01"))))),)),
    Study("004", "Keras notebook: 3-, 5-, 7-layer CNNs",
          "Stated: Adam with Keras' defaults, batch 128, 12 epochs, inputs /255, the test set as "
          "validation. Runs: the report's own framework (Keras) natively and both frameworks "
          "harmonized, 2 seeds each, with BatchNorm on the channel axis (the zoo models); and the "
          "models as published, BatchNormalization(axis=1) normalising the height (mnistcnn's "
          "HeightBatchNorm; PyTorch needs the channel and height axes swapped around a "
          "BatchNorm2d(H) to express it), in Keras natively, 2 seeds: the accuracy cost of the "
          "mistake. keras5-cnn and keras7-cnn are the costly runs (the cost table below).",
          tuple(setting for arch, acc in (("keras3-cnn", 0.9860), ("keras5-cnn", 0.9932), ("keras7-cnn", 0.9911))
                for setting in (
                    Setting(arch, arch, _KERAS_004, (_pub("test accuracy, 12 epochs", acc, "test_acc", "keras"),),
                            runs=_RUNS_004, seeds=2,
                            differences="The report trained BatchNormalization(axis=1), the height (the -axis1 "
                                        "rows train it so; these, on the channel axis); Keras 2.x then; one run "
                                        "per number."),
                    # as published: BatchNormalization(axis=1), the height axis (Keras, natively)
                    Setting(f"{arch}-axis1", arch, _KERAS_004,
                            (_pub("test accuracy, 12 epochs, BatchNorm on axis 1 as published", acc,
                                  "test_acc", "keras"), *_epochs_004(_EPOCHS_004[arch])),
                            runs=(("native", ("keras",)),), seeds=2, axes=(("batchnorm_axis", "height"),),
                            against=arch,
                            differences="Keras 2.x then (3.15 here); one run per number; and 2 seeds here: a 95% "
                                        "prediction interval from 2 runs has one degree of freedom, narrow "
                                        "wherever the two happen to agree."))),
          figures=tuple((f"{metric}.png", f"Report 004's figure: {words} per epoch (the test set validates)",
                         words, metric,
                         tuple((arch, ((arch, "as-is", "native", "keras"), (arch, "as-is", "harmonized", "keras"),
                                       (arch, "as-is", "harmonized", "torch")))
                               for arch in ("keras3-cnn", "keras5-cnn", "keras7-cnn")))
                        for metric, words in (("train_loss", "training loss"), ("test_loss", "validation loss")))),
]}

#: smoke size: every setting's protocol on 64 images for at most 2 epochs
SMOKE = dict(train_limit=64, test_limit=100)
SMOKE_EPOCHS = 2


def _value(r, metric: str, epoch: int | None):
    """The quantity ``metric`` of run ``r`` at the end of 1-based ``epoch`` (None: the end)."""
    last = epoch is None or epoch >= len(r.epochs)
    e = r.epochs[-1 if last else epoch - 1]
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
    out = {}
    for (mode, v, backend, _), r in runs.items():  # seeds in order
        if v == variant:
            out.setdefault((mode, backend), []).append(
                None if r is None else _value(r, published.metric, published.epoch))
    return out


def _row(study: Study, setting: Setting, p: Published | None, values: dict, what: str) -> dict:
    row = {"report": study.report, "setting": setting.name, "what": what, "differences": setting.differences,
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
    if report not in STUDIES:
        raise ConfigError(f"Unknown report {report!r}. Valid: {', '.join(STUDIES)}, or all.")
    if seeds is not None and (not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f"Invalid value for `seeds`. Expected an integer >= 1 (or none: the study's "
                          f"own). Received seeds={seeds!r}.")
    study, base = with_backends(STUDIES[report], backends), Path(out) / report
    names = [s.name for s in study.settings]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ConfigError(f"Report {report} has no setting {', '.join(unknown)}. Its settings: "
                          f"{', '.join(names)}.")
    started, rows, spent, read = time.perf_counter(), [], [], {}
    n_seeds = n_seeds_of(study, smoke, seeds)
    chosen = [s for s in study.settings if train and (only is None or s.name in only)]
    # every setting's first group (native) before any setting's second: a study stopped
    # half-way has the runs its published numbers are read against in all its settings
    for group in range(max((len(s.runs) for s in chosen), default=0)):
        for setting in chosen:
            if group < len(setting.runs):
                mode, backends = setting.runs[group]
                compare.compare(setting.spec(), base / setting.name / mode, seeds=n_seeds[setting.name],
                        cfg=_config(setting, smoke), backends=backends, bn=setting.bn_pair, modes=(mode,),
                        workers=workers, isolate=not smoke, data_dir=data_dir, progress=progress,
                        command=command, plots=not smoke)
    for setting in chosen:
        if setting.precision and not smoke and seeds is None:
            variant, target_pp, most = setting.precision
            mode, backends = setting.runs[0]
            compare.compare(setting.spec(), base / setting.name / mode, seeds=setting.seeds, cfg=_config(setting, smoke),
                    backends=backends, bn=setting.bn_pair, modes=(mode,), workers=workers, data_dir=data_dir,
                    progress=progress, command=command, ci_target_pp=target_pp, max_seeds=most,
                    variants=(variant,))
    for setting in study.settings:
        setting = replace(setting, seeds=n_seeds[setting.name])
        variants = ("no-bn", "bn") if setting.bn_pair else ("as-is",)
        runs = read[setting.name] = _runs(base / setting.name, setting, _config(setting, smoke))
        spent.append(_spent(setting.name, runs))
        for variant in variants:
            label = "" if variant == "as-is" else f" [{variant}]"
            for p in setting.published:
                values = _group_values(runs, p, variant)
                rows.append(_row(study, setting, p, values, p.what + label))
            for k in study.sensitivity_epochs:
                probe = Published(f"test accuracy after {k} epochs", 0.0, "test_acc", "torch", k)
                values = _group_values(runs, probe, variant)
                rows.append(_row(study, setting, None, values, f"(not published) {probe.what}{label}"))
    figures = [study_figure(base, f, read) for f in study.figures]
    costs = [_cost(study, setting, n_seeds, read) for setting in study.settings
             if setting.against]
    summary = {"report": report, "title": study.title, "protocol": study.protocol, "smoke": smoke,
               "complete": all(r.get(k) is not None and r[k]["n"] >= n_seeds[r["setting"]]
                               for r in rows for k in _cells(study, r["setting"])),
               "command": command, "date": datetime.date.today().isoformat(),
               "wall_time_s": time.perf_counter() - started,
               "run_time_s": sum(sum(d["seconds"]) for x in spent for d in x["backends"].values()),
               "settings": [asdict(s) for s in study.settings], "rows": rows,
               "figures": [f for f in figures if f], "costs": costs, "failed": _failed(base),
               "spent": spent}
    atomic_write_text(base / "reproduce.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(base / "reproduce.md", documents.study_markdown(summary))
    return summary


def _spent(name: str, runs: dict) -> dict:
    """What the setting's runs cost here: per backend, runs planned and the training seconds
    of each finished one, and the machines they ran on."""
    backends, machines = {}, set()
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

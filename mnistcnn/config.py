"""Settings of a run, and what each defaults mode means.

Under 'harmonized' every backend gets the same initial weights (drawn once with numpy),
the spec's BatchNorm settings, PyTorch's optimizer formulas and values, and PyTorch's
BatchNorm arithmetic. Under 'native' each framework keeps its own. Every such choice is
made here, once: ``TrainConfig.optimizer_for``, ``bn_rules`` and ``trained_spec``.
"""
from __future__ import annotations

import math
import numbers
import re
import typing
from dataclasses import dataclass, fields, replace

import numpy as np

from . import spec as S
from .errors import ConfigError, SpecError
from .spec import variants

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adadelta")
#: float32, or bfloat16 mixed precision (bfloat16 compute, float32 weights and loss): an
#: opt-in for CPUs with bfloat16 units (docs/performance.md has its speed and accuracy)
PRECISIONS = ("float32", "bfloat16")
#: The defaults a mode controls. harmonized: PyTorch's convention (or the spec's value)
#: in every backend; native: each framework's own.
#:   init        numpy initial weights from the seed vs each framework's initializers
#:   batchnorm   the spec's momentum/epsilon vs each framework's preset
#:   optimizer   PyTorch's update formulas and epsilon/rho vs each framework's
#:   bn_variance BatchNorm by PyTorch's rules (unbiased running variance, mean subtracted
#:               before scaling) vs Keras' (biased; x*inv + (beta - mean*inv))
DEFAULT_ITEMS = ("init", "batchnorm", "optimizer", "bn_variance")
SCHEDULES = ("constant", "step", "multistep")
DEFAULTS_MODES = ("harmonized", "native")

#: Harmonized optimizer values the config leaves implicit: PyTorch's (the harmonized
#: convention), in every backend. tests/test_config.py checks them against the torch
#: backend's NATIVE_OPTIMIZER_DEFAULTS, which tests/test_backends.py reads from torch.
HARMONIZED_OPTIMIZER_DEFAULTS = {"adam": {"eps": 1e-8}, "rmsprop": {"rho": 0.99, "eps": 1e-8},
                                 "adadelta": {"rho": 0.9, "eps": 1e-6}, "sgd": {}}

#: The BatchNorm of compare's BN variant (BatchNorm after each hidden conv and dense
#: layer): Keras' defaults, momentum 0.99 and epsilon 1e-3 (what a plain
#: BatchNormalization() in report 000's TensorFlow model has). Harmonized runs train it in
#: every backend (the ledger's harmonized column: "the spec's value in every backend"); native runs
#: replace it by each framework's own (TrainConfig.trained_spec).
BN_VARIANT = S.BatchNorm.preset("keras")


#: What each TrainConfig field means, with its unit: the command line's help text (a test
#: checks that every field has one)
HELP = {
    "epochs": "passes over the training images (default 5)",
    "batch_size": "images per training step (default 128)",
    "optimizer": "the update rule (default adam)",
    "lr": "learning rate, the step size of the first epoch (default 0.001)",
    "momentum": "SGD and RMSprop momentum, 0 to 1 (default 0)",
    "nesterov": "Nesterov momentum (SGD)",
    "beta1": "Adam's first-moment decay, 0 to 1 exclusive (default 0.9)",
    "beta2": "Adam's second-moment decay, 0 to 1 exclusive (default 0.999)",
    "eps": "the optimizer's epsilon (default: the defaults mode's; harmonized: PyTorch's, e.g. 1e-8 for Adam)",
    "rho": "RMSprop's alpha / Adadelta's rho, 0 to 1 (default: the defaults mode's)",
    "weight_decay": "L2 weight decay per step, PyTorch's coupled form (default 0)",
    "schedule": "learning-rate schedule: constant, step (x gamma every --step-size epochs) or multistep "
                "(x gamma at --milestones) (default constant)",
    "step_size": "schedule step: epochs between learning-rate drops (default 1)",
    "gamma": "factor of each learning-rate drop (default 0.1)",
    "milestones": "schedule multistep: the 0-based epochs at which the learning rate is multiplied by gamma",
    "seed": "seed of the initial weights, batch order and dropout (default 0; compare and sweep use "
            "SEED, SEED+1, ...)",
    "val_size": "the last N training images validate instead of training, 0 for none (default 10000: 50k/10k)",
    "train_limit": "train on the first N training images only (default: all)",
    "test_limit": "test on the first N test images only (default: all 10000)",
    "test_every_epoch": "also measure test loss and accuracy after every epoch",
    "normalization": "input scaling: standard (mean 0.1307, sd 0.3081 for MNIST) or unit (/255) (default standard)",
    "defaults": "harmonized (the same weights, rules and optimizer formulas in every backend) or native "
                "(each framework's own defaults) (default harmonized)",
    "harmonize": "with --defaults native: the default items kept harmonized (to find which default matters)",
    "log_every": "record the running training loss every N steps (default 10)",
    "init": "initial weights under harmonized (default glorot_uniform)",
    "dataset": "the images: mnist or fashion-mnist (default mnist)",
    "threads": "CPU threads of each framework (default: the framework's own choice; compare/sweep: cores "
               "divided by --workers)",
    "precision": "float32, or bfloat16 mixed precision on CPUs with bfloat16 units (default float32)",
    "device": "where to train: auto (a GPU when the framework sees one, else the CPU), cpu, cuda, cuda:N, or "
              "mps (PyTorch on Apple) (default auto)",
}

#: the spellings of TrainConfig.device
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?|mps"

#: the allowed values of TrainConfig's text fields (the command line's choices)
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "defaults": DEFAULTS_MODES,
           "normalization": ("standard", "unit"), "init": ("glorot_uniform", "torch_default"),
           "dataset": ("mnist", "fashion-mnist"), "precision": PRECISIONS, "harmonize": DEFAULT_ITEMS,
           "name": OPTIMIZERS, "formulas": ("torch", "native")}  # the last two: Optimizer's

#: the training images of both datasets, of which the last val_size validate
TRAIN_IMAGES = 60_000
#: the largest seed: numpy, Python's random and every framework take seeds below 2**32
MAX_SEED = 2**32 - 1
#: the most threads a run may ask for: beyond any machine's cores, short of what makes a
#: framework's thread pool fail (100000 crashed PyTorch)
MAX_THREADS = 1024

#: The range of each number and the form of each text (their types come from the
#: annotations, the choices from CHOICES), in the words of the error: Expected ...
RANGES = {
    "epochs": (lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "lr": (lambda v: v > 0, "a positive number"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta1": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "eps": (lambda v: v > 0, "None (the mode's default) or a positive number"),
    "rho": (lambda v: 0 <= v < 1, "None (the mode's default) or a number in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "step_size": (lambda v: v >= 1, "an integer >= 1"),
    "gamma": (lambda v: v > 0, "a positive number (the factor of each drop)"),
    "milestones": (lambda v: all(m >= 1 for m in v) and list(v) == sorted(set(v)),
                   "increasing epochs >= 1, e.g. (5, 10)"),
    "seed": (lambda v: 0 <= v <= MAX_SEED, f"an integer from 0 to {MAX_SEED} (2**32 - 1)"),
    "val_size": (lambda v: 0 <= v < TRAIN_IMAGES, f"an integer from 0 to {TRAIN_IMAGES - 1} (of the "
                                                   f"{TRAIN_IMAGES} training images)"),
    "train_limit": (lambda v: v >= 1, "None (all training images) or an integer >= 1"),
    "test_limit": (lambda v: v >= 1, "None (all test images) or an integer >= 1"),
    "log_every": (lambda v: v >= 1, "an integer >= 1"),
    "threads": (lambda v: 1 <= v <= MAX_THREADS, f"None (the framework's choice) or an integer from 1 to "
                                                  f"{MAX_THREADS}"),
    "device": (lambda v: re.fullmatch(DEVICE_PATTERN, v) is not None,
               "auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"),
}

#: Which settings apply to which configuration: a setting -> (the setting that decides,
#: the values under which it applies). A setting given where it does not apply is an
#: error, never ignored (TrainConfig.check_applies; init applies where init is harmonized)
APPLIES = {
    "momentum": ("optimizer", ("sgd", "rmsprop")),
    "nesterov": ("optimizer", ("sgd",)),
    "beta1": ("optimizer", ("adam",)),
    "beta2": ("optimizer", ("adam",)),
    "eps": ("optimizer", ("adam", "rmsprop", "adadelta")),
    "rho": ("optimizer", ("rmsprop", "adadelta")),
    "step_size": ("schedule", ("step",)),
    "gamma": ("schedule", ("step", "multistep")),
    "milestones": ("schedule", ("multistep",)),
    "harmonize": ("defaults", ("native",)),
}


def _typed(value, kind):
    """``value`` as ``kind`` (int, float, bool, str; a tuple of int or str), or None where
    it is not one: 3 and numpy integers are ints, ints are floats, True is neither."""
    if isinstance(kind, tuple):  # (item kind,)
        if not isinstance(value, (tuple, list)):
            return None
        items = [_typed(v, kind[0]) for v in value]
        return None if any(i is None for i in items) else tuple(items)
    if kind is bool:
        return bool(value) if isinstance(value, (bool, np.bool_)) else None
    if isinstance(value, (bool, np.bool_)):
        return None
    if kind is int:
        return int(value) if isinstance(value, numbers.Integral) else None
    if kind is float:
        return float(value) if isinstance(value, numbers.Real) and math.isfinite(value) else None
    return value if isinstance(value, kind) else None


def _validate(obj) -> None:
    """Check every field of a settings dataclass for its type (from its annotation), its
    range (RANGES) and its choices (CHOICES); store each as its plain Python type (a numpy
    integer as an int, a list as a tuple). One error names the first field that fails."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, kind = getattr(obj, f.name), hints[f.name]
        optional = type(None) in typing.get_args(kind)
        kind = next((t for t in typing.get_args(kind) if t is not type(None)), kind)  # X | None -> X
        if kind is tuple:
            kind = (str if f.name in CHOICES else int,)
        typed = _typed(value, kind)
        check, expected = RANGES.get(f.name, (lambda v: True, None))
        if f.name in CHOICES:
            choices = CHOICES[f.name]
            check, expected = ((lambda v, c=choices: set(v) <= set(c), f"a tuple of items of {list(choices)}")
                               if isinstance(kind, tuple) else (lambda v, c=choices: v in c, f"one of {list(choices)}"))
        if expected is None:
            expected = {int: "an integer", float: "a finite number", bool: "True or False", str: "a text"}[kind]
        if isinstance(value, float) and not math.isfinite(value):  # inf/NaN would train to NaN
            expected = "a finite number"
        if value is None and optional:
            continue
        if typed is None or not check(typed):
            raise ConfigError(f"Invalid value for `{f.name}`. Expected {expected}. Received {f.name}={value!r}.")
        object.__setattr__(obj, f.name, typed)


@dataclass(frozen=True)
class Optimizer:
    """A fully resolved optimizer: every value explicit, and whose update formulas."""

    name: str
    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float | None = None
    rho: float | None = None
    weight_decay: float = 0.0
    #: 'torch': PyTorch's formulas (epsilon placement, momentum form, coupled weight
    #: decay), the harmonized convention; 'native': the training framework's own
    formulas: str = "torch"

    def __post_init__(self):
        _validate(self)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run. eps/rho left as None take the defaults mode's value:
    harmonized -> PyTorch's value in every backend; native -> each framework's own."""

    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0  # SGD and RMSprop
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float | None = None
    rho: float | None = None  # RMSprop's alpha / Adadelta's rho
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | step (every step_size epochs) | multistep
    step_size: int = 1
    gamma: float = 0.1
    milestones: tuple = ()  # multistep: epochs (0-based) at which lr *= gamma
    seed: int = 0
    val_size: int = 10_000  # the last val_size training images validate (50k/10k)
    train_limit: int | None = None  # use only the first N training images (short runs)
    test_limit: int | None = None  # test on the first N test images only (smoke runs)
    #: also test after every epoch (EpochRecord.test_loss/test_acc): the test-set
    #: "validation" of reports that validate on it, and accuracy after k epochs of one run
    test_every_epoch: bool = False
    normalization: str = "standard"  # standard (0.1307/0.3081) | unit (/255)
    defaults: str = "harmonized"
    harmonize: tuple = ()  # under defaults='native': items of DEFAULT_ITEMS kept harmonized
    log_every: int = 10  # record the running training loss every this many steps
    init: str = "glorot_uniform"  # harmonized init; native uses each framework's own
    dataset: str = "mnist"
    threads: int | None = None  # None: leave the frameworks' own choice (recorded)
    precision: str = "float32"  # one of PRECISIONS
    #: auto | cpu | cuda | cuda:N | mps; each backend resolves it (resolve_device) and the
    #: run records the device it trained on
    device: str = "auto"

    def __post_init__(self):
        _validate(self)
        self.check_applies(f.name for f in fields(self) if getattr(self, f.name) != f.default)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("`nesterov=True` needs a momentum: give `momentum` > 0, e.g. `momentum=0.9` "
                              "(Nesterov momentum without momentum is plain SGD).")
        if self.schedule == "multistep" and not self.milestones:
            raise ConfigError("`schedule='multistep'` needs the epochs at which the learning rate drops: give "
                              "`milestones`, e.g. `milestones=(5, 10)`.")

    def check_applies(self, names) -> None:
        """Refuse a setting that this configuration would ignore: each of ``names`` must
        apply to its optimizer, schedule and defaults mode (APPLIES). Construction checks
        the settings that differ from their defaults; the command line also passes the
        flags given, so that a flag given at its default value is refused too."""
        for name in names:
            if name == "init" and not self.harmonized("init"):
                raise ConfigError(f"`init={self.init!r}` does not apply under `defaults='native'`, where each "
                                  "framework draws its own initial weights. Leave it out, or keep the initial "
                                  "weights harmonized with `harmonize=('init',)`.")
            on, values = APPLIES.get(name, (None, ()))
            if on and getattr(self, on) not in values:
                raise ConfigError(
                    f"`{name}={getattr(self, name)!r}` does not apply to `{on}={getattr(self, on)!r}`: it applies "
                    f"to {' and '.join(f'`{on}={v!r}`' for v in values)} only. Leave it out, or choose one of those.")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of a 0-based epoch: e.g. lr=0.01, schedule='multistep',
        milestones=(2,) gives 2 epochs at 0.01 then 0.001."""
        if self.schedule == "step":
            return self.lr * self.gamma ** (epoch // self.step_size)
        if self.schedule == "multistep":
            return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)
        return self.lr

    def harmonized(self, item: str) -> bool:
        """Whether one of DEFAULT_ITEMS is harmonized in this configuration."""
        return self.defaults == "harmonized" or item in self.harmonize

    def optimizer_for(self, backend: str) -> Optimizer:
        """The fully resolved optimizer of one backend under this defaults mode:
        harmonized, PyTorch's values and formulas; native, the backend's own (read from
        the backend module, which imports its framework)."""
        if self.harmonized("optimizer"):
            implicit, formulas = HARMONIZED_OPTIMIZER_DEFAULTS[self.optimizer], "torch"
        else:
            from .backends import get_backend

            implicit, formulas = get_backend(backend).NATIVE_OPTIMIZER_DEFAULTS[self.optimizer], "native"
        return Optimizer(
            self.optimizer, self.lr, self.momentum, self.nesterov, self.beta1, self.beta2,
            eps=self.eps if self.eps is not None else implicit.get("eps"),
            rho=self.rho if self.rho is not None else implicit.get("rho"),
            weight_decay=self.weight_decay, formulas=formulas)

    def bn_rules(self) -> str:
        """BatchNorm arithmetic: PyTorch's in every backend when harmonized."""
        return "torch" if self.harmonized("bn_variance") else "native"

    def trained_spec(self, spec, backend: str) -> S.ModelSpec:
        """The spec a backend actually trains under this config: without a softmax head
        (the loss is cross-entropy on logits in every backend, computed stably), and
        with the backend's own BatchNorm momentum/epsilon where batchnorm is native."""
        from .data import check_fits

        check_fits(spec, self.dataset)
        trained = variants.logits_head(spec)
        if not self.harmonized("batchnorm"):
            from .backends import get_backend

            trained = variants.with_batchnorm_settings(trained, get_backend(backend).NATIVE_BATCHNORM)
        if len(trained.output_shape) != 1:
            raise SpecError(f"Spec '{spec.name}' must end in a flat vector of class scores to be "
                            f"trained; it ends in {trained.output_shape}. Add Flatten() and Dense(10).")
        return trained


def mode_config(cfg: TrainConfig, mode: str) -> TrainConfig:
    """'harmonized', 'native', or 'native+<item>' (native with one item harmonized)."""
    if mode == "harmonized":
        return replace(cfg, defaults="harmonized", harmonize=())
    item = mode.removeprefix("native").removeprefix("+")
    if mode != "native" and (not mode.startswith("native+") or item not in DEFAULT_ITEMS):
        raise ConfigError(f"Unknown mode {mode!r}. Valid: harmonized, native, "
                          + ", ".join(f"native+{i}" for i in DEFAULT_ITEMS))
    # native: each framework's own initial weights, so the config's init (which does not apply) is dropped
    return replace(cfg, defaults="native", harmonize=(item,) if item else (),
                   init=cfg.init if item == "init" else TrainConfig.init)



"""Settings of a run, and what each defaults mode means.

Under 'harmonized' both backends get the same initial weights (drawn once with numpy),
the spec's BatchNorm settings, PyTorch's optimizer formulas and values, and PyTorch's
BatchNorm arithmetic. Under 'native' each framework keeps its own. Every such choice is
made here, once: ``TrainConfig.optimizer_for``, ``bn_rules`` and ``trained_spec``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from . import spec as S
from . import weights as W
from .errors import ConfigError, SpecError
from .spec import variants

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adadelta")
#: float32, or bfloat16 mixed precision (bfloat16 compute, float32 weights and loss): an
#: opt-in for CPUs with bfloat16 units (docs/performance.md has its speed and accuracy)
PRECISIONS = ("float32", "bfloat16")
#: The defaults a mode controls. harmonized: PyTorch's convention (or the spec's value)
#: in both backends; native: each framework's own.
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
#: both backends (the ledger's harmonized column: "the spec's value in both"); native runs
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
    "defaults": "harmonized (the same weights, rules and optimizer formulas in both frameworks) or native "
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
           "dataset": ("mnist", "fashion-mnist"), "precision": PRECISIONS, "harmonize": DEFAULT_ITEMS}


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


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run. eps/rho left as None take the defaults mode's value:
    harmonized -> PyTorch's value in both backends; native -> each framework's own."""

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
        object.__setattr__(self, "milestones", tuple(self.milestones))
        object.__setattr__(self, "harmonize", tuple(self.harmonize))
        floats = ("lr", "momentum", "beta1", "beta2", "eps", "rho", "weight_decay", "gamma")
        for name in floats:  # inf/NaN would train to NaN and still report an accuracy
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise ConfigError(f"Invalid value for `{name}`. Expected a finite number. Received {name}={v!r}.")
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {list(OPTIMIZERS)}"),
            ("lr", self.lr > 0, "a positive number"),
            ("momentum", 0 <= self.momentum < 1, "a number in [0, 1)"),
            ("schedule", self.schedule in SCHEDULES, f"one of {list(SCHEDULES)}"),
            ("step_size", self.step_size >= 1, "an integer >= 1"),
            ("defaults", self.defaults in DEFAULTS_MODES, f"one of {list(DEFAULTS_MODES)}"),
            ("init", self.init in W.INITS, f"one of {list(W.INITS)}"),
            ("normalization", self.normalization in ("standard", "unit"), "'standard' or 'unit'"),
            ("val_size", self.val_size >= 0, "an integer >= 0"),
            ("train_limit", self.train_limit is None or self.train_limit >= 1,
             "None (all training images) or an integer >= 1"),
            ("test_limit", self.test_limit is None or self.test_limit >= 1,
             "None (all test images) or an integer >= 1"),
            ("beta1", 0 <= self.beta1 < 1, "a number in [0, 1)"),
            ("beta2", 0 <= self.beta2 < 1, "a number in [0, 1)"),
            ("eps", self.eps is None or self.eps > 0, "None (the mode's default) or a positive number"),
            ("rho", self.rho is None or 0 <= self.rho < 1, "None (the mode's default) or a number in [0, 1)"),
            ("threads", self.threads is None or self.threads >= 1, "None or an integer >= 1"),
            ("weight_decay", self.weight_decay >= 0, "a number >= 0"),
            ("harmonize", set(self.harmonize) <= set(DEFAULT_ITEMS), f"items of {list(DEFAULT_ITEMS)}"),
            ("log_every", self.log_every >= 1, "an integer >= 1"),
            ("precision", self.precision in PRECISIONS, f"one of {list(PRECISIONS)}"),
            ("device", isinstance(self.device, str) and re.fullmatch(DEVICE_PATTERN, self.device) is not None,
             "auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"Invalid value for `{name}`. Expected {expected}. "
                    f"Received {name}={getattr(self, name)!r}."
                )

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
    if mode == "native":
        return replace(cfg, defaults="native", harmonize=())
    item = mode.removeprefix("native+")
    if item not in DEFAULT_ITEMS:
        raise ConfigError(f"Unknown mode {mode!r}. Valid: harmonized, native, "
                          + ", ".join(f"native+{i}" for i in DEFAULT_ITEMS))
    return replace(cfg, defaults="native", harmonize=(item,))



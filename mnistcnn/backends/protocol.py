"""What a backend is: every method, constant and Trainer method the rest of mnistcnn
calls, as the base class ``Backend`` that each backend subclasses (a type checker checks
them; tests/test_backends.py checks names and signatures), and ``Kind``, a backend's entry
for one layer kind. Nothing here imports a framework.

Conventions shared by every backend:
- spec layout: maps (N, C, H, W), flat vectors (N, F) in (C, H, W) flatten order; a
  backend converts its own layout at its edges (inputs of ``predict``/``layer_outputs``,
  their outputs, and weights through the neutral form of mnistcnn.weights);
- ``bn_rules``: 'native' (the framework's own BatchNorm arithmetic) or 'torch'
  (PyTorch's: unbiased running variance, mean subtracted before scaling), for which
  PyTorch's native rules already are the rules;
- a backend module imports its framework at the top and changes no process-wide state
  at import: ``start_run`` does that, once, called by the code that starts a run.
- weights: each kind declares the layout of each of its weights (spec.WEIGHT_LAYOUTS);
  a backend translates each layout to and from its own once.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ..errors import ConfigError

BN_RULES = ("native", "torch")


@dataclass(frozen=True)
class Kind:
    """How one backend implements one layer kind (``Backend.KINDS``, one entry per kind)."""

    #: (layer, spec row) -> the native layer(s) of the row
    build: Callable
    #: what ``build`` makes, as the framework names it: its classes (for PyTorch also the
    #: names of functions and tensor methods a traced forward may call instead); the
    #: importers read these as this kind, and list them as supported
    native: tuple
    #: (native layer or traced call, input shape in the spec's layout) -> the spec
    #: layers it is, raising Unsupported for an argument the spec cannot represent; None:
    #: the kind is not imported from this framework (its ``native`` then reads as another
    #: kind, whose reader says why it refuses)
    read: Callable | None


class Unsupported(ValueError):
    """What a reader (Kind.read) cannot represent exactly; the importers add the layer
    and what is supported (``supported``, where the reader knows better than the list of
    native classes)."""

    def __init__(self, what: str, supported=None):
        super().__init__(what)
        self.supported = supported


def need(arg: str, ok: bool, value) -> None:
    """Unsupported naming ``arg`` unless ``ok``."""
    if not ok:
        raise Unsupported(f"{arg}={value!r}")


class Trainer(Protocol):
    """One run's model, optimizer and data on the framework's side; the protocol itself
    (sampler, schedule, metrics, checkpoints) is mnistcnn.train's."""

    model: Any

    def __init__(self, spec, optimizer, seed: int, weights: dict | None = None,
                 bn_rules: str = "torch", precision: str = "float32", device: str = "cpu"):
        """Build ``spec`` with ``weights`` (neutral form; None: the framework's own
        initialisation), and ``optimizer`` (a config.Optimizer, fully resolved), on
        ``device`` (as resolve_device returns it)."""

    def set_data(self, x, y) -> None:
        """Keep the training images (N, C, H, W) float32 and labels (N,) on the framework's side."""

    def train_epoch(self, order, batch_size: int, lr: float, rng_seed: int,
                    on_batch: Callable | None = None) -> tuple[float, float]:
        """One pass over the batches of ``order`` (indices into the data); dropout masks
        seeded from ``rng_seed``; ``on_batch(n, loss)`` after each step. Returns the
        mean training-mode loss (weighted by batch size) and the training accuracy."""

    def evaluate(self, x, y, batch_size: int = 1000) -> tuple[float, float, Any]:
        """(mean cross-entropy on logits, accuracy, predicted labels) in inference mode."""

    def get_weights(self) -> dict:
        """The current weights in the neutral form."""

    def save(self, directory) -> dict:
        """Write the native checkpoint (model and optimizer state) atomically into
        ``directory``; returns {role: file name}."""

    def restore(self, directory) -> None:
        """Load what ``save`` wrote."""


class Backend(ABC):
    """What every backend is: torch (PyTorch), keras (Keras on TensorFlow) and jax (Keras
    on JAX) subclass it (the two Keras ones through backends._keras3.KerasBackend), and
    each backend module holds its one instance as ``BACKEND`` (what get_backend returns)."""

    #: one entry per layer kind: {layer class: Kind}; covers spec.LAYER_KINDS
    KINDS: ClassVar[dict]
    #: the framework's own optimizer defaults the spec/config do not fix:
    #: {optimizer name: {"eps": ..., "rho": ...}}, read from the installed version by the tests
    NATIVE_OPTIMIZER_DEFAULTS: ClassVar[dict]
    #: the framework's own BatchNorm momentum/epsilon, as a spec BatchNorm
    NATIVE_BATCHNORM: ClassVar[Any]
    Trainer: ClassVar[type]

    @abstractmethod
    def build(self, spec, *, bn_rules: str = "native", dtype: str = "float32"):
        """A native model of ``spec`` with the framework's own initialisation;
        ``dtype`` 'float32' or 'float64'."""

    @abstractmethod
    def param_counts(self, model, spec) -> list[tuple[int, int]]:
        """(trainable, non-trainable state) as the framework counts them, per spec layer."""

    @abstractmethod
    def layer_output_shapes(self, model, spec) -> list[tuple]:
        """Output shape of every spec layer, in the spec's layout, batch excluded."""

    @abstractmethod
    def layer_outputs(self, model, spec, x) -> list:
        """Inference-mode output of every spec layer for (N, C, H, W) input, spec layout."""

    @abstractmethod
    def predict(self, model, spec, x, batch_size: int = 1000):
        """Inference-mode model output for (N, C, H, W) input, spec layout."""

    @abstractmethod
    def gradients(self, model, spec, x, y) -> tuple[float, dict]:
        """Training-mode cross-entropy (on logits) of one batch and every trainable
        weight's gradient, in the neutral form."""

    @abstractmethod
    def get_weights(self, model, spec) -> dict:
        """Every weight (trainable and state) in the neutral form."""

    @abstractmethod
    def set_weights(self, model, spec, weights: dict) -> None:
        """Load neutral weights (checked against the spec) into ``model``."""

    @abstractmethod
    def layer_weights(self, layer) -> list:
        """The arrays of one native layer, in the framework's own order and layout (what
        ``neutral_from_native`` takes): how the importers read a user's layer."""

    @abstractmethod
    def neutral_from_native(self, spec, per_layer: dict) -> dict:
        """{row name: its arrays as ``layer_weights`` lists them} to the neutral form; each
        array follows its layout (the kind's ``weight_layouts``). A row missing from
        ``per_layer`` is skipped, and a row may list only its first arrays (the trainable
        ones: gradients)."""

    def resolve_device(self, device: str) -> tuple[str, str]:
        """(this framework's device, its name in words) for a TrainConfig.device value
        ('auto': a GPU when the framework sees one, else 'cpu'); ConfigError naming what
        the framework sees when the device asked for is not there."""
        from .. import runtime

        gpus, mps = self._gpus(), self._mps()
        if device == "auto":
            device = "cuda" if gpus else "mps" if mps is True else "cpu"
        kind, _, index = device.partition(":")
        if kind == "mps":
            if not isinstance(mps, bool):
                raise ConfigError(mps)
            return "mps", "Apple MPS"
        if kind == "cuda":
            i = int(index or 0)
            if i >= len(gpus):
                raise ConfigError(f"--device {device}: {self._sees(len(gpus))}. Use --device cpu, or auto to take "
                                  "a GPU when there is one.")
            return gpus[i]
        return "cpu", runtime.cpu_name()

    @abstractmethod
    def _gpus(self) -> list[tuple[str, str]]:
        """(device, name in words) of each GPU the framework sees, in its order."""

    @abstractmethod
    def _sees(self, count: int) -> str:
        """What the framework sees, in words, when a GPU asked for is not there."""

    @abstractmethod
    def _mps(self) -> bool | str:
        """True where the framework sees Apple's MPS device, else why --device mps is refused."""

    @abstractmethod
    def start_run(self, threads: int | None) -> None:
        """Process-wide settings for a reproducible run: deterministic algorithms, thread
        pools (None: the framework's own choice), log level. Called once per process by
        the code that starts training (train.run), never at import."""

    @abstractmethod
    def environment(self) -> dict:
        """Versions, threads and flags of the framework as this process runs it; the
        key 'threads' is the intra-op thread count."""


#: The methods every backend has, with these signatures.
FUNCTIONS = tuple(n for n, v in vars(Backend).items() if callable(v) and not n.startswith("_"))
#: The class-level constants and classes.
CONSTANTS = ("KINDS", "NATIVE_OPTIMIZER_DEFAULTS", "NATIVE_BATCHNORM", "Trainer")
TRAINER_METHODS = tuple(n for n, v in vars(Trainer).items()
                        if callable(v) and (not n.startswith("_") or n == "__init__"))

"""What a backend is: every function, constant and Trainer method the rest of mnistcnn
calls. tests/test_backends.py checks each backend module against these (names and
signatures); nothing here imports a framework.

Conventions shared by every backend:
- spec layout: maps (N, C, H, W), flat vectors (N, F) in (C, H, W) flatten order; a
  backend converts its own layout at its edges (inputs of ``predict``/``layer_outputs``,
  their outputs, and weights through the neutral form of mnistcnn.weights);
- ``bn_rules``: 'native' (the framework's own BatchNorm arithmetic) or 'torch'
  (PyTorch's: unbiased running variance, mean subtracted before scaling), for which
  PyTorch's native rules already are the rules;
- a backend module imports its framework at the top and changes no process-wide state
  at import: ``start_run`` does that, once, called by the code that starts a run.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Protocol

BN_RULES = ("native", "torch")


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


class Backend(Protocol):
    """A backend module (mnistcnn.backends.torch, mnistcnn.backends.keras)."""

    #: one builder per layer kind: {layer class: builder}; covers spec.LAYER_KINDS
    BUILDERS: ClassVar[dict]
    #: the framework's own optimizer defaults the spec/config do not fix:
    #: {optimizer name: {"eps": ..., "rho": ...}}, read from the installed version by the tests
    NATIVE_OPTIMIZER_DEFAULTS: ClassVar[dict]
    #: the framework's own BatchNorm momentum/epsilon, as a spec BatchNorm
    NATIVE_BATCHNORM: ClassVar[Any]
    Trainer: ClassVar[type]

    def build(self, spec, *, bn_rules: str = "native", dtype: str = "float32"):
        """A native model of ``spec`` with the framework's own initialisation;
        ``dtype`` 'float32' or 'float64'."""

    def param_counts(self, model, spec) -> list[tuple[int, int]]:
        """(trainable, non-trainable state) as the framework counts them, per spec layer."""

    def layer_output_shapes(self, model, spec) -> list[tuple]:
        """Output shape of every spec layer, in the spec's layout, batch excluded."""

    def layer_outputs(self, model, spec, x) -> list:
        """Inference-mode output of every spec layer for (N, C, H, W) input, spec layout."""

    def predict(self, model, spec, x, batch_size: int = 1000):
        """Inference-mode model output for (N, C, H, W) input, spec layout."""

    def gradients(self, model, spec, x, y) -> tuple[float, dict]:
        """Training-mode cross-entropy (on logits) of one batch and every trainable
        weight's gradient, in the neutral form."""

    def get_weights(self, model, spec) -> dict:
        """Every weight (trainable and state) in the neutral form."""

    def set_weights(self, model, spec, weights: dict) -> None:
        """Load neutral weights (checked against the spec) into ``model``."""

    def resolve_device(self, device: str) -> tuple[str, str]:
        """(this framework's device, its name in words) for a TrainConfig.device value
        ('auto': a GPU when the framework sees one, else 'cpu'); ConfigError naming what
        the framework sees when the device asked for is not there."""

    def start_run(self, threads: int | None) -> None:
        """Process-wide settings for a reproducible run: deterministic algorithms, thread
        pools (None: the framework's own choice), log level. Called once per process by
        the code that starts training (train.run), never at import."""

    def environment(self) -> dict:
        """Versions, threads and flags of the framework as this process runs it; the
        key 'threads' is the intra-op thread count."""


#: The module-level functions a backend defines (the Protocol's methods).
FUNCTIONS = tuple(n for n, v in vars(Backend).items() if callable(v) and not n.startswith("_"))
#: The module-level constants and classes.
CONSTANTS = ("BUILDERS", "NATIVE_OPTIMIZER_DEFAULTS", "NATIVE_BATCHNORM", "Trainer")
TRAINER_METHODS = tuple(n for n, v in vars(Trainer).items()
                        if callable(v) and (not n.startswith("_") or n == "__init__"))

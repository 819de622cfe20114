"""mnistcnn: one architecture spec, compiled by PyTorch and Keras, compared honestly.

``import mnistcnn`` loads no framework: a backend is imported when ``build`` asks for it.
"""
from __future__ import annotations

from . import zoo
from .errors import (
    BackendUnavailableError,
    ConfigError,
    DataError,
    MnistCnnError,
    SpecError,
    TrainingDiverged,
)
from .spec import LAYER_KINDS, ModelSpec
from .spec.layers import *  # noqa: F403 (every layer kind, listed in __all__ from LAYER_KINDS)

__version__ = "0.1.0"

#: submodules reachable as attributes (``mnistcnn.train.run(...)``), imported on first use
#: so that ``import mnistcnn`` stays light; ``mnistcnn.compare`` is also callable: the
#: comparison, ``mnistcnn.compare(spec, out, ...)`` (mnistcnn/compare.py)
_LAZY = ("callbacks", "compare", "config", "data", "importers", "parity", "reproduce", "results", "train",
         "transfer", "weights")
#: functions reachable as attributes, from the submodule that holds them
_LAZY_FUNCTIONS = {"from_keras": "importers", "from_torch": "importers", "from_torchscript": "importers",
                   "sweep": "compare", "load_comparison": "results", "load_sweep": "results", "load_run": "results"}


def __getattr__(name):
    import importlib

    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(f".{_LAZY_FUNCTIONS[name]}", __name__), name)
    raise AttributeError(f"module 'mnistcnn' has no attribute {name!r}")


def build(spec, backend: str = "torch"):
    """Compile a spec (a ModelSpec or a zoo name) into a native model of ``backend``:
    a torch.nn.Module taking (N, C, H, W) ('torch'), or a keras.Model taking (N, H, W, C):
    Keras on TensorFlow ('keras') or on JAX ('jax'; one Keras framework per process)."""
    from .backends import get_backend

    return get_backend(backend).build(zoo.resolve(spec))


__all__ = [  # noqa: F405 (compare, from_keras, ..., sweep are lazy: __getattr__)
    "BackendUnavailableError", "ConfigError", "DataError", "MnistCnnError", "ModelSpec", "SpecError",
    "TrainingDiverged", "build", "compare", "from_keras", "from_torch", "from_torchscript", "load_comparison",
    "load_run", "load_sweep", "sweep", "zoo",
    *LAYER_KINDS,
]

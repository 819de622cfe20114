"""Backends: one module per framework, imported only when asked for.

Every backend module implements mnistcnn.backends.protocol.Backend (checked by
tests/test_backends.py). This package itself imports no framework.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

from ..errors import BackendUnavailableError


@dataclass(frozen=True)
class BackendInfo:
    module: str
    packages: tuple  # what it imports
    extra: str  # the pip extra that installs them
    #: environment variables the framework reads when it is imported; get_backend sets
    #: those the user has not set, just before it imports the framework
    environ: dict = field(default_factory=dict)


#: backend name -> what is needed to load it
BACKENDS = {
    "torch": BackendInfo("mnistcnn.backends.torch", ("torch",), "torch"),
    # TensorFlow's C++ start-up notices (oneDNN, CPU features) are not the user's concern
    "keras": BackendInfo("mnistcnn.backends.keras", ("keras", "tensorflow"), "keras",
                         {"TF_CPP_MIN_LOG_LEVEL": "2"}),
}


def get_backend(name: str):
    """The backend module of ``name`` (imports its framework the first time)."""
    if name not in BACKENDS:
        raise BackendUnavailableError(
            f"Unknown backend {name!r}. Valid backends: {', '.join(BACKENDS)}."
        )
    info = BACKENDS[name]
    for key, value in info.environ.items():
        os.environ.setdefault(key, value)
    try:
        return importlib.import_module(info.module)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in info.packages:
            packages = info.packages
            raise BackendUnavailableError(
                f"Backend {name!r} needs the {' and '.join(repr(p) for p in packages)} "
                f"package{'s' if len(packages) > 1 else ''} (missing: {e.name!r}). "
                f"Install with: pip install 'mnistcnn[{info.extra}]'"
            ) from e
        raise

"""Backends: one module per framework, imported only when asked for.

Every backend module implements mnistcnn.backends.protocol.Backend (checked by
tests/test_backends.py). This package itself imports no framework.
"""
from __future__ import annotations

import importlib
import os
import sys
import tempfile
from contextlib import contextmanager
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
    #: start-up lines the framework's native code writes to stderr that say nothing to a
    #: user (on a machine without a GPU: "failed call to cuInit"); dropped while importing
    noise: tuple = ()
    #: a function (module.attr) that finishes the framework's native start-up, so that its
    #: notices come while they are filtered, not in the middle of the first epoch
    startup: str | None = None


#: backend name -> what is needed to load it
BACKENDS = {
    "torch": BackendInfo("mnistcnn.backends.torch", ("torch",), "torch"),
    # TensorFlow's C++ start-up notices (oneDNN, CPU features, CUDA probing) are not the
    # user's concern; TF_CPP_MIN_LOG_LEVEL cannot silence those written before absl's
    # logging starts, so they are filtered out of the process's stderr during start-up
    "keras": BackendInfo("mnistcnn.backends.keras", ("keras", "tensorflow"), "keras",
                         {"TF_CPP_MIN_LOG_LEVEL": "2"},
                         noise=("cudart_stub.cc", "cuda_platform.cc", "cuda_executor.cc", "cuda_dnn.cc",
                                "cuda_fft.cc", "cuda_blas.cc", "failed call to cuInit",
                                "All log messages before absl::InitializeLog() is called",
                                "computation_placer.cc", "TF-TRT Warning", "oneDNN custom operations",
                                "cpu_feature_guard.cc", "rebuild TensorFlow with the appropriate compiler flags",
                                "To enable the following instructions"),
                         startup="tensorflow.config.list_physical_devices"),
}


@contextmanager
def _without_native_noise(noise: tuple):
    """Capture what native code writes to file descriptor 2 (Python's sys.stderr cannot
    see it) and give back every line but the known start-up noise."""
    if not noise:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not any(n in line for n in noise)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def get_backend(name: str):
    """The backend module of ``name`` (imports its framework the first time)."""
    if name not in BACKENDS:
        raise BackendUnavailableError(
            f"Unknown backend {name!r}. Valid backends: {', '.join(BACKENDS)}."
        )
    info = BACKENDS[name]
    for key, value in info.environ.items():
        os.environ.setdefault(key, value)
    if info.module in sys.modules:
        return sys.modules[info.module]
    try:
        with _without_native_noise(info.noise):
            module = importlib.import_module(info.module)
            if info.startup:
                where, _, attr = info.startup.rpartition(".")
                getattr(importlib.import_module(where), attr)()
        return module
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in info.packages:
            packages = info.packages
            raise BackendUnavailableError(
                f"Backend {name!r} needs the {' and '.join(repr(p) for p in packages)} "
                f"package{'s' if len(packages) > 1 else ''} (missing: {e.name!r}). "
                f"Install with: pip install 'mnistcnn[{info.extra}]'"
            ) from e
        raise

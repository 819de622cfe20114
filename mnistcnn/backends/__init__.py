"""Backends: one module per framework, imported only when asked for.

Each backend module holds ``BACKEND``, an instance of a subclass of
mnistcnn.backends.protocol.Backend (checked by tests/test_backends.py); ``get_backend``
returns it. This package itself imports no framework.
"""
from __future__ import annotations

import importlib
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import BackendUnavailableError
from .protocol import Backend


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
    #: the framework Keras runs on, for a Keras backend (one per process: KERAS_BACKEND)
    keras_backend: str | None = None


# TensorFlow's C++ start-up notices (oneDNN, CPU features, CUDA probing) are not the
# user's concern; TF_CPP_MIN_LOG_LEVEL cannot silence those written before absl's
# logging starts, so they are filtered out of the process's stderr during start-up
_TF_NOISE = ("cudart_stub.cc", "cuda_platform.cc", "cuda_executor.cc", "cuda_dnn.cc", "cuda_fft.cc",
             "cuda_blas.cc", "failed call to cuInit", "All log messages before absl::InitializeLog() is called",
             "computation_placer.cc", "TF-TRT Warning", "oneDNN custom operations", "cpu_feature_guard.cc",
             "rebuild TensorFlow with the appropriate compiler flags", "To enable the following instructions")

#: the reports' two frameworks: what every comparison runs unless told otherwise
PAIR = ("torch", "keras")

#: backend name -> what is needed to load it
BACKENDS = {
    "torch": BackendInfo("mnistcnn.backends.torch", ("torch",), "torch"),
    "keras": BackendInfo("mnistcnn.backends.keras", ("keras", "tensorflow"), "keras",
                         {"TF_CPP_MIN_LOG_LEVEL": "2"}, noise=_TF_NOISE,
                         startup="tensorflow.config.list_physical_devices", keras_backend="tensorflow"),
    # Keras loads TensorFlow where it is installed (to seed it), with its notices
    "jax": BackendInfo("mnistcnn.backends.jax", ("keras", "jax"), "jax", {"TF_CPP_MIN_LOG_LEVEL": "2"},
                       noise=_TF_NOISE, startup="mnistcnn.backends.jax.startup", keras_backend="jax"),
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


def get_backend(name: str) -> Backend:
    """The backend ``name`` (imports its framework the first time)."""
    if name not in BACKENDS:
        raise BackendUnavailableError(
            f"Unknown backend {name!r}. Valid backends: {', '.join(BACKENDS)}."
        )
    info = BACKENDS[name]
    for key, value in info.environ.items():
        os.environ.setdefault(key, value)
    if info.keras_backend and "keras" not in sys.modules:  # the backend's name decides, not the user's keras.json
        os.environ["KERAS_BACKEND"] = info.keras_backend
    if info.module in sys.modules:
        return sys.modules[info.module].BACKEND
    try:
        with _without_native_noise(info.noise):
            module = importlib.import_module(info.module)
            if info.startup:
                where, _, attr = info.startup.rpartition(".")
                getattr(importlib.import_module(where), attr)()
        return module.BACKEND
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in info.packages:
            packages = info.packages
            raise BackendUnavailableError(
                f"Backend {name!r} needs the {' and '.join(repr(p) for p in packages)} "
                f"package{'s' if len(packages) > 1 else ''} (missing: {e.name!r}). "
                f"Install with: pip install 'mnistcnn[{info.extra}]'"
            ) from e
        raise


def runs_here(name: str) -> bool:
    """Whether backend ``name`` can run in this process without taking Keras from
    another backend: one process holds one Keras backend, chosen when Keras is first
    imported, and a process whose Keras is not yet loaded keeps it for TensorFlow (or
    for $KERAS_BACKEND) rather than give it to a backend asked for on the side."""
    wanted = BACKENDS[name].keras_backend if name in BACKENDS else None
    if wanted is None:
        return True
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend() == wanted
    return os.environ.get("KERAS_BACKEND", "tensorflow") == wanted


class _Child:
    """A Python process of its own for one backend, serving calls over two pipes (the
    child's stdout and stderr stay the user's). Unlike multiprocessing's spawn, it does
    not re-run the caller's main script, so a user's script needs no __main__ guard."""

    def __init__(self, name: str):
        import pickle
        import subprocess

        self.name = name
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from mnistcnn.backends import _serve; _serve({req_r}, {res_w})"],
            pass_fds=(req_r, res_w), stdin=subprocess.DEVNULL)
        os.close(req_r)
        os.close(res_w)
        self.requests, self.replies = os.fdopen(req_w, "wb"), os.fdopen(res_r, "rb")
        pickle.dump(list(sys.path), self.requests)  # the caller's modules importable there too
        self.call(_load, name)

    def call(self, fn, *args, **kwargs):
        import pickle

        try:
            pickle.dump((fn, args, kwargs), self.requests)
            self.requests.flush()
            ok, value = pickle.load(self.replies)
        except (EOFError, BrokenPipeError):
            code = self.proc.wait()
            raise BackendUnavailableError(
                f"The process running the {self.name!r} backend ended (exit status {code}) during "
                f"{getattr(fn, '__name__', fn)}(); its output above says why.") from None
        if ok:
            return value
        raise value

    def close(self) -> None:
        self.requests.close()  # the child reads the end of its requests and exits
        self.proc.wait()
        self.replies.close()


def _load(name: str) -> None:
    get_backend(name)


def _serve(requests_fd: int, replies_fd: int) -> None:
    """The child's loop: the caller's sys.path, then (function, args, kwargs) after
    (function, args, kwargs), each answered with (True, result) or (False, exception)."""
    import pickle

    with os.fdopen(requests_fd, "rb") as requests, os.fdopen(replies_fd, "wb") as replies:
        sys.path[:] = pickle.load(requests)
        while True:
            try:
                fn, args, kwargs = pickle.load(requests)
            except EOFError:
                return
            try:
                reply = (True, fn(*args, **kwargs))
            except BaseException as e:  # the caller raises it
                reply = (False, e)
            try:
                data = pickle.dumps(reply)
            except Exception as e:  # an exception or result pickle cannot carry
                data = pickle.dumps((False, RuntimeError(f"{reply[1]!r} (not picklable: {e})")))
            replies.write(data)
            replies.flush()


_CHILDREN: dict = {}


def call(name: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` where backend ``name`` can load: in this process, or in a
    child process of its own when this one's Keras belongs to another backend (mnistcnn
    compares Keras on TensorFlow and on JAX that way). ``fn`` must be importable by name
    (a module-level function) and its arguments and result picklable (numpy arrays,
    dicts, specs); the child lives until this process ends, for the next call (a child
    that died, e.g. killed for memory, is replaced by a new one at the next call)."""
    if runs_here(name):
        get_backend(name)  # loaded as get_backend loads it: environment set, notices filtered
        return fn(*args, **kwargs)
    if name not in _CHILDREN or _CHILDREN[name].proc.poll() is not None:  # none yet, or it died: a new one
        import atexit

        _CHILDREN[name] = child = _Child(name)
        atexit.register(child.close)
    return _CHILDREN[name].call(fn, *args, **kwargs)

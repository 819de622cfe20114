"""The process a run trains in: the C allocator and the environment record (each backend
adds its threads and flags).

Allocator: with glibc's defaults, every buffer above the dynamic mmap threshold is a
fresh mmap that the kernel faults in page by page and returns on free. A training step
of seed000-cnn at batch 128 allocates about 44 MB of such activation and gradient
buffers, so each PyTorch step paid thousands of page faults (tests/test_runtime.py counts
them with getrusage) and trained measurably slower (docs/performance.md, the allocator
rows). The Keras loop barely faults either way.
``tune_allocator`` keeps those buffers in the heap for reuse: the process keeps up to
1 GiB of freed memory instead of returning it at once (peak memory barely moves).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from pathlib import Path

#: glibc's mallopt parameters (malloc.h) and the values set
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30
_tuned: str | None = None


def tune_allocator() -> str:
    """Make glibc's malloc reuse large buffers (see the module docstring). Applies to the
    whole process, once; returns what was done, for the environment record."""
    global _tuned
    if _tuned is None:
        _tuned = "unchanged (not glibc)"
        name = ctypes.util.find_library("c")
        if platform.system() == "Linux" and name and platform.libc_ver()[0] == "glibc":
            libc = ctypes.CDLL(name)
            if libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD):
                _tuned = (f"glibc mallopt: mmap_threshold {MMAP_THRESHOLD >> 20} MiB, "
                          f"trim_threshold {TRIM_THRESHOLD >> 20} MiB")
            else:
                _tuned = "unchanged (mallopt refused)"
    return _tuned


def _cpuinfo(field: str) -> str | None:
    """The first /proc/cpuinfo line of ``field``, after its colon; None where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor()


def git_commit() -> str | None:
    """The commit of the mnistcnn checkout that runs (with '+dirty' for uncommitted
    changes), or None outside a git checkout."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "."],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty else "")


def cpu_flags() -> set:
    """The CPU's feature flags (/proc/cpuinfo), empty where they cannot be read."""
    return set((_cpuinfo("flags") or "").split())


#: the vector extensions named with the CPU: under one model name ("AMD EPYC") report 000's
#: runs met machines with avx2 only and with avx512 and bf16, 3-5x apart in speed
VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def vector_extensions() -> list:
    flags = cpu_flags()
    return [f for f in VECTOR_EXTENSIONS if f in flags]


def load_average() -> float | None:
    """The machine's 1-minute load average (runnable threads, all processes), where the
    system reports one: beside a timing, it says whether the run had the cores to itself."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def environment(backend) -> dict:
    """Provenance (mnistcnn version, git commit, date), versions, threads, flags and CPU:
    what a timing or a number depends on. ``backend`` is a backend module (its own part:
    ``backend.environment()``)."""
    from datetime import datetime, timezone

    import numpy as np

    from . import __version__

    return {"mnistcnn": __version__, "git_commit": git_commit(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "machine": platform.machine(),
            "cpu": cpu_name(), "cpu_extensions": vector_extensions(), "cpu_count": os.cpu_count(),
            "numpy": np.__version__,
            "allocator": _tuned or "glibc defaults (not tuned)", **backend.environment()}

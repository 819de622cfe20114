"""Atomic file writes (a temporary file in the same directory, then os.replace) and a lock
per output directory."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # a full disk, a file size limit: named by the file asked for, not the temporary one
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(path)) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


LOCK_NAME = ".mnistcnn.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _holder(path: Path) -> int | None:
    """The PID in a lock file; None for an empty or garbage file (after a moment's grace
    for a lock being written this instant)."""
    import time

    for wait in (0, 0.2):
        time.sleep(wait)
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return None


@contextmanager
def dir_lock(directory):
    """Hold ``directory/.mnistcnn.lock`` (the holder's PID) while writing into ``directory``:
    a second writer (a rerun racing a leftover process) is refused with the holder's PID;
    a lock whose process is gone (killed, machine restarted) is stale and taken over. A
    process that already holds the lock may enter it again (nested calls). The
    directories it creates are removed again if they are still empty when it is released
    (a command refused before it wrote anything leaves nothing behind)."""
    from .errors import ConfigError

    path = Path(directory) / LOCK_NAME
    created = [d for d in (path.parent, *path.parent.parents) if not d.exists()]  # deepest first
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".write-check.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"Cannot write the output directory {directory}: "
                          f"{e.strerror or e}{' (' + e.filename + ')' if e.filename else ''}. "
                          "Choose another `out`.") from None
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
        except FileExistsError:
            pid = _holder(path)
            if pid == os.getpid():
                yield path
                return
            if path.is_dir() or path.is_symlink() and not path.exists():
                raise ConfigError(f"{path} is in the way of mnistcnn's lock file (a directory or a broken link). "
                                  "Delete it if no mnistcnn process writes there, and run again.") from None
            if pid is not None and _alive(pid):
                raise ConfigError(
                    f"{directory} is being written by another mnistcnn process (PID {pid}). Wait for it "
                    f"to finish or stop it (kill {pid}); if no such process of yours runs, delete "
                    f"{path}.") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)
            for d in created:
                try:
                    d.rmdir()  # only an empty directory goes
                except OSError:
                    break
        return
    raise ConfigError(f"Cannot take the lock {path}: it keeps reappearing. Delete it if no mnistcnn "
                      "process writes there.")

"""Execute many training runs, each in a process of mnistcnn's own (two frameworks in
one process compete for the cores and cannot be timed fairly), finished runs skipped,
interrupted ones resumed, a failing run recorded with its error while the rest go on.

The local executor keeps one process per worker slot and gives it the slot's next run
when that run has the same backend and thread count (a worker that dies fails only its
run; the next starts a fresh process); ``executor="fresh"`` starts a process per run.

``python -m mnistcnn.runner job.json`` runs one job file (a fresh process, a Ray task);
``python -m mnistcnn.runner --serve`` runs job files named on stdin, one per line.
"""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import spec as S
from ._io import atomic_write_text
from .backends import call, runs_here
from .config import TrainConfig
from .results import RunError, RunResult


@dataclass(frozen=True)
class JobKey:
    """How a caller finds a run again: compare's (mode, variant, backend, seed); a sweep
    names its cell as the variant."""

    mode: str
    variant: str
    backend: str
    seed: int

    def __str__(self) -> str:
        return f"{self.mode}/{self.variant}/{self.backend}/seed{self.seed}"


@dataclass
class Job:
    key: JobKey
    spec: S.ModelSpec
    backend: str
    config: TrainConfig
    out: Path


def finished(out: Path, job: Job | None = None) -> RunResult | None:
    """The finished run in ``out``, else None. With ``job``: a finished run of other
    settings than the job's (a protocol or a model changed since) is an error naming what
    differs, never a result of this job (the thread count alone may differ)."""
    path = Path(out) / "result.json"
    if path.exists():
        result = RunResult.read(path)
        if result.completed:
            if job is not None:
                from . import zoo
                from .train import differences

                spec = S.to_dict(job.config.trained_spec(zoo.resolve(job.spec), job.backend))
                config = json.loads(json.dumps(asdict(job.config)))
                diff = differences(result, job.backend, spec, config, ignore=("threads",))
                if diff:
                    from .errors import ConfigError

                    raise ConfigError(f"{out} holds a finished run with other settings than this one's: {diff}. "
                                      "Delete that directory to train it again (its results go), or choose "
                                      "another `out`.")
            return result
    return None


def _run_here(job: Job, data_dir, progress=False, tune_allocator: bool = False, callbacks=()) -> RunResult:
    from . import train

    # an interrupted run continues from its checkpoint; one whose checkpoint is gone (result
    # files are committed, checkpoints are not) starts again
    out = Path(job.out)
    resume = (out / "result.json").exists() and (out / "checkpoint" / "weights.npz").exists()
    return train.run(job.spec, job.backend, job.config, out, data_dir, progress=progress,
                     resume=resume, overwrite=not resume, tune_allocator=tune_allocator, callbacks=callbacks)


#: how a child marks the line it writes to stderr after each epoch (the parent shows it)
EPOCH_MARK = "mnistcnn-epoch: "


def _epoch_lines():
    """The child's callback: one marked stderr line per finished epoch."""
    from .callbacks import Callback

    class EpochLines(Callback):
        def on_epoch_end(self, record, result) -> None:
            val = f", val acc {record.val_acc:.4f}" if record.val_acc is not None else ""
            print(f"{EPOCH_MARK}epoch {record.epoch}/{result.config['epochs']}: loss {record.train_loss:.4f}{val}, "
                  f"{record.time_s:.1f} s", file=sys.stderr, flush=True)

    return EpochLines()


ERROR_FILE = "error.txt"


def _die_with_parent() -> None:
    """In the child, before it runs: on Linux, receive SIGTERM when the parent dies (even
    by SIGKILL), so that no orphaned run keeps writing into the output directory."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


#: the child processes running now (stopped when the parent is interrupted)
_LIVE: set = set()


def _stop_children() -> None:
    """SIGTERM to every running child (each releases its lock and keeps its last finished
    epoch), then wait for them: an interrupted compare leaves no run behind."""
    for proc in list(_LIVE):
        proc.terminate()
    for proc in list(_LIVE):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _job_file(job: Job, data_dir) -> Path:
    out = Path(job.out)
    atomic_write_text(out / "job.json", json.dumps({
        "key": asdict(job.key), "spec": S.to_dict(job.spec), "backend": job.backend, "config": asdict(job.config),
        "out": str(out), "data_dir": str(data_dir) if data_dir else None}))
    return out / "job.json"


def _outcome(job: Job, ok: bool, returncode, stderr: str) -> RunResult | RunError:
    """What a child's run gave. The child writes the cause of a failure to error.txt
    itself; the parent reads that file, so it never has to tell an error from a
    framework's log noise on stderr."""
    out = Path(job.out)
    if ok:
        return RunResult.from_json((out / "result.json").read_text())
    if (out / ERROR_FILE).exists():
        return RunError((out / ERROR_FILE).read_text().strip())
    # killed, or died in native code: all there is, is the end of stderr
    tail = "\n".join(stderr.strip().splitlines()[-5:])
    return RunError(f"the run's process ended with exit status {returncode}: {tail}")


def _run_process(job: Job, data_dir) -> RunResult | RunError:
    """The job in a fresh child process (``python -m mnistcnn.runner job.json``)."""
    proc = subprocess.Popen([sys.executable, "-m", "mnistcnn.runner", str(_job_file(job, data_dir))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_die_with_parent)
    _LIVE.add(proc)
    try:
        _, stderr = proc.communicate()
    finally:
        _LIVE.discard(proc)
    return _outcome(job, proc.returncode == 0, proc.returncode, stderr)


class _Worker:
    """A worker slot's process (``python -m mnistcnn.runner --serve``), kept for the
    slot's consecutive runs of one backend and thread count: it saves each run the
    framework's import and start (seconds) while each run still sets its seeds, threads
    and determinism, and a crash ends only the run it happened in."""

    #: processes started so far (the tests count them)
    started = 0

    def __init__(self, backend: str, threads, say=None):
        self.key, self.say = (backend, threads), say
        self.job: Job | None = None
        self.proc = subprocess.Popen([sys.executable, "-m", "mnistcnn.runner", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, preexec_fn=_die_with_parent)
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr  # the three pipes asked for
        self.jobs_in, self.answers, self.log = self.proc.stdin, self.proc.stdout, self.proc.stderr
        _Worker.started += 1
        _LIVE.add(self.proc)
        # a framework's log lines must never fill the pipe: keep the last ones, for a crash report
        self.stderr: collections.deque[str] = collections.deque(maxlen=50)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        """The child's stderr: its epoch lines shown as progress, the rest kept."""
        for line in self.log:
            if not line.startswith(EPOCH_MARK):
                self.stderr.append(line)
            elif self.say and self.job is not None:
                self.say(f"run {self.job.key} {line[len(EPOCH_MARK):].rstrip()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, job: Job, data_dir) -> RunResult | RunError:
        self.job = job
        try:
            self.jobs_in.write(f"{_job_file(job, data_dir)}\n")
            self.jobs_in.flush()
            answer = self.answers.readline().strip()
        except BrokenPipeError:
            answer = ""
        if not answer:  # the process died during the run
            self.close()
        return _outcome(job, answer == "ok", self.proc.returncode, "".join(self.stderr))

    def close(self) -> None:
        try:
            self.jobs_in.close()  # the end of the job list: the process exits
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _LIVE.discard(self.proc)
        self.reader.join(timeout=10)
        self.answers.close()
        self.log.close()


def _serve() -> int:
    """Run the job files named on stdin, one per line, answering ``ok`` or ``error`` per
    job on stdout (anything the frameworks print goes to stderr); end with stdin."""
    import gc

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for line in sys.stdin:
        try:
            _main_one(line.strip())
            answers.write("ok\n")
        except Exception:
            answers.write("error\n")
        if "keras" in sys.modules:  # the last run's graphs and layer names go with it
            sys.modules["keras"].backend.clear_session()
        gc.collect()
    return 0


def _error(job: Job, e: Exception) -> RunError:
    error = RunError(f"{type(e).__name__}: {e}")
    atomic_write_text(Path(job.out) / ERROR_FILE, error.message + "\n")
    return error


def _resolve_device(backend: str, device: str) -> tuple:
    from .backends import get_backend

    return get_backend(backend).resolve_device(device)


def _check_before_running(todo: list[Job], data_dir, say=None) -> None:
    """What would make every run fail, checked once, before any training: the data (one
    clear error instead of one per run; downloaded here, once, when missing) and the
    output directories. ``say``: where progress lines go, or None."""
    from . import data
    from .errors import ConfigError
    from .spec.memory import check_memory

    for dataset in sorted({job.config.dataset for job in todo}):
        ds = data.load(dataset, data_dir, log=say)
        if say:
            say(f"data: {dataset} from {ds.directory}")
    for job in todo:
        data.check_fits(job.spec, job.config.dataset)
        check_memory(job.spec, job.config.batch_size, training=True)  # a spec beyond this machine: one error
    gpus = {(j.backend, j.config.device) for j in todo if j.config.device not in ("auto", "cpu")}
    for backend, device in sorted(gpus):
        call(backend, _resolve_device, backend, device)  # a GPU that is not there: one error, not one per run
    for job in todo:
        out = Path(job.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / ".write-check", "")
            (out / ".write-check").unlink()
        except OSError as e:
            raise ConfigError(f"Cannot write the run directory {out}: {e.strerror or e}. Choose another "
                              "`out`.") from None


EXECUTORS = ("local", "fresh", "ray")


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local instance for this process on
    the loopback (``num_cpus``: its size, default all cores). Ray's usage reporting is off:
    it would send statistics and probe cloud metadata addresses (169.254.169.254,
    metadata.google.internal) from every process Ray starts, which inherit this setting."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if address and address != "auto":
        _check_answers(address)
    if not address:
        # Ray's single-node switch: its services bind to 127.0.0.1 instead of the address
        # that reaches public DNS servers (read at Ray's import, so the processes it starts
        # see it; this process has read it already)
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except ConnectionError as e:  # 'auto' with no cluster on this machine
        from .errors import ConfigError

        raise ConfigError(f"No Ray cluster to join at address {address!r}: {e} Start one (`ray start --head`), "
                          "or leave the address out for a local instance.") from None


def _check_answers(address: str) -> None:
    """One error within seconds when nothing listens at a cluster's address (Ray itself
    retries for minutes); 'host:port' or 'ray://host:port'."""
    import socket

    from .errors import ConfigError

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not host:port, ray://host:port or auto.")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise ConfigError(f"No Ray cluster answers at {address!r} ({e.strerror or e}). Start one there "
                          "(`ray start --head`), or correct the address.") from None


def _run_ray(todo: list[Job], data_dir, address: str | None):
    """(job, outcome) as each run finishes, every run a Ray task: a process of its own on
    whichever node Ray places it (num_cpus = its threads), started exactly as the local
    executor starts it, so results, files and failures are the same. Every node must see
    the output and data directories at the same paths (a shared filesystem)."""
    from .errors import BackendUnavailableError

    try:
        import ray
    except ModuleNotFoundError:
        raise BackendUnavailableError("`executor='ray'` needs the ray package. Install with: "
                                      "pip install 'mnistcnn[ray]'") from None
    if not ray.is_initialized():
        start_ray(address)
    task = ray.remote(_run_process)
    for job in todo:
        (Path(job.out) / ERROR_FILE).unlink(missing_ok=True)  # from an earlier attempt
    refs = {task.options(num_cpus=job.config.threads or 1).remote(job, data_dir): job for job in todo}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            job = refs[done[0]]
            try:
                yield job, ray.get(done[0])
            except Exception as e:  # the task itself failed (a node lost): reported, the others go on
                yield job, _error(job, e)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def check_execution(workers: int, executor: str, address: str | None) -> None:
    """run_jobs' execution settings: a worker count >= 1, a known executor, and an
    address only for Ray (a caller may check them before it writes anything)."""
    from .errors import ConfigError

    if executor not in EXECUTORS:
        raise ConfigError(f"Unknown executor {executor!r}. Valid: {', '.join(EXECUTORS)}.")
    if address is not None and executor != "ray":
        raise ConfigError(f"`address={address!r}` applies to `executor='ray'` only (the Ray cluster to join), not "
                          f"to `executor={executor!r}`. Leave it out, or choose `executor='ray'`.")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"Invalid value for `workers`. Expected an integer >= 1. Received workers={workers!r}.")


def run_jobs(jobs: list[Job], data_dir=None, workers: int = 1, isolate: bool = True,
             progress: bool = True, executor: str = "local", address: str | None = None) -> dict:
    """JobKey -> RunResult, or RunError for a run that failed. ``executor``: 'local'
    (worker processes reused by a slot's consecutive runs of one backend), 'fresh' (a new
    process per run) or 'ray' (each job a Ray task; ``address``: an existing cluster,
    default a local instance)."""
    from tqdm.auto import tqdm

    check_execution(workers, executor, address)
    results, todo = {}, []
    isolate = isolate or executor == "ray"  # a Ray task runs its job in a process of its own
    for job in jobs:
        done = finished(job.out, job)
        if done is not None:
            results[job.key] = done
        else:
            if isolate and job.config.threads is None:  # explicit, so it is recorded
                job = replace(job, config=replace(job.config, threads=max(1, (os.cpu_count() or 1) // workers)))
            todo.append(job)
    say = (lambda line: tqdm.write(line, file=sys.stderr)) if progress else None  # above the bar
    _check_before_running(todo, data_dir, say)
    if say and todo:
        epochs = sum(j.config.epochs for j in todo)
        say(f"plan: runs to train {len(todo)}, already finished {len(results)}; {epochs} epochs in all, "
            f"{min(workers, len(todo)) if isolate else 1} at a time")
    # a bar on a terminal; elsewhere (CI, a log file) one line per finished run
    bar = tqdm(total=len(jobs), initial=len(results), unit="run", desc="runs",
               disable=True if not progress else None)
    bar.log_lines = progress and bar.disable
    bar.pace = _Pace(sum(j.config.epochs for j in todo))

    slot, workers_started = threading.local(), []

    def in_worker(job):
        w = getattr(slot, "worker", None)
        if w is None or not w.alive() or w.key != (job.backend, job.config.threads):
            if w is not None:
                w.close()
            w = slot.worker = _Worker(job.backend, job.config.threads, say)
            workers_started.append(w)
        return w.run(job, data_dir)

    def one(job: Job) -> tuple[Job, RunResult | RunError]:
        (Path(job.out) / ERROR_FILE).unlink(missing_ok=True)  # from an earlier attempt
        try:  # in-process runs too go to a process of their own where this one's Keras is another backend's
            if not isolate and runs_here(job.backend):
                return job, _run_here(job, data_dir)
            return job, (in_worker(job) if executor == "local" else _run_process(job, data_dir))
        except Exception as e:  # a failed run is reported; the others go on
            return job, _error(job, e)

    try:
        if executor == "ray":
            for job, outcome in _run_ray(todo, data_dir, address):
                _record(results, job, outcome, bar)
        elif isolate and workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                try:
                    outcomes = (f.result() for f in as_completed([pool.submit(one, j) for j in todo]))
                    for job, outcome in outcomes:
                        _record(results, job, outcome, bar)
                except BaseException:  # Ctrl-C or SIGTERM: no new runs, the running ones stopped
                    pool.shutdown(wait=False, cancel_futures=True)
                    _stop_children()
                    raise
        else:
            for job in todo:
                _record(results, *one(job), bar)
    except BaseException:
        _stop_children()
        raise
    finally:
        for w in workers_started:
            w.close()
        bar.close()
    return results


class _Pace:
    """The time left, from this command's pace so far: seconds per epoch of the runs
    finished (several at a time included), times the epochs still to train."""

    def __init__(self, epochs: int):
        self.left, self.done, self.start = epochs, 0, time.monotonic()

    def finished(self, epochs: int) -> str:
        self.left, self.done = self.left - epochs, self.done + epochs
        if self.left <= 0 or self.done <= 0:
            return ""
        seconds = (time.monotonic() - self.start) / self.done * self.left
        return f"; about {seconds / 60:.0f} min left" if seconds >= 90 else f"; about {seconds:.0f} s left"


def _record(results, job, outcome, bar):
    results[job.key] = outcome
    left = bar.pace.finished(job.config.epochs)
    if isinstance(outcome, RunError):
        bar.write(f"run {job.key} failed: {outcome.last_line}", file=sys.stderr)
    elif bar.log_lines:
        print(f"run {len(results)}/{bar.total} {job.key}: test accuracy {outcome.test_acc:.4f}{left}", flush=True)
    else:
        bar.set_postfix_str(f"last: {job.key} test acc {outcome.test_acc:.4f}{left}")
    bar.update(1)


def _main_one(job_file) -> None:
    """One job file's run in this (child) process; a failure is written to the run's
    error.txt and raised."""
    d = json.loads(Path(job_file).read_text())
    job = Job(JobKey(**d["key"]), S.from_dict(d["spec"]), d["backend"], TrainConfig(**d["config"]), Path(d["out"]))
    try:
        _run_here(job, d["data_dir"], tune_allocator=True, callbacks=(_epoch_lines(),))  # a process of mnistcnn's own
    except Exception as e:
        _error(job, e)
        raise


def main(argv) -> int:
    import signal

    from .errors import raise_terminated

    signal.signal(signal.SIGTERM, raise_terminated)  # the parent stops us: release the lock, keep the epochs
    if argv == ["--serve"]:
        return _serve()
    _main_one(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

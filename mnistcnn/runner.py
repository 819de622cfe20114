"""Execute many training runs: each in its own process by default (two frameworks in
one process compete for the cores and cannot be timed fairly), finished runs skipped,
interrupted ones resumed, a failing run recorded with its error while the rest go on.

``python -m mnistcnn.runner job.json`` runs one job file (what the pool launches).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import spec as S
from ._io import atomic_write_text
from .train import RunResult, TrainConfig


@dataclass
class Job:
    key: tuple  # how the caller finds this run again, e.g. (mode, variant, backend, seed)
    spec: S.ModelSpec
    backend: str
    config: TrainConfig
    out: Path


def finished(out: Path) -> RunResult | None:
    path = Path(out) / "result.json"
    if path.exists():
        result = RunResult.from_json(path.read_text())
        if result.completed:
            return result
    return None


def _run_here(job: Job, data_dir, progress=False) -> RunResult:
    from . import train

    resume = (Path(job.out) / "result.json").exists()
    return train.run(job.spec, job.backend, job.config, job.out, data_dir, progress=progress,
                     resume=resume)


def _run_process(job: Job, data_dir) -> RunResult:
    job_file = Path(job.out) / "job.json"
    atomic_write_text(job_file, json.dumps({
        "spec": S.to_dict(job.spec), "backend": job.backend, "config": asdict(job.config),
        "out": str(job.out), "data_dir": str(data_dir) if data_dir else None}))
    proc = subprocess.run([sys.executable, "-m", "mnistcnn.runner", str(job_file)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.strip().splitlines() if not l.startswith(("I0000", "W0000", "E0000", "WARNING: All"))]
        raise RuntimeError("\n".join(lines[-5:]) or f"exit status {proc.returncode}")
    return RunResult.from_json((Path(job.out) / "result.json").read_text())


def run_jobs(jobs: list[Job], data_dir=None, workers: int = 1, isolate: bool = True,
             progress: bool = True) -> dict:
    """key -> RunResult, or key -> error message for a run that failed."""
    from tqdm.auto import tqdm

    results, todo = {}, []
    for job in jobs:
        done = finished(job.out)
        if done is not None:
            results[job.key] = done
        else:
            if isolate and job.config.threads is None:  # explicit, so it is recorded
                job = replace(job, config=replace(job.config, threads=max(1, (os.cpu_count() or 1) // workers)))
            todo.append(job)
    bar = tqdm(total=len(jobs), initial=len(results), unit="run", desc="runs", disable=not progress)

    def one(job):
        try:
            return job, (_run_process(job, data_dir) if isolate else _run_here(job, data_dir))
        except Exception as e:  # a failed run is reported; the others go on
            message = f"{type(e).__name__}: {e}"
            atomic_write_text(Path(job.out) / "error.txt", message + "\n")
            return job, message

    if isolate and workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            outcomes = (f.result() for f in as_completed([pool.submit(one, j) for j in todo]))
            for job, outcome in outcomes:
                _record(results, job, outcome, bar)
    else:
        for job in todo:
            _record(results, *one(job), bar)
    bar.close()
    return results


def _record(results, job, outcome, bar):
    results[job.key] = outcome
    if isinstance(outcome, str):
        bar.write(f"run {'/'.join(map(str, job.key))} failed: {outcome.splitlines()[-1]}")
    else:
        bar.set_postfix_str(f"last: {'/'.join(map(str, job.key))} test acc {outcome.test_acc:.4f}")
    bar.update(1)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    d = json.loads(Path(argv[0]).read_text())
    job = Job((), S.from_dict(d["spec"]), d["backend"], TrainConfig(**d["config"]), Path(d["out"]))
    _run_here(job, d["data_dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Nothing lost, nothing silently wrong: the output-directory lock, checkpoints that record
what they were trained on, and the provenance of every result."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnistcnn import spec as S
from mnistcnn import train, weights
from mnistcnn._io import LOCK_NAME, dir_lock
from mnistcnn.errors import ConfigError

TINY = train.TrainConfig(epochs=1, train_limit=256, val_size=0, test_limit=200, batch_size=64,
                         optimizer="sgd", lr=0.05)


def test_a_live_writer_keeps_the_directory_a_stale_lock_is_taken_over(tmp_path, mnist_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(f"{holder.pid}\n")
        with pytest.raises(ConfigError, match=f"being written by another mnistcnn process \\(PID {holder.pid}\\)"):
            train.run("simple-fc", "torch", TINY, tmp_path, mnist_path, progress=False)
        assert not (tmp_path / "result.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and the run goes ahead, then releases it
    result = train.run("simple-fc", "torch", TINY, tmp_path, mnist_path, progress=False)
    assert result.completed and not (tmp_path / LOCK_NAME).exists()


def test_the_lock_names_its_holder_is_reentrant_and_is_released_on_error(tmp_path):
    with dir_lock(tmp_path) as path:
        assert path.read_text().split()[0] == str(__import__("os").getpid())
        with dir_lock(tmp_path):  # a nested call in the same process
            pass
        assert path.exists()
    assert not path.exists()
    with pytest.raises(RuntimeError), dir_lock(tmp_path):
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    (tmp_path / LOCK_NAME).write_text("garbage")  # not a PID: stale
    with dir_lock(tmp_path):
        pass


def test_checkpoint_records_dataset_and_normalisation_and_evaluate_uses_them(tmp_path, mnist_path):
    cfg = train.TrainConfig(**{**TINY.__dict__, "normalization": "unit", "test_limit": 10_000})
    result = train.run("simple-fc", "torch", cfg, tmp_path, mnist_path, progress=False)
    ckpt = tmp_path / "checkpoint" / "weights.npz"
    _, _, meta = weights.load(ckpt)
    assert meta == {"epoch": 1, "backend": "torch", "seed": 0, "dataset": "mnist", "normalization": "unit"}
    ev = train.evaluate_checkpoint(ckpt, mnist_path)
    assert ev["normalization"] == "unit" and ev["dataset"] == "mnist"
    # the run tested on all 10,000 images with its normalisation: evaluate gives the same
    assert ev["test_acc"] == pytest.approx(result.test_acc, abs=1e-4)
    assert ev["test_loss"] == pytest.approx(result.test_loss, rel=1e-5)
    other = train.evaluate_checkpoint(ckpt, mnist_path, normalization="standard")  # an explicit override
    assert other["normalization"] == "standard" and other["test_loss"] != ev["test_loss"]


def test_evaluate_computes_the_loss_on_logits_when_the_spec_ends_in_softmax(tmp_path, mnist_path):
    """The same weights saved under a softmax head and without it give the same test loss."""
    spec = S.ModelSpec("fc-softmax", [S.Flatten(), S.Dense(10, activation="softmax")])
    logits = S.ModelSpec("fc-logits", [S.Flatten(), S.Dense(10)])
    w = weights.initial(logits, 3)
    w = {k: v * 5 for k, v in w.items()}  # confident enough for softmax-of-softmax to show
    weights.save(tmp_path / "a.npz", spec, w)
    weights.save(tmp_path / "b.npz", logits, w)
    a = train.evaluate_checkpoint(tmp_path / "a.npz", mnist_path)
    b = train.evaluate_checkpoint(tmp_path / "b.npz", mnist_path)
    assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-6)
    assert a["test_acc"] == b["test_acc"]


def test_result_records_version_commit_and_date(tmp_path, mnist_path):
    from mnistcnn import __version__

    train.run("simple-fc", "torch", TINY, tmp_path, mnist_path, progress=False)
    env = json.loads((tmp_path / "result.json").read_text())["environment"]
    assert env["mnistcnn"] == __version__
    assert env["date"][:2] == "20" and "T" in env["date"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=__import__("pathlib").Path(__file__).parent)
    if head.returncode == 0:  # a git checkout: the commit is recorded (dirty or not)
        assert env["git_commit"].split("+")[0] == head.stdout.strip()
    else:
        assert env["git_commit"] is None


def test_a_successful_rerun_removes_the_old_error_file(tmp_path, mnist_path):
    from mnistcnn.runner import ERROR_FILE, Job, JobKey, run_jobs

    out = tmp_path / "run"
    out.mkdir()
    (out / ERROR_FILE).write_text("ValueError: an earlier failure\n")
    job = Job(JobKey("harmonized", "as-is", "torch", 0), S.ModelSpec("fc", [S.Flatten(), S.Dense(10)]),
              "torch", TINY, out)
    results = run_jobs([job], mnist_path, isolate=False, progress=False)
    assert results[job.key].completed and not (out / ERROR_FILE).exists()
    assert np.isfinite(results[job.key].test_loss)


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_resume_from_a_damaged_native_checkpoint_names_it_and_the_fix(backend, tmp_path, mnist_path):
    from mnistcnn.errors import CheckpointError

    cfg = train.TrainConfig(**{**TINY.__dict__, "epochs": 2})
    train.run("simple-fc", backend, cfg, tmp_path, mnist_path, progress=False, stop_after=1)
    native = next(p for p in (tmp_path / "checkpoint").iterdir() if p.name.startswith("model."))
    native.write_bytes(native.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"Cannot resume .*checkpoint.* cannot be read .* `overwrite=True` "
                                              r"\(its 1 finished epochs are trained again\)"):
        train.run("simple-fc", backend, cfg, tmp_path, mnist_path, progress=False, resume=True)
    assert not (tmp_path / LOCK_NAME).exists()


def _files(root) -> dict:
    """Every file under ``root`` and its bytes (locks and temporary files included)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_faults_during_compare_lose_nothing(tmp_path, mnist_path):
    """A compare whose worker is killed (as by the OOM killer), whose parent is killed
    (SIGKILL: no handler runs) and whose disk is full: each fault ends the command without
    a traceback, no process is left running, nothing finished is lost or damaged, and
    running the same command again finishes exactly the runs that were missing."""
    import os
    import resource
    import signal
    import time

    out = tmp_path / "cmp"
    argv = [sys.executable, "-m", "mnistcnn", "compare", "simple-fc", "--backends", "torch", "--no-bn",
            "--seeds", "3", "--workers", "1", "--epochs", "2", "--train-limit", "512", "--val-size", "0",
            "--test-limit", "500", "--batch-size", "64", "--data-dir", str(mnist_path), "--out", str(out), "--quiet"]

    def start(**kw):
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    def wait_for(proc, cond, what):
        deadline = time.time() + 300
        while not cond() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None and cond(), f"{what} did not happen while compare ran"

    def children(proc) -> list:
        return subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()

    def gone(pids) -> bool:
        return all(not os.path.exists(f"/proc/{p}") or "zombie" in Path(f"/proc/{p}/status").read_text().lower()
                   for p in pids)

    seed = {s: out / "runs" / "harmonized" / "as-is" / "torch" / f"seed{s}" for s in range(3)}
    # 1. the worker killed under a run (after its first epoch): that run fails, saying how; the others finish
    proc = start()
    wait_for(proc, lambda: (seed[0] / "result.json").exists() and children(proc), "the first epoch")
    for pid in children(proc):
        os.kill(int(pid), signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err, err[-2000:]
    failed = re.findall(r"torch/seed(\d) failed: the run's process ended with exit status -9", err)
    assert len(failed) == 1, err[-2000:]
    done = {s: json.loads((seed[s] / "result.json").read_text()) for s in range(3) if s != int(failed[0])}
    assert len(done) == 2 and all(r["completed"] for r in done.values())
    # 2. the parent killed outright while the rerun trains the failed run again: its worker dies with it
    proc = start()
    wait_for(proc, lambda: children(proc), "a worker start")
    workers = children(proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    deadline = time.time() + 30
    while not gone(workers) and time.time() < deadline:
        time.sleep(0.2)
    assert gone(workers), "a worker outlived its killed parent"
    # 3. run again: only the failed run trains; the finished runs are kept as they were
    proc = start()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    for s in done:
        assert json.loads((seed[s] / "result.json").read_text()) == done[s]
    summary = json.loads((out / "results.json").read_text())
    assert len(summary["runs"]) == 3 and not any("error" in r for r in summary["runs"])
    assert not list(out.rglob(LOCK_NAME))
    # 4. a full disk (a 1 KiB file size limit) as the same command rewrites its results: one
    #    line naming the file, exit 2, and every file as it was (atomic writes: no half file)
    before = _files(out)
    proc = start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024)))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "Traceback" not in err and "unexpected error" not in err, err[-2000:]
    assert f"error: {out}/results.json: the file would be larger than this system allows" in err, err
    assert _files(out) == before

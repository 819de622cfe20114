"""Executing runs (mnistcnn.runner): processes of their own (reused by a worker slot, or
one per run), failures recorded by the child
that had them, finished runs skipped, an old error removed by a run that succeeds."""
import re
from dataclasses import replace
from pathlib import Path

import pytest

from mnistcnn import runner, zoo
from mnistcnn import spec as S
from mnistcnn.config import TrainConfig
from mnistcnn.errors import ConfigError
from mnistcnn.results import RunError, RunResult
from mnistcnn.runner import Job, JobKey

TINY = TrainConfig(epochs=1, train_limit=256, val_size=64, test_limit=200, batch_size=64, threads=1)


def job(tmp_path, backend="torch") -> Job:
    return Job(JobKey("harmonized", "as-is", backend, 0), zoo.get("simple-fc"), backend, TINY,
               tmp_path / "run")


def test_job_key_reads_as_a_path():
    assert str(JobKey("native", "bn", "keras", 2)) == "native/bn/keras/seed2"


@pytest.mark.slow
def test_a_failing_child_reports_its_own_cause_and_a_rerun_clears_it(tmp_path, mnist_path):
    """The keras child imports TensorFlow (which logs to stderr) and then fails on a
    spec that ends in a map: the recorded error is the cause, not the log noise."""
    j = job(tmp_path, "keras")
    bad = Job(j.key, S.ModelSpec("map", [S.Conv2D(2, 3)]), "keras", TINY, j.out)
    out = runner.run_jobs([bad], data_dir=mnist_path, progress=False)[j.key]
    assert isinstance(out, RunError)
    assert out.message.startswith("SpecError: Spec 'map' must end in a flat vector"), out.message
    assert (j.out / "error.txt").read_text().strip() == out.message
    ok = runner.run_jobs([j], data_dir=mnist_path, progress=False)[j.key]
    assert isinstance(ok, RunResult) and ok.completed
    assert not (j.out / "error.txt").exists()


def test_progress_says_where_the_data_is_what_is_planned_and_each_epoch_of_a_worker_run(tmp_path, mnist_path,
                                                                                       capsys):
    """Not a terminal: one line per step, epochs of runs in worker processes included, and
    after each run the time left at the pace so far; nothing of it with progress off."""
    j = job(tmp_path)
    j = replace(j, config=replace(TINY, epochs=2))
    k = replace(j, key=replace(j.key, seed=1), config=replace(TINY, epochs=2, seed=1), out=tmp_path / "seed1")
    runner.run_jobs([j, k], data_dir=mnist_path, progress=True)
    out = capsys.readouterr()
    err = out.err.splitlines()
    assert err[:2] == [f"data: mnist from {mnist_path}",
                       "plan: runs to train 2, already finished 0; 4 epochs in all, 1 at a time"]
    assert [line.split(":")[0] for line in err[2:]] == [f"run {key} epoch {e}/2" for key in (j.key, k.key)
                                                        for e in (1, 2)]
    first, second = out.out.splitlines()
    assert first.startswith(f"run 1/2 {j.key}: test accuracy ") and re.search(r"; about \d+ (s|min) left$", first)
    assert second.startswith(f"run 2/2 {k.key}: test accuracy ") and "left" not in second
    runner.run_jobs([replace(j, out=tmp_path / "quiet")], data_dir=mnist_path, progress=False)
    assert capsys.readouterr().err == ""


def test_finished_runs_are_skipped(tmp_path, mnist_path, monkeypatch):
    j = job(tmp_path)
    first = runner.run_jobs([j], data_dir=mnist_path, isolate=False, progress=False)[j.key]
    assert first.completed and Path(j.out, "result.json").exists()
    monkeypatch.setattr(runner, "_run_here", lambda *a, **k: pytest.fail("ran a finished run again"))
    assert runner.run_jobs([j], data_dir=mnist_path, isolate=False, progress=False)[j.key] == first


def test_a_finished_run_of_other_settings_is_an_error_not_a_result(tmp_path, mnist_path, monkeypatch):
    """A study's protocol or a zoo model changed since a run finished: the run is not
    tabulated as this one's; the error names what differs and the fix. Another thread
    count (another --workers) is the same run."""
    j = job(tmp_path)
    first = runner.run_jobs([j], data_dir=mnist_path, isolate=False, progress=False)[j.key]
    monkeypatch.setattr(runner, "_run_here", lambda *a, **k: pytest.fail("trained instead of refusing"))
    assert runner.run_jobs([replace(j, config=replace(TINY, threads=2))], data_dir=mnist_path, isolate=False,
                           progress=False)[j.key] == first
    with pytest.raises(ConfigError, match=r"holds a finished run with other settings than this one's: "
                       r"\{'lr': \(0\.001, 0\.01\)\}\. Delete that directory to train it again"):
        runner.run_jobs([replace(j, config=replace(TINY, lr=0.01))], data_dir=mnist_path, progress=False)
    no_bias = S.ModelSpec("simple-fc", [S.Flatten(), S.Dense(10, use_bias=False), S.Activation("log_softmax")])
    with pytest.raises(ConfigError, match=r"'spec': \(\"layer 1: \{'kind': 'Dense', 'units': 10, 'activation': "
                       r"None, 'use_bias': True\}\", \"\{.*'use_bias': False\}\"\)"):
        runner.run_jobs([replace(j, spec=no_bias)], data_dir=mnist_path, progress=False)


def test_what_would_fail_every_run_is_checked_once_before_any(tmp_path, mnist_path):
    from mnistcnn.errors import ConfigError, DataError

    j = job(tmp_path)
    with pytest.raises(ConfigError, match="Received workers=0"):
        runner.run_jobs([j], data_dir=mnist_path, workers=0, progress=False)
    bad = tmp_path / "bad-data"
    bad.mkdir()
    for f in Path(mnist_path).iterdir():
        (bad / f.name).write_bytes(f.read_bytes() if "train-images" not in f.name else b"not mnist")
    with pytest.raises(DataError, match="train-images"):
        runner.run_jobs([j], data_dir=bad, progress=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="Cannot write the run directory .*a-file"):
        runner.run_jobs([Job(j.key, j.spec, "torch", TINY, blocker / "run")], data_dir=mnist_path,
                        progress=False)
    assert not j.out.exists()  # nothing was started


def test_an_interrupted_run_without_its_checkpoint_starts_again(tmp_path, mnist_path):
    """Result files are committed, checkpoints are not: a fresh checkout holds the
    result.json of an unfinished run and no checkpoint."""
    import shutil

    from mnistcnn import train

    j = job(tmp_path)
    cfg2 = TrainConfig(**{**TINY.__dict__, "epochs": 2})
    train.run(j.spec, "torch", cfg2, j.out, mnist_path, progress=False, stop_after=1)
    shutil.rmtree(j.out / "checkpoint")
    r = runner.run_jobs([Job(j.key, j.spec, "torch", cfg2, j.out)], data_dir=mnist_path, isolate=False,
                        progress=False)[j.key]
    assert isinstance(r, RunResult) and r.completed and len(r.epochs) == 2


@pytest.mark.slow
def test_a_compare_through_ray_gives_the_local_numbers(tmp_path, mnist_path, monkeypatch):
    """A local Ray instance, on the loopback with its usage reporting off: the same runs,
    files and numbers as the local executor."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'mnistcnn[ray]')")
    import json
    import secrets

    import ray

    from mnistcnn.compare import compare

    cfg = TrainConfig(epochs=1, train_limit=256, val_size=128, test_limit=300, batch_size=64, threads=1)
    local = compare("simple-fc", tmp_path / "local", seeds=2, cfg=cfg, bn=False, workers=2, data_dir=mnist_path,
                    progress=False, plots=False)
    # a token of the test's own: Ray would otherwise write one into ~/.ray
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    runner.start_ray(num_cpus=2)
    from ray._common.usage import usage_lib

    assert not usage_lib.usage_stats_enabled()  # no statistics, no cloud metadata probes
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # the loopback only
    try:
        remote = compare("simple-fc", tmp_path / "ray", seeds=2, cfg=cfg, bn=False, data_dir=mnist_path,
                         progress=False, plots=False, executor="ray")
    finally:
        ray.shutdown()
    assert [r["test_acc"] for r in remote.runs] == [r["test_acc"] for r in local.runs]
    assert len(remote.runs) == 4 and all("error" not in r for r in remote.runs)
    for run in (tmp_path / "ray" / "runs").rglob("result.json"):
        twin = tmp_path / "local" / run.relative_to(tmp_path / "ray")
        assert json.loads(run.read_text())["epochs"][0]["train_loss"] == \
            json.loads(twin.read_text())["epochs"][0]["train_loss"]


def _numbers(result: RunResult) -> list:
    return [(e.train_loss, e.test_loss, e.test_acc) for e in result.epochs] + [result.test_acc]


@pytest.mark.slow
def test_a_reused_worker_gives_each_run_the_numbers_of_a_fresh_process(tmp_path, mnist_path):
    """Five runs (mlp: dropout, so the per-run seeds of both frameworks matter) in one
    worker slot: two processes (one per backend) instead of five, and every run's numbers
    equal, bit for bit, to the same run in a fresh process."""
    cfg = TrainConfig(epochs=2, train_limit=512, val_size=64, test_limit=300, batch_size=64, threads=1)
    jobs = {name: [Job(JobKey("harmonized", "as-is", b, seed), zoo.get("mlp"), b, replace(cfg, seed=seed),
                       tmp_path / name / b / f"seed{seed}") for b, seeds in (("torch", 3), ("keras", 2))
                   for seed in range(seeds)] for name in ("local", "fresh")}
    before = runner._Worker.started
    reused = runner.run_jobs(jobs["local"], data_dir=mnist_path, progress=False)
    assert runner._Worker.started - before == 2
    fresh = runner.run_jobs(jobs["fresh"], data_dir=mnist_path, progress=False, executor="fresh")
    assert runner._Worker.started - before == 2
    assert all(r.completed for r in reused.values())
    assert {k: _numbers(r) for k, r in reused.items()} == {k: _numbers(r) for k, r in fresh.items()}
    assert _numbers(reused[jobs["local"][0].key]) != _numbers(reused[jobs["local"][1].key])  # seeds differ


@pytest.mark.slow
def test_a_worker_that_dies_fails_its_run_only(tmp_path, mnist_path, monkeypatch):
    """The worker process killed under the first run (as by the kernel's OOM killer): that
    run is an error that says how its process ended; the next run starts a fresh process
    and finishes."""
    import signal

    run = runner._Worker.run

    def killed_first(self, job, data_dir):
        if job.key.seed == 0:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        return run(self, job, data_dir)

    monkeypatch.setattr(runner._Worker, "run", killed_first)
    jobs = [Job(JobKey("harmonized", "as-is", "torch", s), zoo.get("simple-fc"), "torch", replace(TINY, seed=s),
                tmp_path / f"seed{s}") for s in (0, 1)]
    before = runner._Worker.started
    out = runner.run_jobs(jobs, data_dir=mnist_path, progress=False)
    assert isinstance(out[jobs[0].key], RunError)
    assert "the run's process ended with exit status -9" in out[jobs[0].key].message
    assert isinstance(out[jobs[1].key], RunResult) and out[jobs[1].key].completed
    assert runner._Worker.started - before == 2


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}", "no-port-here"])
def test_a_ray_address_with_nothing_there_is_one_error_in_seconds(address):
    """Ray itself retries a dead address for minutes; the runner asks the port first."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'mnistcnn[ray]')")
    import socket

    with socket.socket() as s:  # a loopback port that was free a moment ago, and is closed now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match="No Ray cluster answers at|is not host:port, ray://host:port or auto"):
        runner.start_ray(address.format(port=port))


@pytest.mark.parametrize("content", ["", '{"backend": "torch", "epo', "{}", "[]", '{"epochs": 3}', "\x00\xff"])
def test_a_damaged_result_file_is_one_error_naming_it_and_the_fix(tmp_path, content):
    """Finished-run detection, a rerun and a resume all read result.json through one
    reader: a damaged file is named with the fix, never a JSONDecodeError or KeyError."""
    from mnistcnn import train

    (tmp_path / "result.json").write_bytes(content.encode("latin-1"))
    match = r"result.json is damaged or not a mnistcnn run's result \(.*\). Delete it, or pass `overwrite=True`"
    with pytest.raises(ConfigError, match=match):
        runner.finished(tmp_path)
    for how in ({}, {"resume": True}):
        with pytest.raises(ConfigError, match=match):
            train.run("simple-fc", "torch", TINY, tmp_path, progress=False, **how)


def test_a_lock_that_is_a_directory_is_named_with_the_fix(tmp_path):
    from mnistcnn._io import LOCK_NAME, dir_lock

    (tmp_path / LOCK_NAME).mkdir()
    with pytest.raises(ConfigError, match=r"is in the way of mnistcnn's lock file .* Delete it"):
        with dir_lock(tmp_path):
            pass

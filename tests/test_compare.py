"""The comparison, sweeps, their statistics and the example studies (smoke mode)."""
import csv
import io
import json
import os
from pathlib import Path

import pytest

from mnistcnn import compare as C
from mnistcnn import runner
from mnistcnn.config import TrainConfig
from mnistcnn.documents import results_doc
from mnistcnn.errors import ConfigError, SpecError
from mnistcnn.results import CompareSummary

TINY = TrainConfig(epochs=2, train_limit=256, val_size=128, test_limit=500, batch_size=64,
                   log_every=2)


def test_parse_grid():
    g = C.parse_grid(["activation=relu,tanh", "lr=0.1,0.01", "hidden=50,25",
                      "arch=bottleneck-cnn:features=2,bottleneck-cnn:features=8"])
    assert g == {"activation": ["relu", "tanh"], "lr": [0.1, 0.01], "hidden": [50, 25],
                 "arch": ["bottleneck-cnn:features=2", "bottleneck-cnn:features=8"]}
    with pytest.raises(SpecError, match="Unknown grid axis 'colour'"):
        C.parse_grid(["colour=red"])
    with pytest.raises(SpecError, match="expected ints"):
        C.parse_grid(["hidden=wide"])


def _png_ok(path: Path):
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 15_000
    img = matplotlib.image.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 300 and img.std() > 0.01


@pytest.mark.slow
def test_compare_smoke_writes_every_file_consistently(mnist_path, tmp_path):
    s = C.compare("seed000-cnn", tmp_path, seeds=2, cfg=TINY, isolate=False,
                  data_dir=mnist_path, progress=False, command="test compare")
    summary = json.loads((tmp_path / "results.json").read_text())
    assert CompareSummary.from_dict(summary) == s
    assert summary["variants"] == ["no-bn", "bn"] and len(summary["runs"]) == 8
    assert not any("error" in r for r in summary["runs"])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert len(rows) == 8 * TINY.epochs  # one row per run and epoch
    assert {(r["variant"], r["backend"], r["seed"]) for r in rows} == {
        (v, b, str(s)) for v in ("no-bn", "bn") for b in ("torch", "keras") for s in (0, 1)}
    for name in ("loss_bn.png", "train_val_loss.png", "accuracy.png", "test_accuracy.png", "confusion.png"):
        _png_ok(tmp_path / name)
    report = (tmp_path / "report.md").read_text()
    assert "precision float32" in report and "allocator" in report  # what a timing depends on
    assert "BatchNorm momentum 0.99" in report and "epsilon 0.001" in report  # the BN variant, named
    for p in s.paired:
        assert p["verdict"] in report
        assert p["test_acc"]["n"] == 2 and p["test_acc"]["ci_low"] is not None
    groups = {(g["variant"], g["backend"]): g for g in summary["groups"]}
    assert groups[("bn", "keras")]["test_acc"]["n"] == 2
    assert summary["params"]["bn"]["state"] == 2 * (32 + 16 + 1024)

    doc = results_doc([tmp_path])
    assert "| seed000-cnn | total parameters | 827,738 | 827,738 | 827,738 | yes |" in doc
    assert "| pytorch-examples-net-25 | total parameters | 13,565 | 13,565 | 13,565 | yes |" in doc
    assert s.paired[0]["verdict"] in doc and "test compare" in doc
    (tmp_path / "forest.png").unlink()  # a report made before the headline figure: drawn from results.json
    doc = results_doc([tmp_path])
    assert "forest.png)" in doc and (tmp_path / "forest.png").exists()


@pytest.mark.slow
def test_compare_native_ablation_and_isolated_processes(mnist_path, tmp_path):
    """One seed, each run in its own process, with the ablation's modes."""
    cfg = TrainConfig(epochs=1, train_limit=256, val_size=128, test_limit=300, batch_size=64)
    s = C.compare("simple-fc", tmp_path, seeds=1, cfg=cfg, bn=False, ablate=True,
                  workers=2, data_dir=mnist_path, progress=False)
    assert s.modes == ["harmonized", "native"] + [f"native+{i}" for i in
                                                 ("init", "batchnorm", "optimizer", "bn_variance")]
    assert len(s.runs) == 6 * 2 and not any("error" in r for r in s.runs)
    # the cores shared among the workers, set explicitly and recorded by each backend
    assert all(r["threads"] == max(1, (os.cpu_count() or 1) // 2) for r in s.runs)
    assert {a["item"] for a in s.ablation} == {"init", "batchnorm", "optimizer", "bn_variance"}
    assert "Which native defaults make the difference" in (tmp_path / "report.md").read_text()
    job = json.loads(next((tmp_path / "runs").rglob("job.json")).read_text())
    assert job["backend"] in ("torch", "keras")  # the run went through a job file


def test_sweep_skips_finished_runs_and_isolates_failures(mnist_path, tmp_path, monkeypatch):
    grid = {"hidden": [32, 64]}
    cfg = TrainConfig(epochs=1, train_limit=640, val_size=64, test_limit=200, batch_size=32, lr=0.01)
    real = runner._run_here
    calls = []

    def flaky(job, data_dir, progress=False):
        calls.append((job.key.variant, job.key.backend, job.key.seed))
        if calls[-1] == ("hidden=64", "keras", 0):
            raise RuntimeError("simulated crash")
        return real(job, data_dir, progress)

    monkeypatch.setattr(runner, "_run_here", flaky)
    s = C.sweep("mlp", grid, tmp_path, cfg=cfg, isolate=False, data_dir=mnist_path, progress=False)
    assert len(calls) == 4
    failed = [r for r in s["rows"] if r["errors"]]
    assert [(r["cell"], r["backend"]) for r in failed] == [("hidden=64", "keras")]
    assert "simulated crash" in failed[0]["errors"][0]
    assert "failed: RuntimeError: simulated crash" in (tmp_path / "sweep.md").read_text()
    assert (tmp_path / "runs" / "hidden=64" / "keras" / "seed0" / "error.txt").exists()
    ok = [r for r in s["rows"] if not r["errors"]]
    assert all(r["test_acc"]["mean"] > 0.3 and len(r["val_acc_per_epoch"]) == 1 for r in ok)

    calls.clear()  # a re-run trains only what has no finished result
    C.sweep("mlp", grid, tmp_path, cfg=cfg, isolate=False, data_dir=mnist_path, progress=False)
    assert calls == [("hidden=64", "keras", 0)]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "sweep.csv").read_text())))
    assert len(rows) == 3 + 1  # three finished runs x 1 epoch, one failed row


def test_seeds_start_at_the_configs_seed_and_zero_seeds_is_refused(mnist_path, tmp_path):
    cfg = TrainConfig(epochs=1, train_limit=64, val_size=0, test_limit=100, batch_size=32, seed=7)
    s = C.compare("simple-fc", tmp_path, seeds=2, cfg=cfg, bn=False, backends=("torch",), isolate=False,
                  data_dir=mnist_path, progress=False, plots=False)
    assert [r["seed"] for r in s.runs] == [7, 8]
    assert (tmp_path / "runs" / "harmonized" / "as-is" / "torch" / "seed8" / "result.json").exists()
    with pytest.raises(ConfigError, match="Received seeds=0"):
        C.compare("simple-fc", tmp_path, seeds=0, cfg=cfg, data_dir=mnist_path)


def test_variants_trains_only_the_named_side_of_the_batchnorm_pair(mnist_path, tmp_path):
    """Report 000's further seeds: the model without BatchNorm only, in the pair's own
    directories (so its first seeds are the pair's runs, not new ones)."""
    cfg = TrainConfig(epochs=1, train_limit=64, val_size=0, test_limit=100, batch_size=32)
    s = C.compare("simple-cnn", tmp_path, seeds=2, cfg=cfg, backends=("torch",), isolate=False,
                  data_dir=mnist_path, progress=False, plots=False, variants=("no-bn",))
    assert s.variants == ["no-bn"] and [(r["variant"], r["seed"]) for r in s.runs] == [("no-bn", 0), ("no-bn", 1)]
    assert s.batchnorm == "as in the spec"
    assert sorted(p.name for p in (tmp_path / "runs" / "harmonized").iterdir()) == ["no-bn"]


@pytest.mark.slow
def test_a_ci_target_adds_seeds_until_the_interval_is_narrow_enough(mnist_path, tmp_path):
    """Harmonized simple-fc in one process gives identical runs in both backends: the paired
    CI is +-0 from 3 seeds, so the target is met at once; an impossible one runs to the max."""
    cfg = TrainConfig(epochs=1, train_limit=128, val_size=0, test_limit=200, batch_size=64)
    s = C.compare("simple-fc", tmp_path / "a", seeds=1, cfg=cfg, bn=False, isolate=False, data_dir=mnist_path,
                  progress=False, plots=False, ci_target_pp=0.1, max_seeds=5)
    assert s.seeds == 3 and s.sequential["seeds"] == 3
    assert "every paired 95% CI is within +-0.1 pp" in s.sequential["stopped"]
    assert "Chow and Robbins" in (tmp_path / "a" / "report.md").read_text()
    native = C.compare("simple-fc", tmp_path / "n", seeds=3, cfg=cfg, bn=False, modes=("native",), isolate=False,
                       data_dir=mnist_path, progress=False, plots=False, ci_target_pp=1e-6, max_seeds=4)
    assert native.sequential["seeds"] == 4 and "the maximum of 4 seeds was reached" in native.sequential["stopped"]
    assert native.paired[0]["test_acc"]["n"] == 4
    with pytest.raises(ConfigError, match="Invalid CI target"):
        C.compare("simple-fc", tmp_path / "b", cfg=cfg, ci_target_pp=0, data_dir=mnist_path)


@pytest.mark.parametrize("grid, seeds, match", [
    ({"seed": [1, 2]}, 1, "`seed` is not a grid axis"),
    ({"lr": [0.01, 1e-2]}, 1, "repeats 0.01: equal values are one cell"),
    ({"lr": []}, 1, "needs a list of values"),
    ({}, 1, "Invalid value for `grid`"),
    ({"lr": [0.01]}, 0, "Invalid value for `seeds`"),
])
def test_a_sweep_whose_cells_are_not_distinct_runs_is_refused_before_anything(tmp_path, grid, seeds, match):
    """Before, seed=1,2 trained seed 0 in both cells, and lr=0.01,1e-2 made two cells race
    for one directory (one failed on the lock, the sweep still exited 0)."""
    with pytest.raises(ConfigError, match=match):
        C.sweep("simple-fc", grid, tmp_path / "s", seeds=seeds, progress=False)
    assert not (tmp_path / "s").exists()


def test_a_repeated_grid_axis_is_refused_on_the_command_line(tmp_path, capsys):
    from mnistcnn.cli import main

    assert main(["sweep", "simple-fc", "--grid", "lr=0.1", "--grid", "lr=0.01", "--out", str(tmp_path / "s")]) == 2
    assert "Grid axis 'lr' is given twice" in capsys.readouterr().err
    assert main(["sweep", "simple-fc", "--grid", "seed=1,2", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "not a grid axis" in err and "--seeds" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("kw, match", [
    (dict(seeds=100_000_000), "Expected an integer from 1 to 1000"),
    (dict(seeds=True), "Invalid value for `seeds`"),
    (dict(max_seeds=5), "`max_seeds=5` applies with `ci_target_pp` only"),
    (dict(ci_target_pp=0.1, max_seeds=-5), "Invalid value for `max_seeds`"),
    (dict(cfg=TrainConfig(defaults="native")), "`defaults` and `harmonize` in `cfg` do not apply"),
])
def test_compare_refuses_what_it_would_ignore_or_hang_on_before_anything(tmp_path, kw, match):
    """Before: 10^8 seeds printed nothing for minutes while the plan was built; max_seeds
    without a CI target and a native cfg were silently ignored (runs recorded harmonized)."""
    with pytest.raises(ConfigError, match=match):
        C.compare("simple-fc", tmp_path / "c", progress=False, **kw)
    assert not (tmp_path / "c").exists()


def test_the_backends_interleave_seed_by_seed_in_the_order_runs_train(tmp_path, monkeypatch):
    """A comparison's runs train torch seed 0, keras seed 0, torch seed 1, ... (so that a
    busy spell of the machine slows both frameworks alike, not all runs of one), each in
    its own directory as before; the runner keeps that order."""
    from mnistcnn import zoo
    from mnistcnn.results import RunResult

    jobs = C.plan(zoo.get("seed000-cnn"), tmp_path, 2, TINY, ("torch", "keras"), True, ("harmonized",))
    expected = [(v, b, s) for v in ("no-bn", "bn") for s in (0, 1) for b in ("torch", "keras")]
    assert [(j.key.variant, j.key.backend, j.key.seed) for j in jobs] == expected
    assert [j.out for j in jobs[:2]] == [tmp_path / "runs/harmonized/no-bn/torch/seed0",
                                         tmp_path / "runs/harmonized/no-bn/keras/seed0"]
    trained = []

    def fake_run(job, data_dir, *args, **kwargs):
        trained.append((job.key.variant, job.key.backend, job.key.seed))
        return RunResult(job.backend, {}, {}, None, test_acc=0.9, completed=True)

    monkeypatch.setattr(runner, "_check_before_running", lambda *a, **k: None)
    monkeypatch.setattr(runner, "runs_here", lambda backend: True)
    monkeypatch.setattr(runner, "_run_here", fake_run)
    runner.run_jobs(jobs, workers=1, isolate=False, progress=False)
    monkeypatch.setattr(runner, "_run_process", fake_run)
    runner.run_jobs(jobs, workers=1, isolate=True, progress=False, executor="fresh")
    assert trained == expected * 2


def test_a_model_given_as_a_spec_is_trained_as_given_and_a_zoo_name_as_its_batchnorm_pair(mnist_path, tmp_path):
    """A user's model (a spec object, a spec file, an imported model) is compared as it is;
    a zoo name keeps the studies' BatchNorm pair; bn=True asks for the pair."""
    from mnistcnn import zoo

    cfg = TrainConfig(epochs=1, train_limit=64, val_size=0, test_limit=100, batch_size=32)
    kw = dict(seeds=1, cfg=cfg, backends=("torch",), isolate=False, data_dir=mnist_path, progress=False, plots=False)
    given = C.compare(zoo.get("simple-cnn"), tmp_path / "given", **kw)
    assert given.variants == ["as-is"] and given.params == {"as-is": {"trainable": 8_490, "state": 0}}
    assert given.batchnorm.startswith("the model as given (simple-cnn, 8,490 parameters)")
    assert C.compare("simple-cnn", tmp_path / "zoo", **kw).variants == ["no-bn", "bn"]
    assert C.compare(zoo.get("simple-cnn"), tmp_path / "asked", bn=True, **kw).variants == ["no-bn", "bn"]


def test_a_zoo_model_with_residual_blocks_is_compared_as_given_by_default(tmp_path, monkeypatch):
    """resnet-mini's BatchNorms belong to its blocks: no pair to make, so its name alone
    trains it as given (bn=True still asks for the pair, and is refused naming the fix)."""
    planned = []

    class Planned(Exception):
        pass

    def stop(jobs, *a, **k):
        planned.extend(jobs)
        raise Planned()

    monkeypatch.setattr(C, "run_jobs", stop)
    with pytest.raises(Planned):
        C.compare("resnet-mini", tmp_path / "c", seeds=1, progress=False)
    assert {j.key.variant for j in planned} == {"as-is"}
    with pytest.raises(SpecError, match="Compare it as given"):
        C.compare("resnet-mini", tmp_path / "d", seeds=1, bn=True, progress=False)

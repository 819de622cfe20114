"""CSV and plots from plain result data (mnistcnn.report), and a comparison's report.md
(mnistcnn.documents): nothing here trains."""
import csv
import io

import numpy as np
import pytest

from mnistcnn import documents, report, stats, zoo
from mnistcnn.config import Optimizer
from mnistcnn.results import CompareSummary, EpochRecord, RunError, RunResult
from mnistcnn.runner import Job, JobKey


def _result(backend, acc):
    epochs = [EpochRecord(e, 1e-3, 0.5 / e, 0.9, 0.4 / e, acc - 0.01 / e, 1.0, 5000.0) for e in (1, 2)]
    confusion = [[100 if i == j else 1 for j in range(10)] for i in range(10)]
    return RunResult(backend, {}, {"seed": 0}, Optimizer("adam", 1e-3), epochs, 0.05, acc, confusion,
                     steps=[[10, 1.0], [20, 0.5]], completed=True)


@pytest.fixture
def compared(tmp_path):
    spec = zoo.get("simple-fc")
    jobs, results = [], {}
    for variant in ("no-bn", "bn"):
        for seed in (0, 1):
            for backend, acc in (("torch", 0.98), ("keras", 0.97)):
                key = JobKey("harmonized", variant, backend, seed)
                jobs.append(Job(key, spec, backend, None, tmp_path))
                results[key] = _result(backend, acc + seed * 0.001)
    results[JobKey("harmonized", "bn", "keras", 1)] = RunError("DataError: simulated")
    acc = stats.paired([0.98, 0.981], [0.97, 0.971])
    summary = CompareSummary(
        "simple-fc", "mnistcnn compare simple-fc", "2026-11-23",
        {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "normalization": "standard",
         "val_size": 100}, 2, ["harmonized"], ["no-bn", "bn"], ["torch", "keras"],
        params={"no-bn": {"trainable": 7850, "state": 0}, "bn": {"trainable": 7850, "state": 0}},
        batchnorm="BatchNorm momentum 0.99",
        runs=[{"mode": "harmonized", "variant": "bn", "backend": "keras", "seed": 1, "error": "DataError: simulated"}],
        groups=[{"mode": "harmonized", "variant": "no-bn", "backend": b, "test_acc": stats.describe([a, a]),
                 "test_loss": stats.describe([0.05, 0.05]), "epoch_time_s": stats.describe([1.0, 1.0]),
                 "images_per_s": stats.describe([5000.0])} for b, a in (("torch", 0.98), ("keras", 0.97))],
        paired=[{"mode": "harmonized", "variant": "no-bn", "a": "torch", "b": "keras", "test_acc": acc,
                 "test_loss": stats.paired([0.05, 0.05], [0.05, 0.06]), "verdict": stats.verdict(acc)}],
        environment={"torch": {"cpu": "test CPU"}, "keras": {}})
    return jobs, results, summary


def test_runs_csv_has_a_row_per_run_and_epoch_and_the_error(compared):
    jobs, results, _ = compared
    rows = list(csv.DictReader(io.StringIO(report.runs_csv(jobs, results))))
    assert len(rows) == 7 * 2 + 1
    assert list(rows[0])[:4] == ["mode", "variant", "backend", "seed"]
    assert [r["error"] for r in rows if r["error"]] == ["DataError: simulated"]


def test_markdown_names_verdicts_failures_batchnorm_and_environment(compared):
    _, _, summary = compared
    md = documents.compare_markdown(summary)
    assert summary.paired[0]["verdict"] in md
    assert "BatchNorm: BatchNorm momentum 0.99." in md
    assert "- harmonized/bn/keras/seed1: DataError: simulated" in md
    assert "test CPU" in md and "| harmonized | no-bn | torch | 98.00 |" in md


def test_plots_are_real_pictures(compared, tmp_path):
    import matplotlib.image

    jobs, results, summary = compared
    names = report.compare_plots(tmp_path, jobs, results, summary)
    assert names == ["forest.png", "loss_bn.png", "train_val_loss.png", "accuracy.png", "test_accuracy.png",
                     "confusion.png"]
    for n in names:
        img = matplotlib.image.imread(tmp_path / n)
        assert img.shape[0] > 200 and img.shape[1] > 600 and img.std() > 0.01, n


def test_confusion_in_percent_of_each_true_class():
    m = np.array([[8, 2], [0, 0]])
    assert report.per_true_class(m).tolist() == [[80.0, 20.0], [0.0, 0.0]]


def test_forest_and_ablation_figures(tmp_path):
    import matplotlib.image

    one = {"mode": "native", "variant": "bn", "test_acc": stats.paired([0.9], [0.8])}
    two = {"mode": "harmonized", "variant": "bn", "test_acc": stats.paired([0.9, 0.91], [0.9, 0.92])}
    fig = report.forest_figure([two, one], "t")
    fig.savefig(tmp_path / "f.png")
    ablation = [{"variant": v, "item": i, "native_gap": -0.01, "gap_with_item_harmonized": g}
                for v in ("no-bn", "bn") for i, g in (("init", -0.002), ("optimizer", -0.009))]
    fig = report.ablation_figure(ablation)
    assert len(fig.axes) == 2  # one panel per variant
    fig.savefig(tmp_path / "a.png")
    for n in ("f.png", "a.png"):
        assert matplotlib.image.imread(tmp_path / n).std() > 0.01

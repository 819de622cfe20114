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


def _timed_summary(load_avg, cpu_s):
    """A comparison of one run per backend, timed on a 2-core machine at ``load_avg``."""
    rows = [{"mode": "harmonized", "variant": "as-is", "backend": b, "seed": 0, "test_acc": 0.98, "test_loss": 0.05,
             "total_time_s": 20.0, "images_per_s": 5000.0, "threads": 2, "cpu_s": cpu_s,
             "images_per_cpu_s": None if cpu_s is None else 100_000 / cpu_s, "load_avg": load_avg, "cpu_count": 2}
            for b in ("torch", "keras")]
    groups = [{"mode": "harmonized", "variant": "as-is", "backend": b, "test_acc": stats.describe([0.98]),
               "test_loss": stats.describe([0.05]), "epoch_time_s": stats.describe([10.0]),
               "images_per_s": stats.describe([5000.0])} for b in ("torch", "keras")]
    return CompareSummary("simple-fc", "c", "d", {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 1e-3,
                                                  "normalization": "standard", "val_size": 100},
                          1, ["harmonized"], ["as-is"], ["torch", "keras"], params={}, runs=rows, groups=groups)


def test_report_md_warns_naming_the_figures_when_the_machine_was_busy():
    md = documents.compare_markdown(_timed_summary(load_avg=3.5, cpu_s=21.0))
    assert "**Warning: the machine was busy during 2 of 2 runs**" in md
    assert ("- `harmonized/as-is/torch/seed0`: load average 3.50 on 2 cores; CPU time / wall time 1.05 with 2 "
            "threads; 5,000 images/s") in md
    assert "| harmonized | as-is | torch | 1 | 2 | 5,000 | 4,762 | 1.05 | 3.50 / 2 |" in md  # 100,000 / 21 s
    quiet = documents.compare_markdown(_timed_summary(load_avg=1.9, cpu_s=38.0))
    assert "## Speed" in quiet and "| 2,632 | 1.90 | 1.90 / 2 |" in quiet
    assert "busy" not in quiet and "unknown" not in quiet


def test_report_md_says_the_timing_context_of_old_results_is_unknown():
    md = documents.compare_markdown(_timed_summary(load_avg=None, cpu_s=None))
    assert "Timing context unknown for 2 of 2 runs" in md
    assert "| harmonized | as-is | keras | 1 | 2 | 5,000 | unknown | unknown | unknown |" in md
    assert "Warning" not in md


def test_one_error_in_a_confusion_matrix_has_the_strongest_colour():
    """1 error among 1,000 images: the errors' own scale tops at it, so it is coloured as
    strongly as the scale goes, while the 999 correct ones stay off that scale."""
    import matplotlib.pyplot as plt

    m = np.diag([1000] * 10)
    m[3, 3], m[3, 5] = 999, 1
    top = report.error_scale([m])
    assert top == pytest.approx(0.1)
    fig, ax = plt.subplots()
    image = report.confusion_panel(ax, m, top)
    assert image.get_array().mask[3, 3] and not image.get_array().mask[3, 5]  # the diagonal apart
    assert image.norm(image.get_array()[3, 5]) == pytest.approx(1.0)
    error, nothing = image.to_rgba(image.get_array()[3, 5]), image.to_rgba(image.get_array()[3, 4])
    assert sum(abs(a - b) for a, b in zip(error[:3], nothing[:3])) > 1.0  # dark red against near-white
    texts = {t.get_text() for t in ax.texts}
    assert {"999", "1", "1000"} <= texts  # the diagonal labelled with its counts, the error with its count
    plt.close(fig)


def test_forest_says_which_side_favours_which_framework():
    fig = report.forest_figure([{"mode": "harmonized", "variant": "bn", "a": "torch", "b": "keras",
                                 "test_acc": stats.paired([0.9, 0.91], [0.9, 0.92])}], "t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "← keras better" in texts and "torch better →" in texts
    lo, hi = fig.axes[0].get_xlim()
    assert lo == pytest.approx(-hi)  # zero in the middle


def test_overlapping_curves_differ_in_line_style_and_marker():
    torch, keras = report.style("torch"), report.style("keras")
    assert torch["ls"] != keras["ls"] and torch["marker"] != keras["marker"]


def test_a_reports_figures_are_drawn_again_from_its_files(compared, tmp_path):
    """From results.json and results.csv alone (the runs' files gone): the figures their
    data allows; with a run's result.json kept, its steps and confusion matrix too."""
    jobs, results, summary = compared
    summary.runs = [{"mode": j.key.mode, "variant": j.key.variant, "backend": j.key.backend, "seed": j.key.seed,
                     **({"error": results[j.key].message} if isinstance(results[j.key], RunError)
                        else {"test_acc": results[j.key].test_acc})} for j in jobs]
    (tmp_path / "results.json").write_text(summary.to_json())
    (tmp_path / "results.csv").write_text(report.runs_csv(jobs, results))
    assert report.redraw_compare(tmp_path) == ["forest.png", "train_val_loss.png", "accuracy.png",
                                               "test_accuracy.png"]
    _, read, _ = report.read_compare(tmp_path)
    key = jobs[0].key
    assert [e.val_acc for e in read[key].epochs] == [e.val_acc for e in results[key].epochs]
    run = tmp_path / "runs" / key.mode / key.variant / key.backend / f"seed{key.seed}"
    run.mkdir(parents=True)
    (run / "result.json").write_text(results[key].to_json())
    assert "confusion.png" in report.redraw_compare(tmp_path)


def test_a_comparison_whose_runs_all_failed_draws_no_curves_and_does_not_crash(tmp_path):
    """Every run failed before its first epoch (a full disk at the first checkpoint): the
    report says so instead of an unexpected error from a figure with no rows."""
    from mnistcnn import report, zoo
    from mnistcnn.results import CompareSummary, RunError
    from mnistcnn.runner import Job, JobKey

    key = JobKey("harmonized", "as-is", "torch", 0)
    jobs = [Job(key, zoo.get("simple-fc"), "torch", None, tmp_path / "r")]
    summary = CompareSummary(spec="simple-fc", command="x", date="2026-12-07", config={}, seeds=1,
                             modes=["harmonized"], variants=["as-is"], backends=["torch", "keras"], params={})
    assert report.compare_plots(tmp_path, jobs, {key: RunError("OSError: [Errno 27] File too large")}, summary) == []

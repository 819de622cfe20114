"""The Markdown the tool writes (mnistcnn.documents), from plain result data: a study's
reproduce.md, report 000's answer, the studies' costs and docs/results.md."""
import json

from mnistcnn import documents as D
from mnistcnn import stats


def test_a_published_value_outside_our_range_is_read_against_the_known_differences():
    row = {"setting": "mlp-lr0.001", "what": "test accuracy", "published": 0.9, "metric": "test_acc",
           "inside": False, "differences": "Its dropout stays on when it tests."}
    md = D.study_markdown({"report": "003", "title": "t", "command": "c", "date": "d", "run_time_s": 60,
                           "smoke": False, "complete": True, "protocol": "p",
                           "rows": [row, {**row, "setting": "mlp-lr0.01", "inside": True}]})
    assert "| **no**: Its dropout stays on when it tests. |" in md
    assert "- **mlp-lr0.001, mlp-lr0.01**: Its dropout stays on when it tests." in md


def test_report_000s_answer_in_one_sentence():
    torch_acc, keras_acc = [0.9910, 0.9915, 0.9921, 0.9912], [0.9895, 0.9913, 0.9925, 0.9903]
    row = {"what": "PyTorch test accuracy [no-bn]", "torch_native": stats.describe(torch_acc),
           "keras_native": stats.describe(keras_acc), "diff_native": stats.paired(torch_acc, keras_acc)}
    text = D.answer_000({"rows": [row]})
    d = row["diff_native"]
    assert f"PyTorch {99.145:.2f}% vs TensorFlow {99.09:.2f}%" in text
    ci = f"{d['ci_low'] * 100:+.2f} to {d['ci_high'] * 100:+.2f}"
    assert f"{d['mean_diff'] * 100:+.2f} pp (95% CI {ci}, 4 seeds)" in text
    need = max(2, int(__import__("math").ceil((1.96 * d["sd_diff"] * 100 / 0.1) ** 2)))
    assert f"about {need} seeds" in text
    assert "under way" in D.answer_000({"rows": [{**row, "diff_native": None, "diff_harmonized": None}]})
    tight = stats.paired(torch_acc, [0.9905, 0.9913, 0.9915, 0.9903])  # CI +0.01 to +0.10: within +-0.1 pp
    text = D.answer_000({"rows": [{**row, "diff_native": tight}]})
    assert "+0.05 pp (95% CI +0.01 to +0.10, 4 seeds): PyTorch is ahead at this precision." in text
    assert "would take" not in text
    # precise and no gap: the report's one pair of runs read against the scatter of a pair
    keras_same = [0.9912, 0.9913, 0.9919, 0.9914]  # differences -0.02, +0.02, +0.02, -0.02 pp
    same = {**row, "diff_native": stats.paired(torch_acc, keras_same)}
    tf_row = {"what": "TensorFlow test accuracy [no-bn]", "published": 0.9909}
    text = D.answer_000({"rows": [{**same, "published": 0.9880}, tf_row]})
    half = stats.prediction_half_width(same["diff_native"]["sd_diff"] * 100, 4)  # 0.08 pp
    assert ": the frameworks do not differ by more than 0.04 pp; one run of each, as the report compared, " \
           f"differs by {-half:+.2f} to {half:+.2f} pp (95% prediction interval of a pair of runs), so its " \
           "-0.29 pp is more than single runs scatter." in text
    text = D.answer_000({"rows": [{**same, "published": 0.9904}, tf_row]})
    assert "so its -0.05 pp is the scatter of single runs." in text


def test_the_cost_table_prices_the_unfinished_runs_at_the_median_finished_run():
    spent = [{"setting": "complex-cnn", "machines": ["AMD EPYC, 2 cores"],
              "backends": {"torch": {"planned": 6, "seconds": [600.0, 660.0, 6000.0]},
                           "keras": {"planned": 6, "seconds": []}}},
             {"setting": "simple-cnn-lr0.1", "machines": ["AMD EPYC, 2 cores"],
              "backends": {"torch": {"planned": 3, "seconds": [78.0, 78.0]}}}]
    failed = [{"run": "simple-cnn-lr0.1/native/runs/native/as-is/torch/seed1", "error": "TrainingDiverged"}]
    md = D.study_markdown({"report": "003", "title": "t", "command": "c", "date": "d", "run_time_s": 0, "smoke": False,
                           "protocol": "p", "rows": [], "spent": spent, "failed": failed})
    assert "What the runs cost here (AMD EPYC, 2 cores)" in md
    assert "| complex-cnn | torch | 3 of 6 | 11.0 min | 33.0 min |" in md  # 3 x the median 660 s
    assert "| complex-cnn | keras | 0 of 6 | ? | ? |" in md
    assert "| simple-cnn-lr0.1 | torch | 2 of 3 (1 failed) | 1.3 min | – |" in md  # nothing left to train


def test_results_doc_has_one_table_of_every_published_number(tmp_path):
    """docs/results.md: one table, a row per published number of every report (its report
    named in the first column); each report's section keeps only the rows it did not publish."""
    acc = stats.describe([0.981, 0.983])
    dirs = []
    for report, setting in (("001", "keras-relu"), ("003", "simple-cnn")):
        published = {"report": report, "setting": setting, "what": f"test accuracy of {setting}", "published": 0.98,
                     "metric": "test_acc", "inside": True, "torch_native": acc}
        probe = {**published, "what": f"(not published) test accuracy after 1 epochs of {setting}",
                 "published": None, "inside": None}
        d = tmp_path / report
        d.mkdir()
        (d / "reproduce.json").write_text(json.dumps(
            {"report": report, "title": f"title {report}", "command": "c", "date": "d", "run_time_s": 60,
             "smoke": False, "complete": True, "protocol": f"protocol {report}", "rows": [published, probe]}))
        dirs.append(d)
    doc = D.results_doc(dirs, doc_dir=tmp_path)
    table = doc.index("## Every published number, at its report's own protocol")
    assert table < doc.index("## Report 001") < doc.index("## Report 003")
    for report, setting in (("001", "keras-relu"), ("003", "simple-cnn")):
        row = f"| {report} | {setting} | test accuracy of {setting} | 98.00 | 98.20 ± 0.14 (n=2) |"
        assert doc.count(row) == 1 and table < doc.index(row) < doc.index("## Report 001")
        section = doc[doc.index(f"## Report {report}"):]
        assert f"| {setting} | (not published) test accuracy after 1 epochs of {setting} | – |" in section
        assert f"| {setting} | test accuracy of {setting} |" not in section.split("## Report", 2)[1]
    assert "(not published)" not in doc[table:doc.index("## Report 001")]


def test_the_studies_cost_in_one_sentence():
    """docs/results.md states what all studies took and what their planned runs would take
    at each setting's median run; runs with no median and sequential seeds are named, not priced."""
    spent = lambda setting, planned, seconds: {"setting": setting, "machines": [],  # noqa: E731
                                               "backends": {"keras": {"planned": planned, "seconds": seconds}}}
    diff = {"n": 3, "ci_low": -0.005, "ci_high": 0.005}  # +-0.5 pp: the rule adds seeds
    s000 = {"report": "000", "run_time_s": 7200, "settings": [{"name": "seed000-cnn", "precision": ["no-bn", 0.1, 30]}],
            "rows": [{"setting": "seed000-cnn", "published": 0.988, "what": "PyTorch test accuracy [no-bn]",
                      "diff_native": diff}], "spent": [spent("seed000-cnn", 3, [600.0, 600.0, 600.0])]}
    s004 = {"report": "004", "run_time_s": 3600, "settings": [{"precision": None}],
            "spent": [spent("keras3-cnn", 4, [600.0, 1200.0]), spent("keras7-cnn", 2, [])],
            "failed": [{"run": "keras3-cnn/native/runs/native/as-is/keras/seed3", "error": "TrainingDiverged"}]}
    text = D.study_costs([s000, s004])
    assert "finished runs: 3.0 h (report 000: 2.0 h, report 004: 1.0 h)" in text
    assert "about 0.2 h more" in text  # keras3-cnn: 4 planned - 2 finished - 1 failed = 1 run at 900 s
    assert "plus 2 runs of settings with none finished yet" in text
    assert "(report 000's further seeds under its precision rule not counted)" in text
    for stopped in ({"n": 23, "ci_low": -0.00095, "ci_high": 0.00095}, {"n": 30, "ci_low": -0.002, "ci_high": 0.002}):
        s000["rows"][0]["diff_native"] = stopped  # within +-0.1 pp, or the most seeds: nothing further
        assert "precision rule" not in D.study_costs([s000, s004])
    s004["spent"][0]["backends"]["keras"]["planned"] = 3  # keras3-cnn done: 2 finished, 1 failed
    assert "names. Every setting with a finished run has all its runs; left: 2 runs of settings with none " \
           "finished yet." in D.study_costs([s000, s004])

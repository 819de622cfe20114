"""The reports' studies (mnistcnn.reproduce): protocols as data, checked without
training, and a smoke run of every study through the real machinery."""
import json
from dataclasses import astuple

import pytest

from mnistcnn import documents as D
from mnistcnn import reproduce as R
from mnistcnn import stats
from mnistcnn.config import Optimizer, TrainConfig
from mnistcnn.results import EpochRecord, RunResult

METRICS = {"test_acc", "test_loss", "train_acc", "train_loss", "val_acc", "train_loss_last", "total_time_s"}


def test_every_report_has_a_study():
    assert list(R.STUDIES) == ["000", "001", "002", "003", "004"]


@pytest.mark.parametrize("report", R.STUDIES)
def test_every_setting_is_a_valid_protocol(report):
    """Each setting builds its spec and config; each published number points at a metric
    and an epoch the setting's runs will have; the report's own framework runs natively
    (a sensitivity setting may run harmonized only: the report's protocol with one choice
    changed)."""
    study = R.STUDIES[report]
    assert study.protocol and study.settings
    for setting in study.settings:
        cfg = TrainConfig(**setting.config)
        assert setting.spec().output_shape == (10,)
        groups = dict(setting.runs)
        for p in setting.published:
            assert p.metric in METRICS
            assert p.framework in groups.get("native", groups.get("harmonized"))
            assert p.epoch is None or 1 <= p.epoch <= cfg.epochs
            assert p.epoch is None or p.epoch == cfg.epochs or cfg.test_every_epoch or p.metric != "test_acc"
    assert all(k <= TrainConfig(**s.config).epochs for s in study.settings for k in study.sensitivity_epochs)


@pytest.mark.parametrize("report", R.STUDIES)
def test_a_study_file_names_only_its_own_settings(report):
    """A study is a data file (mnistcnn/studies/<report>.json): its settings' names are
    unique, and every setting an `against` or a figure's line names is one of them."""
    study = R.STUDIES[report]
    names = [s.name for s in study.settings]
    assert study.report == report and len(set(names)) == len(names)
    assert {s.against for s in study.settings if s.against} <= set(names)
    assert {line[0] for f in study.figures for panel in f.panels for line in panel["lines"]} <= set(names)


def test_a_study_file_leaves_out_what_takes_its_default(tmp_path):
    """load_study: the report is the file's name, a field left out its default, and JSON's
    lists the tuples the settings hold (so a loaded study equals one written in Python)."""
    f = tmp_path / "042.json"
    f.write_text(json.dumps({"title": "t", "protocol": "p", "settings": [
        {"name": "fc", "arch": "simple-fc", "config": {"epochs": 2, "milestones": [1]},
         "published": [{"what": "test accuracy", "value": 0.9, "metric": "test_acc", "framework": "torch"}]}]}))
    study = R.load_study(f)
    assert (study.report, study.sensitivity_epochs, study.figures) == ("042", (), ())
    setting = study.settings[0]
    assert setting == R.Setting("fc", "simple-fc", {"epochs": 2, "milestones": (1,)},
                                (R.Published("test accuracy", 0.9, "test_acc", "torch"),))
    assert setting.runs == (("native", ("torch", "keras")), ("harmonized", ("torch", "keras"))) and setting.seeds == 3


def test_published_numbers_are_the_reports():
    """A few anchors from ../shared/seeds/README.md, so a typo in the table fails."""
    values = {(s.report, p.what): p.value for s in R.STUDIES.values() for st in s.settings for p in st.published}
    assert values[("000", "TensorFlow test accuracy")] == 0.9909
    assert values[("001", "test accuracy, average pooling")] == 0.9359
    assert values[("001", "training accuracy, epoch 1, relu")] == 0.563
    assert values[("001", "training loss, epoch 5, one conv block")] == 0.2054
    assert values[("002", "test accuracy, 20 epochs")] == 0.4854
    assert values[("003", "test accuracy, 2 more at lr 0.001")] == 0.9932
    assert [p.value for s in R.STUDIES["004"].settings for p in s.published if p.epoch is None] == [
        0.9860, 0.9860, 0.9932, 0.9932, 0.9911, 0.9911]  # each model with channel BN and as published
    assert values[("004", "epoch 1: validation (test set) accuracy")] == 0.9849  # keras5's (the last)
    assert [p.value for p in R.STUDIES["004"].settings[5].published][1:] == [0.0635, 0.9808, 0.0502, 0.9867,
                                                                           0.0311]  # keras7, as published


def test_values_are_read_at_the_published_epoch():
    epochs = [EpochRecord(e, 1e-3, 1.0 / e, 0.5 + e / 100, 0.4, 0.6 + e / 100, 10.0, 1.0, 0.3, 0.7 + e / 100)
              for e in (1, 2, 3)]
    r = RunResult("torch", {}, {}, Optimizer("sgd", 0.1), epochs, 0.25, 0.99, steps=[[10, 0.9], [20, 0.8]])
    assert R._value(r, "test_acc", 2) == pytest.approx(0.72)
    assert R._value(r, "test_acc", None) == R._value(r, "test_acc", 3) == 0.99  # the end: the final test
    assert R._value(r, "total_time_s", 2) == 20.0 and R._value(r, "train_acc", 1) == pytest.approx(0.51)
    assert R._value(r, "train_loss_last", None) == 0.8


def test_prediction_interval_by_hand():
    # mean 2, sd 1, n 3: t(0.975, 2) = 4.302653, half = 4.302653 * sqrt(4/3)
    lo, hi = stats.prediction_interval([1.0, 2.0, 3.0])
    assert hi - 2 == pytest.approx(4.302653 * (4 / 3) ** 0.5, abs=1e-5) and lo == pytest.approx(4 - hi)


@pytest.mark.slow
@pytest.mark.parametrize("report", R.STUDIES)
def test_smoke_study_fills_every_row(report, mnist_path, tmp_path):
    s = R.reproduce(report, tmp_path, smoke=True, data_dir=mnist_path, progress=False, command="test")
    study = R.STUDIES[report]
    published = sum(len(st.published) * (2 if st.bn_pair else 1) for st in study.settings)
    sensitivity = sum(len(study.sensitivity_epochs) * (2 if st.bn_pair else 1) for st in study.settings)
    assert len(s["rows"]) == published + sensitivity
    for row in s["rows"]:
        setting = next(st for st in study.settings if st.name == row["setting"])
        for mode, backends in setting.runs:
            for b in backends:
                assert row[f"{b}_{mode}"] is not None and row[f"{b}_{mode}"]["n"] == 1, (row["what"], b, mode)
    saved = json.loads((tmp_path / report / "reproduce.json").read_text())
    assert saved["smoke"] is True and saved["rows"] == json.loads(json.dumps(s["rows"]))
    assert "SMOKE SIZE" in (tmp_path / report / "reproduce.md").read_text()
    assert [x["setting"] for x in s["spent"]] == [st.name for st in study.settings]
    assert all(len(d["seconds"]) == d["planned"] and x["machines"] for x in s["spent"] for d in x["backends"].values())
    assert s["run_time_s"] == sum(sum(d["seconds"]) for x in s["spent"] for d in x["backends"].values()) > 0
    assert [(c["setting"], c["paired"]["n"]) for c in s["costs"]] == [(st.name, 1) for st in study.settings
                                                                       if st.against]
    assert s["figures"] == [f.file for f in study.figures]  # the report's figures, from the runs
    for name in s["figures"]:
        assert (tmp_path / report / name).read_bytes()[:4] == b"\x89PNG"


def test_every_published_number_has_the_reports_known_differences():
    """The causes a published value outside our runs' range is read against
    (test_documents: how the table shows them)."""
    for study in R.STUDIES.values():
        for setting in study.settings:
            assert not setting.published or setting.differences, (study.report, setting.name)


@pytest.mark.slow
def test_only_trains_the_named_settings(mnist_path, tmp_path):
    """--only: the named setting trains; the others keep their table rows, empty (nothing
    of theirs ran); a name the report does not have is one error naming its settings."""
    s = R.reproduce("003", tmp_path, smoke=True, data_dir=mnist_path, progress=False, command="test",
                    only=["simple-fc"])
    trained = {r["setting"] for r in s["rows"] if r.get("torch_native")}
    assert trained == {"simple-fc"} and sorted(p.name for p in (tmp_path / "003").iterdir() if p.is_dir()) == [
        "simple-fc"]
    assert {r["setting"] for r in s["rows"]} > trained  # every published number still has its row
    with pytest.raises(R.ConfigError, match=r"Report 003 has no setting keras3-cnn\. Its settings: simple-fc, "):
        R.reproduce("003", tmp_path, smoke=True, data_dir=mnist_path, progress=False, only=["keras3-cnn"])


def test_the_cost_of_batchnorm_on_axis_1_is_paired_by_seed(tmp_path):
    """Report 004's -axis1 settings against their channel-BN twins: per seed, the twin's
    test accuracy at epoch 12 minus the axis-1 run's, from the runs on disk."""
    study = R.STUDIES["004"]
    axis1 = next(s for s in study.settings if s.name == "keras3-cnn-axis1")
    assert axis1.against == "keras3-cnn"
    for name, accs in (("keras3-cnn", (0.986, 0.984)), ("keras3-cnn-axis1", (0.980, 0.981))):
        for seed, acc in enumerate(accs):
            epochs = [EpochRecord(e, 1e-3, 0.1, 0.9, None, None, 1.0, 1.0, 0.1, acc if e == 12 else 0.5)
                      for e in range(1, 13)]
            _write_run(tmp_path, study, name, "native", "keras", seed, epochs, acc)
    read = {s.name: R._runs(tmp_path / s.name, s, R._config(s, False)) for s in study.settings
            if s.name in ("keras3-cnn", "keras3-cnn-axis1")}
    cost = R._cost(study, axis1, R.n_seeds_of(study, False, None), read)
    assert cost["against"] == "keras3-cnn" and cost["framework"] == "keras"
    assert cost["paired"]["n"] == 2 and cost["paired"]["mean_diff"] == pytest.approx(0.0045)
    md = D.study_markdown({"report": "004", "title": "t", "command": "c", "date": "d", "run_time_s": 0, "smoke": False,
                           "protocol": "p", "rows": [], "costs": [cost]})
    assert "| keras3-cnn-axis1 | keras3-cnn | keras | +0.45 [" in md


def _write_run(base, study, name, mode, backend, seed, epochs, acc, **config):
    """A finished run of the setting as its study plans it (its spec and protocol), with
    these epochs; ``config``: settings that differ from the plan's."""
    from dataclasses import asdict, replace

    from mnistcnn import spec as S
    from mnistcnn.compare import plan

    setting = next(s for s in study.settings if s.name == name)
    job = next(j for j in plan(setting.spec(), base / name / mode, setting.seeds, R._config(setting, False),
                               (backend,), setting.bn_pair, (mode,)) if j.key.seed == seed)
    cfg = replace(job.config, **config)
    job.out.mkdir(parents=True)
    (job.out / "result.json").write_text(RunResult(
        backend, S.to_dict(cfg.trained_spec(job.spec, backend)), json.loads(json.dumps(asdict(cfg))),
        Optimizer(cfg.optimizer, cfg.lr), epochs, 0.1, acc, completed=True).to_json())


def test_a_finished_run_of_another_protocol_is_an_error_not_a_row(tmp_path):
    """A setting changed since its runs finished (report 001's Keras optimizer did): its
    old runs are not tabulated as its own; the error names the run and what differs."""
    study = R.STUDIES["003"]
    epochs = [EpochRecord(e, 1e-3, 0.1, 0.9, None, None, 1.0, 1.0, 0.1, 0.9) for e in range(1, 6)]
    _write_run(tmp_path / "003", study, "simple-fc", "native", "torch", 0, epochs, 0.9)
    s = R.reproduce("003", tmp_path, progress=False, train=False)
    assert next(r for r in s["rows"] if r["setting"] == "simple-fc")["torch_native"]["n"] == 1
    _write_run(tmp_path / "003", study, "simple-fc", "native", "torch", 1, epochs, 0.9, momentum=0.5)
    with pytest.raises(R.ConfigError, match=r"simple-fc/native/runs/native/as-is/torch/seed1 holds a finished run "
                       r"with other settings than this one's: \{'momentum': \(0\.5, 0\.9\)\}"):
        R.reproduce("003", tmp_path, progress=False, train=False)


def test_a_failed_run_is_listed_until_a_finished_run_replaces_it(tmp_path):
    """A diverged run is a result the table cannot show: reproduce.md lists it with its
    error; an error file left beside a run that then finished is not listed."""
    runs = tmp_path / "simple-cnn-lr0.1" / "native" / "runs" / "native" / "as-is" / "torch"
    for seed in (0, 1):
        (runs / f"seed{seed}").mkdir(parents=True)
        (runs / f"seed{seed}" / "error.txt").write_text("TrainingDiverged: [torch] the training loss became nan\n")
    epochs = [EpochRecord(1, 0.1, 0.1, 0.9, None, None, 1.0, 1.0, 0.1, 0.98)]
    (runs / "seed0" / "result.json").write_text(RunResult("torch", {}, {}, Optimizer("sgd", 0.1), epochs, 0.1, 0.98,
                                                          completed=True).to_json())
    failed = R._failed(tmp_path)
    assert failed == [{"run": "simple-cnn-lr0.1/native/runs/native/as-is/torch/seed1",
                       "error": "TrainingDiverged: [torch] the training loss became nan"}]
    md = D.study_markdown({"report": "003", "title": "t", "command": "c", "date": "d", "run_time_s": 0, "smoke": False,
                           "protocol": "p", "rows": [], "failed": failed})
    assert "- `simple-cnn-lr0.1/native/runs/native/as-is/torch/seed1`: TrainingDiverged: [torch]" in md


def test_the_cost_table_names_each_machine_by_its_vector_extensions():
    """Two machines both named "AMD EPYC" ran report 000's runs 3-5x apart in speed: a run's machine
    is its model name with the extensions it recorded (runs from before that say so)."""
    assert R.machine({"cpu": "AMD EPYC", "cpu_count": 2, "cpu_extensions": ["avx2", "fma", "avx512f"]}) \
        == "AMD EPYC (avx2, fma, avx512f), 2 cores"
    assert R.machine({"cpu": "AMD EPYC", "cpu_count": 2}) == "AMD EPYC (extensions not recorded), 2 cores"
    assert R.machine({"cpu": "Old CPU", "cpu_count": 1, "cpu_extensions": []}) \
        == "Old CPU (no vector extensions named), 1 cores"


def test_report_000s_native_runs_continue_until_the_ci_is_narrow_enough(monkeypatch, tmp_path):
    """After its groups, report 000's model without BatchNorm trains on natively under
    compare's sequential rule (CI within +-0.1 pp, at most 30 seeds), not the BN variant:
    that is the precision its 0.29 pp question needs. --seeds and --smoke leave it out."""
    calls = []
    monkeypatch.setattr("mnistcnn.compare.compare", lambda spec, out, **kw: calls.append((out.name, kw)))
    R.reproduce("000", tmp_path, progress=False)
    assert [(mode, kw.get("ci_target_pp")) for mode, kw in calls] == [
        ("native", None), ("harmonized", None), ("native", 0.1)]
    last = calls[-1][1]
    assert (last["max_seeds"], last["variants"], last["modes"], last["seeds"]) == (30, ("no-bn",), ("native",), 3)
    calls.clear()
    R.reproduce("000", tmp_path, progress=False, seeds=2)
    assert [kw.get("ci_target_pp") for _, kw in calls] == [None, None]


def test_report_000s_further_seeds_are_read_up_to_the_last_one_trained(monkeypatch, tmp_path):
    """The table reads the sequential rule's seeds of the no-BN native runs, both
    frameworks up to the last seed either finished (a missing one stays a gap, so the
    frameworks stay paired by seed), and no more: the rule, not the maximum, plans them."""
    done = {("native", "no-bn", b, s) for b in ("torch", "keras") for s in (0, 1, 2, 3, 4)}
    done -= {("native", "no-bn", "keras", 4)}
    monkeypatch.setattr(R, "finished", lambda out, job: "run" if astuple(job.key) in done else None)
    setting = R.STUDIES["000"].settings[0]
    runs = R._runs(tmp_path, setting, R._config(setting, False))
    further = sorted(k for k in runs if k[3] >= 3)
    assert further == [("native", "no-bn", b, s) for b in ("keras", "torch") for s in (3, 4)]
    assert runs[("native", "no-bn", "keras", 4)] is None and runs[("native", "no-bn", "torch", 4)] == "run"
    assert len(runs) == 3 * 2 * 2 * 2 + 4  # the 3 seeds of both groups, both variants; then the further ones


def test_every_settings_native_runs_train_before_any_harmonized_run(monkeypatch, tmp_path):
    """A study stopped half-way has its native runs (what a published number is read
    against) in every setting, not every run of its first settings."""
    calls = []
    monkeypatch.setattr("mnistcnn.compare.compare", lambda spec, out, **kw: calls.append(
        (out.parent.name, kw["modes"][0], kw["backends"])))
    R.reproduce("003", tmp_path, progress=False, only=["simple-fc", "simple-cnn", "mlp-lr0.0001"])
    fc, cnn, mlp = "simple-fc", "simple-cnn", "mlp-lr0.0001"
    assert [(name, mode) for name, mode, _ in calls] == [
        (fc, "native"), (cnn, "native"), (mlp, "native"), (fc, "harmonized"), (cnn, "harmonized"),
        (mlp, "harmonized"), (mlp, "native+init"), (mlp, "native+optimizer")]


def test_reproduce_all_runs_report_000_last(monkeypatch, tmp_path):
    """Report 000's seeds continue for hours (its precision rule): `reproduce all` gives
    every other report's rows first."""
    from mnistcnn.cli import main

    order = []
    monkeypatch.setattr(R, "reproduce", lambda report, out, **kw: order.append(report) or
                        {"rows": [], "complete": True})
    assert main(["reproduce", "all", "--out", str(tmp_path), "--quiet"]) == 0
    assert order == ["001", "002", "003", "004", "000"]



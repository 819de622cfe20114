"""The Python entry and what it returns: mnistcnn.compare / sweep / load_*, and how results,
specs, the defaults ledger and parity show themselves (text, HTML, Markdown, records,
pandas, figures), with real tiny runs."""
import inspect
import sys

import pytest

import mnistcnn
from mnistcnn import train
from mnistcnn.errors import ConfigError

TINY = dict(epochs=1, train_limit=256, val_size=128, test_limit=500)


def test_compare_is_the_module_and_the_function():
    import mnistcnn.compare as module
    from mnistcnn.compare import compare, plan  # the module's names, as before

    assert mnistcnn.compare is module and callable(mnistcnn.compare) and callable(plan)
    assert inspect.signature(mnistcnn.compare) == inspect.signature(compare)
    assert mnistcnn.sweep is module.sweep
    assert {"compare", "sweep", "load_comparison", "load_sweep", "load_run"} <= set(mnistcnn.__all__)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "simple"
    return mnistcnn.compare("simple-cnn", out, seeds=2, cfg=train.TrainConfig(**TINY), isolate=False,
                            progress=False)


@pytest.mark.slow
def test_comparison_shows_its_verdicts_tables_and_figures(comparison):
    text = str(comparison)
    assert text.startswith("simple-cnn: torch vs keras, 2 seeds, 1 epoch on 256 training images")
    assert "no-bn, harmonized: " in text and "bn, harmonized: " in text
    assert repr(comparison) == text
    html, md = comparison._repr_html_(), comparison._repr_markdown_()
    assert html.count("<table>") == 2
    assert "<li>no-bn, harmonized: " in html and "torch − keras" in html
    assert "| mode | variant | backend | seeds | test acc % |" in md
    runs = comparison.records()
    assert len(runs) == 8 and {"mode", "variant", "backend", "seed", "test_acc"} <= set(runs[0])
    groups = comparison.records("groups")
    assert len(groups) == 4 and "test_acc_mean" in groups[0] and "test_acc" not in groups[0]
    assert comparison.to_pandas("paired").shape[0] == 2
    with pytest.raises(ValueError, match="expected one of runs, groups, paired, ablation"):
        comparison.records("epochs")
    figs = comparison.plot()
    assert list(figs)[0] == "forest" and {"train_val_loss", "accuracy", "test_accuracy"} <= set(figs)
    assert type(figs["forest"]).__name__ == "Figure"
    assert figs._repr_html_().count("data:image/png;base64,") == len(figs)
    assert list(comparison.plot("forest", "accuracy")) == ["forest", "accuracy"]
    with pytest.raises(ValueError, match="Unknown figure"):
        comparison.plot("histogram")


@pytest.mark.slow
def test_a_comparison_reopens_from_its_directory(comparison, tmp_path):
    again = mnistcnn.load_comparison(comparison.directory)
    assert str(again) == str(comparison) and again.to_json() == comparison.to_json()
    assert len(again.run_results()) == 8
    assert set(again.plot()) == set(comparison.plot())
    paths = again.plot("forest").save(tmp_path)
    assert [p.name for p in paths] == ["forest.png"] and paths[0].stat().st_size > 1000
    run = mnistcnn.load_run(comparison.directory / "runs" / "harmonized" / "bn" / "keras" / "seed0")
    assert str(run).startswith("simple-cnn[bn] in keras (harmonized, seed 0): test accuracy ")
    assert "<table>" in run._repr_html_() and "| epoch | train loss |" in run._repr_markdown_()
    assert run.records()[0]["epoch"] == 1 and run.to_pandas().shape[0] == 1
    assert list(run.plot()) == ["loss", "accuracy"]
    with pytest.raises(ConfigError, match="Cannot read"):
        mnistcnn.load_comparison(tmp_path / "nothing")


@pytest.mark.slow
def test_a_sweep_shows_itself_and_reopens(tmp_path):
    s = mnistcnn.sweep("simple-cnn", {"lr": [0.01, 0.001]}, tmp_path / "sw", cfg=train.TrainConfig(**TINY),
                       backends=("torch",), isolate=False, progress=False)
    assert isinstance(s, dict) and len(s["rows"]) == 2  # still the dict sweep.json holds
    assert str(s).startswith("Sweep of simple-cnn over lr=0.01,0.001: torch, 1 seed, 1 epoch")
    assert "torch: best lr=" in str(s) and "<table>" in s._repr_html_() and "| cell | backend |" in s._repr_markdown_()
    assert [r["lr"] for r in s.records()] == [0.01, 0.001] and "test_acc_mean" in s.records()[0]
    assert list(s.plot()) == ["test_accuracy", "val_accuracy"]
    again = mnistcnn.load_sweep(tmp_path / "sw")
    assert again == s and str(again) == str(s) and len(again.run_results()) == 2


def test_to_pandas_without_pandas_names_the_extra(monkeypatch):
    from mnistcnn.results import SweepSummary

    monkeypatch.setitem(sys.modules, "pandas", None)
    s = SweepSummary({"spec": "x", "grid": {}, "seeds": 1, "backends": [], "config": {}, "rows": []})
    with pytest.raises(ImportError, match=r"pip install 'mnistcnn\[notebook\]'"):
        s.to_pandas()


def test_a_spec_shows_its_summary_as_a_table():
    spec = mnistcnn.zoo.get("seed000-cnn")
    html, md = spec._repr_html_(), spec._repr_markdown_()
    assert html.count("<tr>") == len(spec.rows) + 1  # the head and one row per layer
    assert f"Total params: {spec.total_params:,}" in html
    assert md.splitlines()[3] == "|---|---|---:|---:|"


def test_the_ledger_shows_as_a_table():
    from mnistcnn.defaults import Ledger

    rows = Ledger([{"item": "init", "label": "initial weights", "torch": "kaiming", "keras": "glorot",
                    "harmonized": "kaiming in both", "differs": True}])
    assert "<td style=\"text-align:left\">glorot</td>" in rows._repr_html_()
    assert "| initial weights | kaiming | glorot | kaiming in both | **yes** |" in rows._repr_markdown_()


@pytest.mark.slow
def test_a_parity_result_prints_its_report_and_shows_tables():
    from mnistcnn import data, parity

    ds = data.load("mnist")
    result = parity.run(mnistcnn.zoo.get("simple-cnn"), data.normalize(ds.x_test[:4]), ds.y_test[:4], tiers=(1,))
    assert str(result) == parity.format_report(result)
    assert result._repr_html_().count("<table>") == 1 and "conv2d_0 (Conv2D)" in result._repr_markdown_()

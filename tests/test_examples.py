"""The examples cannot rot: every lesson runs in its smoke setting (MNISTCNN_SMOKE=1: a
few hundred images, one seed, in the script's own process), and the notebook executes
with a real kernel, its outputs checked."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LESSONS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))

#: what each lesson prints when it ran to its end
LAST_WORDS = {
    "01_compare_a_spec.py": "saved: runs/examples/lesson-1/figures/forest.png",
    "02_compare_your_own_model.py": "my-torch-net: torch vs keras, 1 seed, 1 epoch on 128 training images",
    "03_batchnorm_loss_curves.py": "native     bn    keras test accuracy",
    "04_sweep_one_setting.py": "figures: runs/examples/lesson-4/figures/test_accuracy.png",
    "05_weights_across_frameworks.py": "same predicted digit on 200 of 200 test images",
    "06_native_vs_harmonized.py": "figures: runs/examples/lesson-6/figures/forest.png",
}


def _smoke_env(mnist_path) -> dict:
    return {**os.environ, "MNISTCNN_SMOKE": "1", "MNISTCNN_DATA_DIR": str(mnist_path)}


def test_every_lesson_is_listed_and_tested():
    assert LESSONS == sorted(LAST_WORDS)
    readme = (EXAMPLES / "README.md").read_text()
    assert all(f"[{name}]({name})" in readme for name in LESSONS + ["01_compare_a_spec.ipynb"])


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS)
def test_a_lesson_runs_in_its_smoke_setting(lesson, mnist_path, tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLES / lesson)], cwd=tmp_path, env=_smoke_env(mnist_path),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert LAST_WORDS[lesson] in out.stdout, out.stdout[-3000:]
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_the_notebook_executes_and_shows_its_tables_and_figures(mnist_path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for key, value in _smoke_env(mnist_path).items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(EXAMPLES / "01_compare_a_spec.ipynb", as_version=4)
    committed = [c.outputs for c in nb.cells if c.cell_type == "code"]
    assert all(committed), "the committed notebook shows every cell's output"
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [c.outputs for c in nb.cells if c.cell_type == "code"]
    assert not [o for cell in outputs for o in cell if o.output_type == "error"]
    html = ["".join(o.get("data", {}).get("text/html", "") for o in cell) for cell in outputs]
    spec_cell, result_cell, pandas_cell, plot_cell = html[0], *html[2:5]
    compare_cell, load_cell = outputs[1], outputs[5]
    assert "conv2d_0 (Conv2D)" in spec_cell and "Total params: 114,314" in spec_cell
    assert "plan: runs to train 2" in "".join(o.get("text", "") for o in compare_cell)  # progress shown
    assert "<li>as-is, harmonized: one seed only" in result_cell and "torch − keras" in result_cell
    assert "<table" in pandas_cell and "test_acc" in pandas_cell  # a pandas DataFrame
    assert plot_cell.count("data:image/png;base64,") == 2  # forest and accuracy, inline
    assert "lesson-cnn: torch vs keras, 1 seed" in "".join(o.get("text", "") for o in load_cell)
    assert (tmp_path / "runs" / "examples" / "lesson-1-notebook" / "report.md").exists()

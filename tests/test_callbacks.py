"""Callbacks receive the plain records in order; TensorBoard event files are the same for
both backends and a PyTorch run does not import TensorFlow to write them."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mnistcnn import train
from mnistcnn.callbacks import Callback
from mnistcnn.cli import main

REPO = Path(__file__).resolve().parents[1]
CFG = train.TrainConfig(epochs=2, train_limit=256, val_size=100, test_limit=100, batch_size=64, log_every=2)


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, result):
        self.calls.append(("begin", len(result.epochs), result.completed))

    def on_epoch_end(self, record, result):
        self.calls.append(("epoch", record.epoch, record.val_acc == result.epochs[-1].val_acc))

    def on_train_end(self, result):
        self.calls.append(("end", result.test_acc, result.completed))


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_callbacks_receive_plain_records_in_order(backend, mnist_path, tmp_path):
    rec = Recorder()
    result = train.run("simple-fc", backend, CFG, tmp_path, mnist_path, progress=False, callbacks=[rec])
    assert rec.calls == [("begin", 0, False), ("epoch", 1, True), ("epoch", 2, True),
                         ("end", result.test_acc, True)]


def test_a_resumed_run_calls_back_for_the_remaining_epochs(mnist_path, tmp_path):
    train.run("simple-fc", "torch", CFG, tmp_path, mnist_path, progress=False, stop_after=1)
    rec = Recorder()
    train.run("simple-fc", "torch", CFG, tmp_path, mnist_path, progress=False, resume=True, callbacks=[rec])
    assert [c[:2] for c in rec.calls[:2]] == [("begin", 1), ("epoch", 2)]


def _scalars(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(logdir))
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


@pytest.mark.slow
def test_tensorboard_events_same_tags_for_both_backends_and_no_tensorflow_in_a_torch_run(mnist_path, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    code = ("import sys, mnistcnn.train as t; "
            f"t.run('simple-fc', 'torch', t.TrainConfig(epochs=2, train_limit=256, val_size=100, test_limit=100, "
            f"batch_size=64, log_every=2), {str(tmp_path / 'torch')!r}, {str(mnist_path)!r}, progress=False); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
    keras = train.run("simple-fc", "keras", CFG, tmp_path / "keras", mnist_path, progress=False)
    t, k = _scalars(tmp_path / "torch" / "tensorboard"), _scalars(tmp_path / "keras" / "tensorboard")
    assert set(t) == set(k) and "accuracy/validation" in t and "loss/train (logged steps)" in t
    assert [v for _, v in k["accuracy/validation"]] == pytest.approx([e.val_acc for e in keras.epochs])
    assert [s for s, _ in k["loss/train (logged steps)"]] == [s for s, _ in keras.steps]
    torch_result = json.loads((tmp_path / "torch" / "result.json").read_text())
    assert t["final/test_accuracy"][0][1] == pytest.approx(torch_result["test_acc"])


def test_overwrite_leaves_only_the_new_runs_events(mnist_path, tmp_path):
    """Two runs into one directory with --overwrite: one final test accuracy under its tag,
    the second run's (the first's event file is gone, not read beside it)."""
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    train.run("simple-fc", "torch", CFG, tmp_path, mnist_path, progress=False)
    second = train.run("simple-fc", "torch", replace(CFG, seed=1), tmp_path, mnist_path, progress=False,
                       overwrite=True)
    final = _scalars(tmp_path / "tensorboard")["final/test_accuracy"]
    assert [v for _, v in final] == pytest.approx([second.test_acc])
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_cli_tensorboard_writes_events_from_result_files(mnist_path, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    result = train.run("simple-fc", "torch", CFG, tmp_path / "r", mnist_path, progress=False, tensorboard=False)
    assert not (tmp_path / "r" / "tensorboard").exists()
    assert main(["tensorboard", str(tmp_path)]) == 0
    assert "event files for 1 of 1 runs" in capsys.readouterr().out
    s = _scalars(tmp_path / "r" / "tensorboard")
    assert [v for _, v in s["loss/validation"]] == pytest.approx([e.val_loss for e in result.epochs])
    assert len(s["loss/train (logged steps)"]) == len(result.steps)
    assert main(["tensorboard", str(tmp_path / "nothing")]) == 2


def test_the_tracker_example_logs_params_metrics_and_the_result(mnist_path, tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTCNN_DATA_DIR", str(mnist_path))
    sys.path.insert(0, str(REPO / "examples"))
    try:
        import mlflow_callback
    finally:
        sys.path.pop(0)
    assert mlflow_callback.main(["--arch", "simple-fc", "--epochs", "2", "--train-limit", "256",
                                 "--out", str(tmp_path)]) == 0
    lines = [json.loads(x) for x in (tmp_path / "tracker.jsonl").read_text().splitlines()]
    assert lines[0] == {"kind": "tag", "key": "backend", "value": "torch"}
    metrics = [(x["key"], x["step"]) for x in lines if x["kind"] == "metric"]
    assert ("val_acc", 2) in metrics and metrics[-1] == ("test_loss", None)

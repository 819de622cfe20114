"""Log mnistcnn runs to an experiment tracker through a callback (MLflow-style).

mnistcnn's callbacks receive plain records (RunResult, EpochRecord), so a tracker needs
only a few lines. This example logs the way mlflow's API does (log_params, log_metric with
a step, set_tag) into a JSON-lines file, so that it runs without MLflow; with MLflow
installed, pass `--mlflow` and the same calls go to mlflow itself.

    python examples/mlflow_callback.py --epochs 2 --train-limit 5000
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mnistcnn import train
from mnistcnn.callbacks import Callback


class JsonLinesTracker:
    """The part of mlflow's API the callback uses, writing one JSON object per call."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def _write(self, **entry):
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def log_params(self, params: dict):
        self._write(kind="params", params=params)

    def log_metric(self, key: str, value: float, step: int | None = None):
        self._write(kind="metric", key=key, value=value, step=step)

    def set_tag(self, key: str, value: str):
        self._write(kind="tag", key=key, value=value)


class TrackerCallback(Callback):
    """Parameters at the start, metrics per epoch, the test result at the end."""

    def __init__(self, tracker):
        self.tracker = tracker

    def on_train_begin(self, result):
        self.tracker.set_tag("backend", result.backend)
        self.tracker.set_tag("spec", result.spec["name"])
        self.tracker.log_params({k: v for k, v in result.config.items() if v is not None})

    def on_epoch_end(self, record, result):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"):
            value = getattr(record, key)
            if value is not None:
                self.tracker.log_metric(key, value, step=record.epoch)

    def on_train_end(self, result):
        self.tracker.log_metric("test_acc", result.test_acc)
        self.tracker.log_metric("test_loss", result.test_loss)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="simple-cnn")
    p.add_argument("--backend", default="torch", choices=("torch", "keras"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-limit", type=int, default=5000)
    p.add_argument("--out", default="runs/tracker-example")
    p.add_argument("--mlflow", action="store_true", help="log to mlflow itself (must be installed)")
    args = p.parse_args(argv)
    if args.mlflow:
        import mlflow

        tracker = mlflow
        mlflow.start_run()
    else:
        tracker = JsonLinesTracker(Path(args.out) / "tracker.jsonl")
    cfg = train.TrainConfig(epochs=args.epochs, train_limit=args.train_limit)
    result = train.run(args.arch, args.backend, cfg, out=Path(args.out) / "run", overwrite=True,
                       callbacks=[TrackerCallback(tracker)])
    print(f"test accuracy {result.test_acc:.4f}; tracked: "
          f"{'mlflow' if args.mlflow else Path(args.out) / 'tracker.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Hooks into training, in the spirit of Keras' callbacks, receiving plain records.

``train.run(..., callbacks=[...])`` calls, for each callback:
  on_train_begin(result)          RunResult: backend, spec, config, environment (and, for a
                                  resumed run, the epochs already done)
  on_epoch_end(record, result)    EpochRecord of the epoch just finished
  on_train_end(result)            the finished RunResult (test loss and accuracy set)
Override any of them; the rest do nothing. A callback that raises stops the run like any
error (the last finished epoch's checkpoint is kept). See examples/mlflow_callback.py.

TensorBoard is one such callback: event files that overlay PyTorch and Keras runs in one
``tensorboard --logdir`` view, written with the tensorboard package alone (no TensorFlow
import in a PyTorch run): ``pip install 'mnistcnn[tensorboard]'``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

#: the subdirectory of a run directory that holds its event files
TENSORBOARD_DIR = "tensorboard"


class Callback:
    def on_train_begin(self, result) -> None:
        pass

    def on_epoch_end(self, record, result) -> None:
        pass

    def on_train_end(self, result) -> None:
        pass


def tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _event_classes():
    """TensorBoard's event writer and protos. Where TensorFlow is not loaded already, use
    TensorBoard's own switch to its TensorFlow stub (the module tensorboard.compat.notf),
    so that logging a PyTorch run does not import TensorFlow."""
    import types

    from .errors import BackendUnavailableError

    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ModuleNotFoundError:
        raise BackendUnavailableError("TensorBoard logs need the tensorboard package. Install with: "
                                      "pip install 'mnistcnn[tensorboard]'") from None
    return EventFileWriter, Event, Summary


class TensorBoard(Callback):
    """Scalars per epoch (loss and accuracy, train as the epoch's running mean and
    validation/test at the epoch's end, the learning rate, images/s) and the logged
    training-loss steps, into ``logdir``. Tags are the same for every backend."""

    def __init__(self, logdir):
        self.logdir = Path(logdir)
        self._writer = None
        self._steps_done = 0

    def _scalars(self, step: int, values: dict) -> None:
        _, Event, Summary = _event_classes()
        summary = Summary(value=[Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()
                                 if v is not None])
        self._writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))

    def on_train_begin(self, result) -> None:
        EventFileWriter, _, _ = _event_classes()
        self.logdir.mkdir(parents=True, exist_ok=True)
        if not result.epochs:  # a run from its start replaces the events of one before it (--overwrite)
            for old in self.logdir.glob("events.out.tfevents.*"):
                old.unlink()
        self._writer = EventFileWriter(str(self.logdir))
        self._steps_done = len(result.steps)  # a resumed run: those were logged before

    def on_epoch_end(self, record, result) -> None:
        self._scalars(record.epoch, {
            "loss/train (running mean over the epoch)": record.train_loss,
            "loss/validation": record.val_loss, "loss/test": record.test_loss,
            "accuracy/train (running mean over the epoch)": record.train_acc,
            "accuracy/validation": record.val_acc, "accuracy/test": record.test_acc,
            "learning_rate": record.lr, "images_per_s": record.images_per_s})
        for step, loss in result.steps[self._steps_done:]:
            self._scalars(int(step), {"loss/train (logged steps)": loss})
        self._steps_done = len(result.steps)
        self._writer.flush()

    def on_train_end(self, result) -> None:
        if result.test_acc is not None:
            self._scalars(len(result.epochs), {"final/test_loss": result.test_loss,
                                               "final/test_accuracy": result.test_acc})
        self._writer.close()


def write_tensorboard(result, logdir) -> Path:
    """The event files of a finished (or interrupted) run from its RunResult alone: what
    ``mnistcnn tensorboard`` writes for runs made without the package. (The logged steps
    carry their own step numbers, so they are written together after the epochs.)"""
    import copy

    tb = TensorBoard(logdir)
    replay = copy.copy(result)
    replay.steps = []
    tb.on_train_begin(replay)
    for i, record in enumerate(result.epochs):
        replay.steps = result.steps if i == len(result.epochs) - 1 else []
        tb.on_epoch_end(record, replay)
    tb.on_train_end(result)
    return Path(logdir)

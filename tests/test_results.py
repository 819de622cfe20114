"""Run results as plain data: JSON and CSV round trips, errors."""
import json

from mnistcnn.config import Optimizer
from mnistcnn.results import EpochRecord, RunError, RunResult


def result() -> RunResult:
    return RunResult("keras", {"name": "x"}, {"seed": 4}, Optimizer("adam", 1e-3, eps=1e-8),
                     epochs=[EpochRecord(1, 1e-3, 0.5, 0.8, 0.4, 0.85, 2.0, 1000.0)],
                     test_loss=0.3, test_acc=0.9, completed=True)


def test_json_round_trip_with_typed_optimizer():
    r = result()
    again = RunResult.from_json(r.to_json())
    assert again == r and isinstance(again.optimizer, Optimizer)
    assert json.loads(r.to_json())["optimizer"]["formulas"] == "torch"


def test_reads_result_files_written_before_the_optimizer_type():
    d = json.loads(result().to_json())
    d["optimizer"] = {k: v for k, v in d["optimizer"].items() if k != "formulas"} | {"form": "keras"}
    assert RunResult.from_json(json.dumps(d)).optimizer.formulas == "native"


def test_epochs_csv():
    rows = result().epochs_csv().strip().split("\n")
    assert rows == ["backend,seed,epoch,lr,train_loss,train_acc,val_loss,val_acc,time_s,images_per_s,"
                    "test_loss,test_acc,cpu_s,load_avg", "keras,4,1,0.001,0.5,0.8,0.4,0.85,2.0,1000.0,,,,"]


def test_run_error_keeps_the_cause():
    e = RunError("Traceback ...\nDataError: t10k-images missing")
    assert e.last_line == "DataError: t10k-images missing"
    assert RunError("").last_line == ""

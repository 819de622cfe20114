"""The shared training protocol on real MNIST, in both real backends."""
import json
import os
from dataclasses import replace

import numpy as np
import pytest

from mnistcnn import data, train, zoo
from mnistcnn import weights as W
from mnistcnn.backends import get_backend
from mnistcnn.cli import main
from mnistcnn.errors import ConfigError, TrainingDiverged
from mnistcnn.spec import BatchNorm, Dense, Flatten, ModelSpec

TORCH, KERAS = "torch", "keras"


def test_epoch_order_is_a_seeded_permutation():
    a = train.epoch_order(0, 0, 1000)
    assert sorted(a) == list(range(1000))
    assert (a == train.epoch_order(0, 0, 1000)).all()
    assert not (a == train.epoch_order(0, 1, 1000)).all()
    assert not (a == train.epoch_order(1, 0, 1000)).all()


@pytest.fixture(scope="module")
def real(mnist):
    x = data.normalize(mnist.x_train[:2048])
    return x, mnist.y_train[:2048]


def _trainers(spec, opt_cfg, weights, real):
    out = []
    for name in (TORCH, KERAS):
        t = get_backend(name).Trainer(spec, opt_cfg.optimizer_for(name), 0, weights)
        t.set_data(*real)
        out.append(t)
    return out


@pytest.mark.parametrize("cfg", [
    train.TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9),
    train.TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    train.TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-3),
    train.TrainConfig(optimizer="rmsprop", lr=1e-3, momentum=0.5),
    train.TrainConfig(optimizer="adadelta", lr=1.0),
], ids=["sgd", "sgd-nesterov-wd", "adam-wd", "rmsprop-momentum", "adadelta"])
def test_harmonized_optimizers_give_the_same_weights(cfg, real):
    """Same init, same batches, PyTorch's formulas in both: after 2 epochs of 8 steps
    (with a learning-rate change between them) the weights agree to 1e-4 absolute."""
    spec = ModelSpec("fc", [Flatten(), Dense(32, activation="tanh"), BatchNorm(0.9, 1e-5), Dense(10)])
    t, k = _trainers(spec, cfg, W.initial(spec, 1), real)
    order = train.epoch_order(0, 0, 256)
    for lr in (cfg.lr, cfg.lr / 3):
        lt = t.train_epoch(order, 32, lr, 0)
        lk = k.train_epoch(order, 32, lr, 0)
        assert lt[0] == pytest.approx(lk[0], rel=1e-4)
    wt, wk = t.get_weights(), k.get_weights()
    worst = max(float(np.abs(wt[n] - wk[n]).max()) for n in wt)
    assert worst < 1e-4, f"max weight difference {worst:.2e}"


def test_native_adam_epsilon_placement_differs(real):
    """Keras' epsilon-hat vs PyTorch's epsilon: with a large epsilon the two native
    optimizers measurably diverge; harmonized they do not (previous test)."""
    spec = ModelSpec("fc", [Flatten(), Dense(10)])
    cfg = train.TrainConfig(optimizer="adam", defaults="native", eps=1e-1, lr=0.01)
    t, k = _trainers(spec, cfg, W.initial(spec, 1), real)
    order = train.epoch_order(0, 0, 256)
    t.train_epoch(order, 32, 0.01, 0)
    k.train_epoch(order, 32, 0.01, 0)
    wt, wk = t.get_weights(), k.get_weights()
    assert float(np.abs(wt["dense_1.kernel"] - wk["dense_1.kernel"]).max()) > 1e-3


def test_identical_initial_outputs_harmonized(mnist):
    """seed000-cnn from the same numpy weights: logits on 256 real test images agree
    within 1e-4 absolute (magnitudes ~1); the measured maximum is reported."""
    spec = zoo.get("seed000-cnn")
    w = W.initial(spec, 0)
    x = data.normalize(mnist.x_test[:256])
    outs = []
    for name in (TORCH, KERAS):
        b = get_backend(name)
        model = b.build(spec)
        b.set_weights(model, spec, w)
        outs.append(b.predict(model, spec, x))
        assert all(np.array_equal(v, w[k]) for k, v in b.get_weights(model, spec).items())
    diff = float(np.abs(outs[0] - outs[1]).max())
    print(f"max |torch - keras| initial logits: {diff:.2e} (max |logit| {np.abs(outs[0]).max():.2f})")
    assert diff < 1e-4


def _fields(result):
    return [(e.lr, e.train_loss, e.train_acc, e.val_loss, e.val_acc) for e in result.epochs]


SHORT = dict(epochs=2, train_limit=1024, val_size=512, batch_size=64, seed=3)


@pytest.mark.slow
@pytest.mark.parametrize("backend", [TORCH, KERAS])
def test_resume_equals_uninterrupted_and_runs_are_deterministic(backend, mnist_path, tmp_path):
    """pytorch-examples-net has Dropout and Dropout2d: their masks must also continue."""
    cfg = train.TrainConfig(**SHORT, optimizer="sgd", lr=0.05, momentum=0.5)
    full = train.run("pytorch-examples-net", backend, cfg, tmp_path / "a", mnist_path, progress=False)
    again = train.run("pytorch-examples-net", backend, cfg, tmp_path / "b", mnist_path, progress=False)
    assert _fields(full) == _fields(again) and full.test_loss == again.test_loss

    part = train.run("pytorch-examples-net", backend, cfg, tmp_path / "c", mnist_path,
                     progress=False, stop_after=1)
    assert len(part.epochs) == 1 and not part.completed
    saved = json.loads((tmp_path / "c" / "result.json").read_text())
    assert len(saved["epochs"]) == 1 and saved["completed"] is False
    resumed = train.run("pytorch-examples-net", backend, cfg, tmp_path / "c", mnist_path,
                        progress=False, resume=True)
    assert _fields(resumed) == _fields(full)
    assert resumed.test_loss == full.test_loss and resumed.confusion == full.confusion
    assert resumed.steps == full.steps  # the loss log before the interruption is kept


def test_resume_refuses_other_settings(mnist_path, tmp_path):
    cfg = train.TrainConfig(**SHORT)
    train.run("simple-fc", TORCH, cfg, tmp_path, mnist_path, progress=False, stop_after=1)
    with pytest.raises(ConfigError, match=r"Cannot resume .* started with other settings \{'lr'"):
        train.run("simple-fc", TORCH, train.TrainConfig(**SHORT, lr=0.1), tmp_path, mnist_path,
                  progress=False, resume=True)
    # the thread count a study's --workers chose: the message says which --workers resumes it
    with pytest.raises(ConfigError, match=r"\{'threads': \(None, 1\)\}\. Use the same settings \(compare, sweep "
                       r"and reproduce .*: resume with the same `workers`\) or another `out`\."):
        train.run("simple-fc", TORCH, train.TrainConfig(**SHORT, threads=1), tmp_path, mnist_path,
                  progress=False, resume=True)


@pytest.fixture(scope="module")
def short_runs(mnist_path, tmp_path_factory):
    """seed000-cnn, one epoch over 12,800 real training images (200 steps of 64)."""
    cfg = train.TrainConfig(epochs=1, train_limit=12_800, val_size=5_000, batch_size=64, seed=0)
    out = tmp_path_factory.mktemp("short")
    return {b: train.run("seed000-cnn", b, cfg, out / b, mnist_path, progress=False, tune_allocator=True)
            for b in (TORCH, KERAS)}


@pytest.mark.slow
@pytest.mark.parametrize("backend", [TORCH, KERAS])
def test_short_real_run_learns(short_runs, backend):
    r = short_runs[backend]
    assert r.test_acc > 0.95, r.test_acc
    assert r.epochs[0].val_acc > 0.95
    assert np.array(r.confusion).sum() == 10_000
    assert np.trace(np.array(r.confusion)) == round(r.test_acc * 10_000)
    # the loss curve: every 10 steps, 200 steps in all, and it falls
    assert [s for s, _ in r.steps] == list(range(10, 201, 10))
    assert r.steps[-1][1] < r.steps[0][1] / 3
    # the timing's context: CPU time spent (more than nothing, bounded by the threads) and the load
    e = r.epochs[0]
    assert 0 < e.cpu_s <= e.time_s * (os.cpu_count() or 1) * 1.05 + 0.5 and e.load_avg >= 0


@pytest.mark.slow
def test_short_runs_agree_across_backends(short_runs):
    """Harmonized: same init, batches and formulas; only float rounding (and no dropout
    in seed000-cnn) separates the two, so the curves nearly coincide."""
    t, k = short_runs[TORCH], short_runs[KERAS]
    assert t.epochs[0].train_loss == pytest.approx(k.epochs[0].train_loss, rel=1e-2)
    assert abs(t.test_acc - k.test_acc) < 0.005


@pytest.fixture(scope="module")
def bf16_and_fp32_runs(mnist_path, tmp_path_factory):
    """seed000-cnn, 100 steps of 64 real images, in bfloat16 mixed precision and in float32
    (bfloat16 is slow on a CPU without bfloat16 units, so these runs are short)."""
    out = tmp_path_factory.mktemp("short-bf16")
    runs = {}
    import warnings

    with warnings.catch_warnings():  # the warning on CPUs without bfloat16 units is tested in test_runtime.py
        warnings.filterwarnings("ignore", "--precision bfloat16", RuntimeWarning)
        runs.update(_precision_runs(mnist_path, out))
    return runs


def _precision_runs(mnist_path, out):
    runs = {}
    for precision in ("bfloat16", "float32"):
        cfg = train.TrainConfig(epochs=1, train_limit=6_400, val_size=0, test_limit=2_000, batch_size=64,
                                seed=0, precision=precision)
        for b in (TORCH, KERAS):
            runs[(precision, b)] = train.run("seed000-cnn", b, cfg, out / precision / b, mnist_path,
                                             progress=False)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("backend", [TORCH, KERAS])
def test_bfloat16_runs_learn_like_float32(bf16_and_fp32_runs, backend):
    """bfloat16 keeps 8 bits of mantissa: the run differs from float32 in its details,
    not in what it learns (within one point of test accuracy on 2,000 test images after 100 steps)."""
    r, ref = bf16_and_fp32_runs[("bfloat16", backend)], bf16_and_fp32_runs[("float32", backend)]
    assert r.config["precision"] == "bfloat16"
    assert r.test_acc > 0.9 and abs(r.test_acc - ref.test_acc) < 0.01, (r.test_acc, ref.test_acc)
    assert r.epochs[0].train_loss != ref.epochs[0].train_loss  # it did compute differently


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_weights(mnist):
    import torch

    cfg = train.TrainConfig()
    spec = cfg.trained_spec(zoo.get("seed000-cnn"), TORCH)
    x, y = data.normalize(mnist.x_train[:64]), mnist.y_train[:64]
    t = get_backend(TORCH).Trainer(spec, cfg.optimizer_for(TORCH), 0, precision="bfloat16")
    seen = []
    t.model[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    t.set_data(x, y)
    t.train_epoch(np.arange(64), 64, 1e-3, 0)
    assert seen == [torch.bfloat16]
    assert {p.dtype for p in t.model.parameters()} == {torch.float32}
    k = get_backend(KERAS).Trainer(spec, cfg.optimizer_for(KERAS), 0, precision="bfloat16")
    conv = k.model.get_layer("conv2d_0")
    assert (conv.compute_dtype, conv.variable_dtype) == ("bfloat16", "float32")
    assert k.evaluate(x, y)[0] > 0  # logits come back as float32 for the loss


@pytest.mark.slow
def test_run_files_are_plain_data(short_runs, tmp_path):
    r = short_runs[TORCH]
    again = train.RunResult.from_json(r.to_json())
    assert again == r
    rows = r.epochs_csv().strip().split("\n")
    assert len(rows) == 1 + len(r.epochs) and rows[0].startswith("backend,seed,epoch,lr")
    assert r.environment["torch"].startswith("2.") and r.environment["threads"] >= 1
    assert r.environment["allocator"].startswith("glibc mallopt: mmap_threshold 32 MiB")
    # the CPU's vector extensions, read from /proc/cpuinfo: avx2 on every machine this runs on
    assert "avx2" in r.environment["cpu_extensions"] and r.environment["cpu"]
    assert short_runs[KERAS].environment["keras_backend"] == "tensorflow"


def test_cli_train_evaluate_and_resume(mnist_path, tmp_path, capsys):
    args = ["train", "--arch", "simple-fc", "--backend", "torch", "--epochs", "2", "--train-limit", "2000",
            "--val-size", "500", "--optimizer", "sgd", "--lr", "0.1", "--out", str(tmp_path / "r"),
            "--data-dir", str(mnist_path), "--quiet"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["completed"] and result["config"]["optimizer"] == "sgd"
    assert main(args + ["--resume"]) == 0  # a finished run resumes to itself
    assert main(["evaluate", str(tmp_path / "r" / "checkpoint" / "weights.npz"), "--backend",
                 "keras", "--data-dir", str(mnist_path)]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["test_acc"] == pytest.approx(result["test_acc"], abs=2e-4)


def test_cli_bad_values(capsys):
    assert main(["train", "mlp", "--backend", "torch", "--lr", "-1"]) == 2
    assert "Invalid value for --lr" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "mlp", "--backend", "torch", "--optimizer", "lbfgs"])
    assert "invalid choice: 'lbfgs'" in capsys.readouterr().err


def test_a_run_in_the_way_is_refused_not_overwritten(mnist_path, tmp_path):
    cfg = train.TrainConfig(epochs=1, train_limit=128, val_size=0, test_limit=100, batch_size=64)
    first = train.run("simple-fc", TORCH, cfg, tmp_path, mnist_path, progress=False)
    with pytest.raises(ConfigError, match="already holds a finished run. Resume it with `resume=True`, replace it "
                                          "with `overwrite=True`"):
        train.run("simple-fc", TORCH, cfg, tmp_path, mnist_path, progress=False)
    assert train.RunResult.from_json((tmp_path / "result.json").read_text()) == first
    again = train.run("simple-fc", TORCH, replace(cfg, seed=1), tmp_path, mnist_path, progress=False,
                      overwrite=True)
    assert again.config["seed"] == 1


@pytest.mark.parametrize("backend", [TORCH, KERAS])
def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(backend, mnist_path, tmp_path):
    """lr 0.01 for epoch 1, then 1e36: the float32 logits overflow in epoch 2."""
    cfg = train.TrainConfig(optimizer="sgd", lr=0.01, schedule="multistep", milestones=(1,), gamma=1e38,
                            epochs=3, train_limit=640, val_size=0, test_limit=100, batch_size=64, log_every=2)
    with pytest.raises(TrainingDiverged, match=r"in epoch 2.*learning rate 1e\+36.*last finished epoch is kept"):
        train.run("simple-fc", backend, cfg, tmp_path, mnist_path, progress=False)
    saved = train.RunResult.from_json((tmp_path / "result.json").read_text())
    assert len(saved.epochs) == 1 and not saved.completed
    assert (tmp_path / "checkpoint" / "weights.npz").exists()

"""Keras on JAX, the third backend, checked as the other two are.

This test process holds Keras on TensorFlow (one Keras backend per process), so the jax
backend runs in a child process of its own through mnistcnn.backends.call, the way the
product runs it beside TensorFlow. The functions the child runs are the module-level
``_in_jax_*`` ones below.
"""
import importlib.util
import inspect
import os

import numpy as np
import pytest

from mnistcnn import data, parity, train, transfer, zoo
from mnistcnn import weights as W
from mnistcnn.backends import call, get_backend, runs_here
from mnistcnn.errors import BackendUnavailableError, ConfigError
from mnistcnn.spec import BatchNorm, Dense, Flatten, ModelSpec

JAX = "jax"


@pytest.fixture(autouse=True, scope="module")
def _jax_installed():
    if importlib.util.find_spec("jax") is None:
        msg = "jax is not installed (pip install 'mnistcnn[jax]'): the jax backend cannot be tested"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI must test every backend)")
        pytest.skip(msg)
    get_backend("keras")  # this process: Keras on TensorFlow, as in every other test module


# -- what the child process runs --------------------------------------------------------
def _in_jax_protocol_problems() -> list:
    from mnistcnn.backends import protocol

    b = get_backend(JAX)
    params = lambda f, drop=False: [(p.name, p.kind, p.default)  # noqa: E731
                                     for p in list(inspect.signature(f).parameters.values())[1 if drop else 0:]]
    problems = [n for n in protocol.FUNCTIONS if params(getattr(b, n)) != params(getattr(protocol.Backend, n), True)]
    problems += [n for n in protocol.CONSTANTS if not hasattr(b, n)]
    problems += [f"Trainer.{n}" for n in protocol.TRAINER_METHODS
                 if params(getattr(b.Trainer, n)) != params(getattr(protocol.Trainer, n))]
    from mnistcnn import spec as S

    if set(b.KINDS) != set(S.LAYER_KINDS.values()):
        problems.append("KINDS")
    import keras

    loaded = keras.backend.backend()
    return problems + [f"{type(b).__name__} is loaded on {loaded}"] * (loaded != "jax")


def _in_jax_zoo_problems() -> list:
    b, problems = get_backend(JAX), []
    for name in zoo.names():
        spec = zoo.get(name)
        model = b.build(spec)
        if b.param_counts(model, spec) != [(r.trainable, r.state) for r in spec.rows]:
            problems.append(f"{name}: counts {b.param_counts(model, spec)}")
        if b.layer_output_shapes(model, spec) != [r.output_shape for r in spec.rows]:
            problems.append(f"{name}: shapes {b.layer_output_shapes(model, spec)}")
        if b.predict(model, spec, np.zeros((2,) + spec.input_shape, np.float32)).shape != (2,) + spec.output_shape:
            problems.append(f"{name}: output shape")
    return problems


def _two_epochs(backend, spec, cfg, weights, x, y):
    """2 epochs of 8 steps of 32 images, the learning rate cut by 3 between them."""
    t = get_backend(backend).Trainer(spec, cfg.optimizer_for(backend), 0, weights)
    t.set_data(x, y)
    order = train.epoch_order(0, 0, 256)
    losses = [t.train_epoch(order, 32, lr, 0)[0] for lr in (cfg.lr, cfg.lr / 3)]
    return losses, t.get_weights()


def _in_jax_predict(path, x):
    spec, model = transfer.load(path, JAX)
    return get_backend(JAX).predict(model, spec, x)


def _in_jax_round_trip(spec, weights):
    """neutral -> a jax model -> neutral."""
    return transfer.to_neutral(transfer.to_model(spec, weights, JAX), spec, JAX)


def _in_jax_runs(mnist_path, tmp):
    """The resume test of test_train.py, in the jax backend: (uninterrupted, again,
    interrupted after 1 epoch then resumed), as comparable fields."""
    from pathlib import Path

    cfg = train.TrainConfig(epochs=2, train_limit=1024, val_size=512, batch_size=64, seed=3,
                            optimizer="sgd", lr=0.05, momentum=0.5)
    run = lambda out, **kw: train.run("pytorch-examples-net", JAX, cfg, Path(tmp) / out, mnist_path,  # noqa: E731
                                      progress=False, **kw)
    fields = lambda r: ([(e.train_loss, e.train_acc, e.val_loss, e.val_acc) for e in r.epochs],  # noqa: E731
                        r.test_loss, r.confusion, r.steps)
    full, again = run("a"), run("b")
    part = run("c", stop_after=1)
    resumed = run("c", resume=True)
    native = sorted(p.name for p in (Path(tmp) / "c" / "checkpoint").iterdir())
    return fields(full), fields(again), len(part.epochs), fields(resumed), native, full.environment


def _in_jax_bfloat16(x, y):
    """seed000-cnn, one epoch of 2,048 images in bfloat16 mixed precision: the conv's
    compute and variable types, and the accuracy on 500 of its images."""
    import warnings

    cfg = train.TrainConfig()
    spec = cfg.trained_spec(zoo.get("seed000-cnn"), JAX)
    t = get_backend(JAX).Trainer(spec, cfg.optimizer_for(JAX), 0, precision="bfloat16")
    t.set_data(x, y)
    with warnings.catch_warnings():  # bfloat16 on a CPU without bfloat16 units: tested in test_runtime.py
        warnings.simplefilter("ignore")
        t.train_epoch(np.arange(len(x)), 64, 1e-3, 0)
    conv = t.model.get_layer("conv2d_0")
    return conv.compute_dtype, conv.variable_dtype, t.evaluate(x[:500], y[:500])[1]


def _raise_in_child():
    raise ConfigError("raised in the child")


# -- the tests --------------------------------------------------------------------------
def test_jax_runs_in_its_own_process_beside_tensorflow():
    import sys

    assert sys.modules["keras"].backend.backend() == "tensorflow"
    assert runs_here("torch") and runs_here("keras") and not runs_here(JAX)
    assert call(JAX, os.getpid) != os.getpid()
    assert call("keras", os.getpid) == os.getpid()
    with pytest.raises(ConfigError, match="raised in the child"):
        call(JAX, _raise_in_child)
    with pytest.raises(BackendUnavailableError, match="already loaded on 'tensorflow'.*mnistcnn.backends.call"):
        get_backend(JAX)


def test_jax_backend_conforms_to_the_protocol():
    assert call(JAX, _in_jax_protocol_problems) == []


@pytest.mark.slow
def test_zoo_shapes_and_counts_equal_the_spec_in_jax():
    assert call(JAX, _in_jax_zoo_problems) == []


@pytest.fixture(scope="module")
def real(mnist):
    return data.normalize(mnist.x_train[:2048]), mnist.y_train[:2048]


@pytest.mark.parametrize("cfg", [
    train.TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9),
    pytest.param(train.TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
                 marks=pytest.mark.slow),
    pytest.param(train.TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-3), marks=pytest.mark.slow),
    pytest.param(train.TrainConfig(optimizer="rmsprop", lr=1e-3, momentum=0.5), marks=pytest.mark.slow),
    pytest.param(train.TrainConfig(optimizer="adadelta", lr=1.0), marks=pytest.mark.slow),
], ids=["sgd", "sgd-nesterov-wd", "adam-wd", "rmsprop-momentum", "adadelta"])
def test_harmonized_optimizers_give_the_same_weights_in_all_three(cfg, real):
    """Same init, same batches, PyTorch's formulas and BatchNorm rules everywhere: after
    16 steps (2 epochs of 8, the learning rate changed between them) every pair of
    backends agrees to 1e-4 absolute in every trainable weight. BatchNorm's running
    statistics are averages of activations, where a kernel difference of 6e-6 sums over
    784 inputs: measured up to 1.03e-4 (RMSprop with momentum, TensorFlow's fused
    kernel against the formula on JAX; torch against either 7.7e-5), so 2e-4 there."""
    spec = ModelSpec("fc", [Flatten(), Dense(32, activation="tanh"), BatchNorm(0.9, 1e-5), Dense(10)])
    w0 = W.initial(spec, 1)
    x, y = real[0][:256], real[1][:256]
    runs = {b: call(b, _two_epochs, b, spec, cfg, w0, x, y) for b in ("torch", "keras", JAX)}
    for a, b in (("torch", "keras"), ("torch", JAX), ("keras", JAX)):
        assert runs[a][0] == pytest.approx(runs[b][0], rel=1e-4), (a, b)
        for n in w0:
            diff, tol = float(np.abs(runs[a][1][n] - runs[b][1][n]).max()), 2e-4 if ".moving_" in n else 1e-4
            assert diff < tol, f"{a} vs {b}: {n} differs by {diff:.2e}"


@pytest.mark.parametrize("name", ["seed000-cnn", "complex-cnn", pytest.param("keras5-cnn", marks=pytest.mark.slow),
                                  "pytorch-examples-net"])
def test_weights_round_trip_keras_to_jax_exactly(name, images_64):
    """Keras on TensorFlow -> neutral -> Keras on JAX -> neutral: every array back exactly;
    both models agree on real images."""
    spec = zoo.get(name)
    w = parity.sample_weights(spec, 3)
    km = transfer.to_model(spec, w, "keras")
    back = call(JAX, _in_jax_round_trip, spec, transfer.to_neutral(km, spec, "keras"))
    for n, v in back.items():
        assert np.array_equal(v, w[n]), n


@pytest.fixture(scope="module")
def images_64(mnist):
    return data.normalize(mnist.x_test[:64])


@pytest.mark.slow
def test_a_model_trained_in_pytorch_predicts_the_same_in_jax(mnist_path, mnist, tmp_path_factory, capsys):
    """seed000-cnn trained in PyTorch (1 epoch on 12,800 images), saved neutrally, loaded
    in Keras on JAX: the same class for (nearly) every one of the 10,000 test images and
    logits within parity's forward tolerance."""
    cfg = train.TrainConfig(epochs=1, train_limit=12_800, val_size=1000, batch_size=64)
    out = tmp_path_factory.mktemp("trained-torch")
    result = train.run("seed000-cnn", "torch", cfg, out, mnist_path, progress=False)
    path = out / "checkpoint" / "weights.npz"
    spec, tm = transfer.load(path, "torch")
    x = data.normalize(mnist.x_test)
    lt = get_backend("torch").predict(tm, spec, x)
    lj = call(JAX, _in_jax_predict, path, x)
    same = int((lt.argmax(1) == lj.argmax(1)).sum())
    with capsys.disabled():
        print(f"\n[transfer] same predictions torch vs jax: {same}/10000; max |logit diff| "
              f"{np.abs(lt - lj).max():.2e}")
    assert same >= 9990
    assert np.abs(lt - lj).max() <= 1e-5 + 1e-4 * np.abs(lt).max()
    assert float((lj.argmax(1) == mnist.y_test).mean()) == pytest.approx(result.test_acc, abs=1e-3)


@pytest.mark.slow
def test_jax_runs_are_deterministic_and_resume_exactly(mnist_path, tmp_path):
    """Two runs with one seed are identical (XLA on CPU repeats its reductions in one
    order); a run interrupted after epoch 1 and resumed from its native checkpoint equals
    the uninterrupted one, dropout masks included."""
    full, again, n_part, resumed, native, env = call(JAX, _in_jax_runs, mnist_path, tmp_path)
    assert full == again
    assert n_part == 1
    assert resumed == full
    assert {"model.keras", "optimizer.npz", "weights.npz"} <= set(native)
    assert env["keras_backend"] == "jax" and env["jax_platform"] == "cpu"
    assert full[0][-1][3] > 0.6  # it learns: validation accuracy after 2 epochs of 1,024 images (torch: 0.82)


@pytest.mark.slow
def test_jax_bfloat16_computes_in_bfloat16_keeps_float32_weights_and_learns(real):
    compute, variables, acc = call(JAX, _in_jax_bfloat16, real[0], real[1])
    assert (compute, variables) == ("bfloat16", "float32")
    assert acc > 0.8  # float32 on the same images: 0.904


@pytest.mark.slow
def test_parity_of_three_backends_and_numpy(images_64, mnist):
    """All three tiers with the jax backend beside torch and keras: forward within
    tolerance against the numpy reference and float64 gradients equal on complex-cnn
    (BatchNorm everywhere); the same steps give the same logits on seed000-cnn."""
    x, y = images_64[:32], mnist.y_test[:32]
    three = ("torch", "keras", JAX)
    r = parity.run(zoo.get("complex-cnn"), x, y, tiers=(1, 2), backends=three)
    assert r["forward"]["ok"] and r["gradients"]["ok"], parity.format_report(r)
    assert {"torch-jax", "keras-jax", "jax-numpy"} <= set(r["forward"]["layers"][0]["max_abs"])
    r = parity.run(zoo.get("seed000-cnn"), x, y, tiers=(3,), steps=4, backends=three)
    assert all(c["max_logit_diff"] < 1e-3 for c in r["drift"]["curve"]), parity.format_report(r)
    assert "loss jax" in parity.format_report(r)


@pytest.mark.slow
def test_compare_three_backends_pairs_every_two(mnist_path, tmp_path):
    """compare with torch, keras and jax: every backend's group and all three pairs, with
    the jax runs in processes of their own even when the rest runs in this one."""
    from mnistcnn.compare import compare

    cfg = train.TrainConfig(epochs=1, train_limit=256, val_size=64, test_limit=256, batch_size=64)
    s = compare("simple-fc", tmp_path / "c", seeds=2, cfg=cfg, bn=False, backends=("torch", "keras", JAX),
                isolate=False, progress=False, plots=True, data_dir=mnist_path)
    assert not any("error" in r for r in s.runs), s.runs
    assert {g["backend"] for g in s.groups} == {"torch", "keras", JAX}
    assert [(p["a"], p["b"]) for p in s.paired] == [("torch", "keras"), ("torch", JAX), ("keras", JAX)]
    accs = {g["backend"]: g["test_acc"]["mean"] for g in s.groups}
    assert accs["torch"] == pytest.approx(accs[JAX], abs=0.01)  # harmonized: the same runs, but for rounding
    report = (tmp_path / "c" / "report.md").read_text()
    assert "| keras − jax |" in report
    assert report.startswith("# simple-fc: PyTorch vs Keras (TensorFlow) vs Keras (JAX)")


@pytest.mark.slow
def test_defaults_ledger_measures_keras_on_jax():
    """The JAX column is measured on Keras-on-JAX in its own process: the same Keras
    defaults, but a loss on softmax probabilities cannot recover the logits there (only
    TensorFlow tensors carry them), and XLA compiles every step."""
    from mnistcnn import defaults

    rows = {r["item"]: r for r in defaults.ledger(("torch", "keras", JAX))}
    assert rows["adam_epsilon"]["jax"] == rows["adam_epsilon"]["keras"]
    assert rows["bn_momentum"]["jax"] == rows["bn_momentum"]["keras"]
    assert rows["loss_on_probabilities"]["keras"].startswith("recovers the logits")
    assert rows["loss_on_probabilities"]["jax"].startswith("clips probabilities")
    assert "XLA" in rows["flags"]["jax"]
    assert "Keras native (JAX)" in defaults.ledger_markdown(list(rows.values()))


def test_cli_summary_all_checks_three_backends(capsys):
    from mnistcnn.cli import main

    assert main(["summary", "seed000-cnn", "--backend", "all"]) == 0
    out = capsys.readouterr().out
    assert "jax: 827,738" in out and "all backends agree with the spec" in out


def _die():
    os._exit(3)


@pytest.mark.slow
def test_a_child_that_dies_is_one_clear_error_and_is_replaced():
    with pytest.raises(BackendUnavailableError, match=r"The process running the 'jax' backend ended \(exit status 3\) "
                                                      r"during _die\(\)"):
        call(JAX, _die)
    assert call(JAX, os.getpid) != os.getpid()  # a new child serves the next call

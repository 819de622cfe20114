"""Weights between frameworks through the neutral form (mnistcnn.transfer)."""
import numpy as np
import pytest

from mnistcnn import data, parity, train, transfer, zoo
from mnistcnn.backends import get_backend


@pytest.fixture(scope="module")
def images(mnist):
    return data.normalize(mnist.x_test[:64]), mnist.y_test[:64]


@pytest.mark.parametrize("name", zoo.names())
def test_transfer_round_trip_every_zoo_model(name, images):
    """torch -> neutral -> keras -> neutral -> torch gives back every array exactly, and
    the three models agree on real images."""
    spec = zoo.get(name)
    w = parity.sample_weights(spec, 3)
    tm = transfer.to_model(spec, w, "torch")
    km = transfer.convert(tm, spec, "torch", "keras")
    back = transfer.convert(km, spec, "keras", "torch")
    for n, v in transfer.to_neutral(back, spec, "torch").items():
        assert np.array_equal(v, w[n]), n
    x = images[0][:16]
    out_t, out_k = get_backend("torch").predict(tm, spec, x), get_backend("keras").predict(km, spec, x)
    tol = 1e-5 + 1e-4 * np.abs(out_t).max()
    assert np.abs(out_t - out_k).max() <= tol


@pytest.fixture(scope="module")
def trained_torch(mnist_path, tmp_path_factory):
    """seed000-cnn trained in torch (1 epoch on 12,800 images) and saved neutrally."""
    cfg = train.TrainConfig(epochs=1, train_limit=12_800, val_size=1000, batch_size=64)
    out = tmp_path_factory.mktemp("trained")
    result = train.run("seed000-cnn", "torch", cfg, out, mnist_path, progress=False)
    return result, out / "checkpoint" / "weights.npz"


@pytest.mark.slow
def test_trained_model_keeps_its_accuracy_across_frameworks(trained_torch, mnist, capsys):
    result, path = trained_torch
    spec, tm = transfer.load(path, "torch")
    km = transfer.convert(tm, spec, "torch", "keras")
    back = transfer.convert(km, spec, "keras", "torch")
    x = data.normalize(mnist.x_test)
    logits = {n: get_backend(b).predict(m, spec, x) for n, b, m in
              (("torch", "torch", tm), ("keras", "keras", km), ("back", "torch", back))}
    preds = {n: v.argmax(1) for n, v in logits.items()}
    same = int((preds["torch"] == preds["keras"]).sum())
    with capsys.disabled():
        print(f"\n[transfer] same predictions torch vs keras: {same}/10000; max |logit diff| "
              f"{np.abs(logits['torch'] - logits['keras']).max():.2e}")
    assert same >= 9990
    assert (preds["torch"] == preds["back"]).all()
    assert float((preds["keras"] == mnist.y_test).mean()) == pytest.approx(result.test_acc, abs=1e-3)
    assert np.abs(logits["torch"] - logits["keras"]).max() <= 1e-5 + 1e-4 * np.abs(logits["torch"]).max()

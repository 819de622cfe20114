"""Every layer kind through everything that must know it (in the spirit of Keras'
run_layer_test): the spec's arithmetic, both backends' builders (output shapes,
trainable and state counts), the neutral weight round trip, torch <-> keras transfer and
the numpy reference. A kind missing anywhere fails here, by name.

Adding a layer kind: its dataclass in spec/layers.py, one builder per backend, one
numpy forward in reference.FORWARD, and one row in CASES below.
"""
import numpy as np
import pytest

from mnistcnn import parity, transfer
from mnistcnn import spec as S
from mnistcnn import weights as W
from mnistcnn.backends import get_backend
from mnistcnn.errors import SpecError
from mnistcnn.spec import variants

BACKENDS = ("torch", "keras")

#: kind -> (layers of a minimal spec holding it, input shape). The cases put each kind
#: where it is hardest: after Flatten (Keras' feature order differs), with stride and
#: 'same' padding, with an inline activation.
CASES = {
    "Conv2D": ([S.Conv2D(4, 3, stride=2, padding="same", activation="relu")], (2, 7, 7)),
    "MaxPool2D": ([S.MaxPool2D(3, stride=2, padding="same")], (3, 8, 8)),
    "AvgPool2D": ([S.AvgPool2D(2, padding="same")], (3, 5, 5)),
    "BatchNorm": ([S.BatchNorm(0.9, 1e-5), S.Flatten(), S.BatchNorm(0.99, 1e-3), S.Dense(4)], (2, 3, 3)),
    "Dropout": ([S.Flatten(), S.Dropout(0.5), S.Dense(3)], (2, 3, 3)),
    "SpatialDropout2D": ([S.SpatialDropout2D(0.3), S.Conv2D(2, 1)], (3, 4, 4)),
    "Flatten": ([S.Flatten(), S.Dense(5)], (3, 4, 4)),
    "Dense": ([S.Flatten(), S.Dense(6, activation="tanh", use_bias=False), S.Dense(2)], (1, 3, 3)),
    "Activation": ([S.Activation("leaky_relu", negative_slope=0.2), S.Flatten(),
                    S.Activation("softmax"), S.Dense(3)], (2, 3, 3)),
    "GlobalAvgPool2D": ([S.Conv2D(4, 3), S.GlobalAvgPool2D(), S.Dense(3)], (2, 6, 6)),
    "HeightBatchNorm": ([S.HeightBatchNorm(0.99, 1e-3), S.Flatten(), S.Dense(2)], (3, 5, 4)),
}


def case(kind: str) -> S.ModelSpec:
    if kind not in CASES:
        pytest.fail(f"layer kind {kind} has no row in tests/test_layers.py CASES")
    layers, shape = CASES[kind]
    spec = S.ModelSpec(f"one-{kind}", layers, shape)
    assert kind in {r.kind for r in spec.rows}
    return spec


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("kind", S.LAYER_KINDS)
def test_spec_arithmetic_and_serialisation(kind):
    spec = case(kind)
    for r in spec.rows:
        shapes = r.layer.weight_shapes(r.input_shape)
        assert r.trainable + r.state == sum(int(np.prod(s)) for s in shapes.values())
        assert r.state == sum(int(np.prod(s)) for n, s in shapes.items() if n in S.STATE_WEIGHTS)
    assert S.from_json(S.to_json(spec)) == spec


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", S.LAYER_KINDS)
def test_backend_builds_it_as_the_spec_says(kind, backend):
    spec, b = case(kind), get_backend(backend)
    assert S.LAYER_KINDS[kind] in b.BUILDERS, f"backend {backend} has no builder for {kind}"
    model = b.build(spec)
    assert b.layer_output_shapes(model, spec) == [r.output_shape for r in spec.rows]
    assert b.param_counts(model, spec) == [(r.trainable, r.state) for r in spec.rows]


@pytest.mark.parametrize("kind", S.LAYER_KINDS)
def test_weights_round_trip_transfer_and_reference(kind, x):
    """Neutral weights in and out of each backend unchanged; torch -> keras -> torch
    unchanged; per-layer outputs of torch, keras and numpy within parity's tolerance."""
    spec = case(kind)
    c = spec.input_shape[0]
    xs = x[:, :c, :spec.input_shape[1], :spec.input_shape[2]]
    w = parity.sample_weights(spec, 1)
    assert {n: v.shape for n, v in w.items()} == W.shapes(spec)
    models = {}
    for backend in BACKENDS:
        models[backend] = transfer.to_model(spec, w, backend)
        got = transfer.to_neutral(models[backend], spec, backend)
        assert set(got) == set(w) and all(np.array_equal(got[n], w[n]) for n in w), backend
    back = transfer.convert(transfer.convert(models["torch"], spec, "torch", "keras"), spec, "keras", "torch")
    assert all(np.array_equal(v, w[n]) for n, v in transfer.to_neutral(back, spec, "torch").items())
    f = parity.forward(spec, w, xs)
    assert f["ok"], (kind, f["first_failure"], f["layers"])


def test_a_kind_missing_from_the_reference_fails_by_name(monkeypatch):
    from mnistcnn import reference

    monkeypatch.delitem(reference.FORWARD, S.GlobalAvgPool2D)
    spec = case("GlobalAvgPool2D")
    with pytest.raises(NotImplementedError, match="no numpy forward for layer kind GlobalAvgPool2D"):
        reference.forward(spec, W.initial(spec, 0), np.zeros((1, 2, 6, 6)))


def test_global_average_pooling_is_the_channel_mean():
    spec = S.ModelSpec("gap", [S.GlobalAvgPool2D()], (3, 4, 5))
    assert spec.output_shape == (3,) and spec.macs == 0 and spec.trainable_params == 0
    xs = np.arange(60, dtype=np.float32).reshape(1, 3, 4, 5)
    for backend in BACKENDS:
        b = get_backend(backend)
        np.testing.assert_allclose(b.predict(b.build(spec), spec, xs)[0], xs[0].mean(axis=(1, 2)))
    with pytest.raises(SpecError, match="GlobalAvgPool2D needs a feature map"):
        S.ModelSpec("bad", [S.Flatten(), S.GlobalAvgPool2D()], (1, 4, 4))


@pytest.mark.parametrize("kind", S.LAYER_KINDS)
def test_training_mode_gradients_agree(kind, x):
    """Tier 2 of parity for every kind: in training mode (batch statistics), the loss and
    every gradient of torch and keras (PyTorch's BatchNorm rules) agree in float64."""
    spec = variants.without_dropout(case(kind))
    if len(spec.output_shape) == 3:  # a loss needs class scores
        spec = S.ModelSpec(spec.name, [*spec.layers, S.Flatten(), S.Dense(3)], spec.input_shape)
    xs = np.ascontiguousarray(x[:, :spec.input_shape[0], :spec.input_shape[1], :spec.input_shape[2]])
    y = np.array([0, 1, 2, 1, 0]) % spec.output_shape[0]
    g = parity.gradients(spec, parity.sample_weights(spec, 2), xs, y)
    assert g["ok"], (kind, g["first_failure"], g["loss"])

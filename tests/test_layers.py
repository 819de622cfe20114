"""Every layer kind through everything that must know it (in the spirit of Keras'
run_layer_test), in every backend installed: the spec's arithmetic, each backend's entry
(build: output shapes, trainable and state counts; the neutral weight round trip; import
from the built native model and export of what came in to every backend), and the
per-layer comparison with the numpy reference. A kind missing anywhere fails here, naming
the kind and the missing piece.

The jax backend cannot share a process with Keras on TensorFlow: each backend's side runs
through mnistcnn.backends.call (the module-level ``_in_backend_*`` functions below).

Adding a layer kind: its dataclass in spec/layers.py, one entry in each backend's KINDS
(torch.py, _keras3.py), one numpy forward in reference.FORWARD, and one row in CASES below.
"""
import importlib.util

import numpy as np
import pytest

from mnistcnn import parity, reference
from mnistcnn import spec as S
from mnistcnn import weights as W
from mnistcnn.backends import BACKENDS as KNOWN
from mnistcnn.backends import call, get_backend
from mnistcnn.errors import SpecError
from mnistcnn.spec import variants

#: every backend whose framework is installed here
BACKENDS = tuple(b for b, info in KNOWN.items() if all(importlib.util.find_spec(p) for p in info.packages))

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
    "GlobalMaxPool2D": ([S.Conv2D(4, 3), S.GlobalMaxPool2D(), S.Dense(3)], (2, 6, 6)),
    "HeightBatchNorm": ([S.HeightBatchNorm(0.99, 1e-3), S.Flatten(), S.Dense(2)], (3, 5, 4)),
    # an identity block (BatchNorm inside), a projection block with stride 2, one nested in another
    "Residual": ([S.Conv2D(3, 1), S.Residual([S.Conv2D(3, 3, padding="same", activation="relu"),
                                              S.BatchNorm(0.9, 1e-5), S.Conv2D(3, 3, padding="same")]),
                  S.Residual([S.Conv2D(4, 3, stride=2, padding="same"), S.Residual([S.Activation("relu")])],
                             [S.Conv2D(4, 1, stride=2, use_bias=False)]),
                  S.Flatten(), S.Dense(3)], (2, 6, 6)),
}


def case(kind: str) -> S.ModelSpec:
    if kind not in CASES:
        pytest.fail(f"layer kind {kind} has no row in tests/test_layers.py CASES")
    layers, shape = CASES[kind]
    spec = S.ModelSpec(f"one-{kind}", layers, shape)
    assert kind in {r.kind for r in spec.rows}
    return spec


def _inputs(spec) -> np.ndarray:
    c, h, w = spec.input_shape
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    return np.ascontiguousarray(x[:, :c, :h, :w])


# -- what each backend's process runs ---------------------------------------------------
def _in_backend_problems(backend: str, spec, weights: dict) -> list:
    """Everything ``backend`` does with the kinds of ``spec``, as a list of what is
    missing or wrong: its entry, build (shapes, counts), the neutral weight round trip."""
    b = get_backend(backend)
    missing = [r.kind for r in spec.rows if type(r.layer) not in b.KINDS]
    if missing:
        return [f"{backend} has no entry in KINDS for {', '.join(missing)}"]
    problems = []
    model = b.build(spec)
    if [tuple(s) for s in b.layer_output_shapes(model, spec)] != [r.output_shape for r in spec.rows]:
        problems.append(f"{backend} builds output shapes {b.layer_output_shapes(model, spec)}")
    if b.param_counts(model, spec) != [(r.trainable, r.state) for r in spec.rows]:
        problems.append(f"{backend} counts {b.param_counts(model, spec)} weights")
    b.set_weights(model, spec, weights)
    got = b.get_weights(model, spec)
    if set(got) != set(weights) or not all(np.array_equal(got[n], weights[n]) for n in weights):
        problems.append(f"{backend}'s weight translation (get_weights after set_weights) changes the weights")
    return problems


def _in_backend_import(backend: str, spec, weights: dict):
    """The spec and weights the importer reads from ``backend``'s model of ``spec``, or
    the refusal (a string) where the backend's entry says the kind is not imported."""
    from mnistcnn import importers
    from mnistcnn.backends import get_backend

    b = get_backend(backend)
    model = b.build(spec)
    b.set_weights(model, spec, weights)
    try:
        if backend == "torch":
            return importers.from_torch(model, spec.input_shape, with_weights=True)
        return importers.from_keras(model, with_weights=True)
    except importers.ModelImportError as e:
        if any(b.KINDS[type(r.layer)].read is None for r in spec.rows):
            return str(e)
        raise


def _in_backend_predict(backend: str, spec, weights: dict, x):
    b = get_backend(backend)
    model = b.build(spec)
    b.set_weights(model, spec, weights)
    return b.predict(model, spec, x)


# -- the tests --------------------------------------------------------------------------
def test_every_framework_installed_is_tested():
    assert "torch" in BACKENDS and "keras" in BACKENDS


@pytest.mark.parametrize("kind", S.LAYER_KINDS)
def test_spec_arithmetic_and_serialisation(kind):
    spec = case(kind)
    for r in spec.rows:
        shapes = r.layer.weight_shapes(r.input_shape)
        assert r.trainable + r.state == sum(int(np.prod(s)) for s in shapes.values())
        assert r.state == sum(int(np.prod(s)) for n, s in shapes.items() if n.rsplit(".", 1)[-1] in S.STATE_WEIGHTS)
        undeclared = [n for n in shapes if r.layer.weight_layouts.get(n) not in S.WEIGHT_LAYOUTS]
        assert not undeclared, f"{r.kind}.weight_layouts declares no layout of {undeclared}"
    assert S.from_json(S.to_json(spec)) == spec


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", S.LAYER_KINDS)
def test_backend_builds_it_and_translates_its_weights(kind, backend):
    spec = case(kind)
    problems = call(backend, _in_backend_problems, backend, spec, parity.sample_weights(spec, 1))
    assert not problems, f"{kind}: {problems}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", S.LAYER_KINDS)
def test_import_from_the_framework_and_export_to_every_backend(kind, backend):
    """The importer of ``backend``'s framework reads the model ``backend`` built (the kind's
    entry names its native classes and reads them); what came in, built in every backend
    (export), computes what the numpy reference computes for the original."""
    spec, x = case(kind), _inputs(case(kind))
    weights = parity.sample_weights(spec, 1)
    try:
        got = call(backend, _in_backend_import, backend, spec, weights)
    except Exception as e:
        pytest.fail(f"{kind}: importing {backend}'s model of it (its entry's reader) fails: {e}")
    if isinstance(got, str):  # the entry declares the kind not imported from there (read=None): refused
        assert got.startswith("Cannot import"), got
        return
    imported, imported_weights = got
    expected = reference.forward(spec, weights, x)[-1]
    for target in BACKENDS:
        try:
            out = call(target, _in_backend_predict, target, imported, imported_weights, x)
        except Exception as e:
            pytest.fail(f"{kind}: imported from {backend} as {[r.kind for r in imported.rows]}, exported to "
                        f"{target}: {e}")
        assert np.allclose(out, expected, atol=1e-5, rtol=1e-4), (
            f"{kind}: imported from {backend} ({[r.kind for r in imported.rows]}), exported to {target}: "
            f"off by {np.abs(out - expected).max():.3g}")


@pytest.mark.parametrize("kind", S.LAYER_KINDS)
def test_every_backend_and_numpy_compute_the_same(kind):
    """Per-layer outputs of every backend and of the numpy reference within parity's
    tolerance."""
    spec = case(kind)
    f = parity.forward(spec, parity.sample_weights(spec, 1), _inputs(spec), backends=BACKENDS)
    assert f["ok"], (kind, f["first_failure"], f["layers"])


def test_a_kind_missing_from_the_reference_fails_by_name(monkeypatch):
    monkeypatch.delitem(reference.FORWARD, S.GlobalAvgPool2D)
    spec = case("GlobalAvgPool2D")
    with pytest.raises(NotImplementedError, match="no numpy forward for layer kind GlobalAvgPool2D"):
        reference.forward(spec, W.initial(spec, 0), np.zeros((1, 2, 6, 6)))


def test_a_kind_missing_from_a_backend_fails_by_name(monkeypatch):
    b = get_backend("torch")
    monkeypatch.delitem(b.KINDS, S.GlobalAvgPool2D)
    spec = case("GlobalAvgPool2D")
    assert _in_backend_problems("torch", spec, W.initial(spec, 0)) == [
        "torch has no entry in KINDS for GlobalAvgPool2D"]


def test_global_average_pooling_is_the_channel_mean():
    spec = S.ModelSpec("gap", [S.GlobalAvgPool2D()], (3, 4, 5))
    assert spec.output_shape == (3,) and spec.macs == 0 and spec.trainable_params == 0
    xs = np.arange(60, dtype=np.float32).reshape(1, 3, 4, 5)
    for backend in BACKENDS:
        np.testing.assert_allclose(call(backend, _in_backend_predict, backend, spec, {}, xs)[0],
                                   xs[0].mean(axis=(1, 2)))
    with pytest.raises(SpecError, match="GlobalAvgPool2D needs a feature map"):
        S.ModelSpec("bad", [S.Flatten(), S.GlobalAvgPool2D()], (1, 4, 4))


@pytest.mark.parametrize("kind", S.LAYER_KINDS)
def test_training_mode_gradients_agree(kind):
    """Tier 2 of parity for every kind: in training mode (batch statistics), the loss and
    every gradient of torch and keras (Keras' BatchNorm by PyTorch's rules) agree in
    float64. (The jax backend's float64 loss differs from these by about 1e-8 on the
    Dense and GlobalAvgPool2D cases, more than the tier's 1e-9: an open finding.)"""
    spec = variants.without_dropout(case(kind))
    if len(spec.output_shape) == 3:  # a loss needs class scores
        spec = S.ModelSpec(spec.name, [*spec.layers, S.Flatten(), S.Dense(3)], spec.input_shape)
    y = np.array([0, 1, 2, 1, 0]) % spec.output_shape[0]
    g = parity.gradients(spec, parity.sample_weights(spec, 2), _inputs(spec), y, backends=("torch", "keras"))
    assert g["ok"], (kind, g["first_failure"], g["loss"])

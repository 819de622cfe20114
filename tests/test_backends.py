"""Both real backends against the spec's arithmetic, for every zoo entry."""
import inspect
import subprocess
import sys

import numpy as np
import pytest

import mnistcnn
from mnistcnn import spec as S
from mnistcnn import zoo
from mnistcnn.backends import BACKENDS, get_backend, runs_here
from mnistcnn.errors import BackendUnavailableError

#: the backends this process loads (torch, Keras on TensorFlow); the jax backend cannot
#: share a process with Keras on TensorFlow: tests/test_jax.py runs the same checks in a
#: child process of its own
BACKEND_NAMES = [b for b in BACKENDS if runs_here(b)]


@pytest.fixture(scope="module", params=BACKEND_NAMES)
def backend(request):
    return get_backend(request.param)


def test_every_backend_covers_every_layer_kind(backend):
    assert set(backend.KINDS) == set(S.LAYER_KINDS.values())


def _params(f, drop_self=False):
    params = list(inspect.signature(f).parameters.values())
    return [(p.name, p.kind, p.default) for p in params[1 if drop_self else 0:]]


def test_backend_conforms_to_the_protocol(backend):
    """Every function, constant and Trainer method the package calls, with the
    protocol's exact signature (names, kinds, defaults)."""
    from mnistcnn.backends import protocol

    for name in protocol.FUNCTIONS:
        assert callable(getattr(backend, name, None)), f"{type(backend).__name__} lacks {name}()"
        assert _params(getattr(backend, name)) == _params(getattr(protocol.Backend, name), True), name
    for name in protocol.CONSTANTS:
        assert hasattr(backend, name), f"{type(backend).__name__} lacks {name}"
    for name in protocol.TRAINER_METHODS:
        assert _params(getattr(backend.Trainer, name)) == _params(getattr(protocol.Trainer, name)), name
    assert set(protocol.FUNCTIONS) >= {"build", "predict", "get_weights", "set_weights", "start_run"}
    assert set(protocol.TRAINER_METHODS) >= {"__init__", "train_epoch", "evaluate", "save", "restore"}


@pytest.mark.slow
def test_importing_a_backend_changes_no_process_state():
    """No environment variable set and no determinism switched on by importing a backend
    module; start_run does that, when a run starts."""
    code = (
        "import os, json\n"
        "import torch, keras, tensorflow as tf\n"  # what the frameworks themselves set is theirs
        "before = dict(os.environ)\n"
        "import mnistcnn.backends.torch, mnistcnn.backends.keras\n"
        "print(json.dumps({'env': sorted(set(os.environ.items()) ^ set(before.items())),\n"
        "                  'torch_det': torch.are_deterministic_algorithms_enabled()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    import json

    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts == {"env": [], "torch_det": False}, (facts, out.stderr[-2000:])


def test_keras_private_internals_still_exist():
    """mnistcnn's harmonized Keras optimizers and BatchNorm use a few private Keras names;
    an upgrade that removes one fails here, naming it and where it is used."""
    import keras

    KERAS_INTERNALS = get_backend("keras").KERAS_INTERNALS
    probes = {keras.optimizers.SGD: keras.optimizers.SGD(momentum=0.9),
              keras.optimizers.Adam: keras.optimizers.Adam(), keras.optimizers.RMSprop:
              keras.optimizers.RMSprop(momentum=0.5), keras.layers.Dropout: keras.layers.Dropout(0.5, seed=1)}
    for owner, attribute, used_by in KERAS_INTERNALS:
        target = probes.get(owner, owner)
        if isinstance(target, keras.optimizers.Optimizer):
            target.build([keras.Variable(np.zeros(2, np.float32))])
        assert hasattr(target, attribute), (
            f"Keras {keras.__version__} has no {owner.__name__}.{attribute}, which {used_by} in "
            "mnistcnn/backends/_keras3.py uses; adapt that code to this Keras version")


def test_native_defaults_match_the_installed_frameworks():
    """Each backend's NATIVE_OPTIMIZER_DEFAULTS and NATIVE_BATCHNORM, read from the
    installed framework's signatures."""
    import keras
    import torch

    t, k = get_backend("torch"), get_backend("keras")
    sig = lambda f: inspect.signature(f).parameters  # noqa: E731
    tn, kn = t.NATIVE_OPTIMIZER_DEFAULTS, k.NATIVE_OPTIMIZER_DEFAULTS
    assert sig(torch.optim.Adam)["eps"].default == tn["adam"]["eps"]
    assert sig(torch.optim.RMSprop)["alpha"].default == tn["rmsprop"]["rho"]
    assert sig(torch.optim.RMSprop)["eps"].default == tn["rmsprop"]["eps"]
    assert sig(torch.optim.Adadelta)["rho"].default == tn["adadelta"]["rho"]
    assert sig(torch.optim.Adadelta)["eps"].default == tn["adadelta"]["eps"]
    assert sig(keras.optimizers.Adam)["epsilon"].default == kn["adam"]["eps"]
    assert sig(keras.optimizers.RMSprop)["rho"].default == kn["rmsprop"]["rho"]
    assert sig(keras.optimizers.RMSprop)["epsilon"].default == kn["rmsprop"]["eps"]
    assert sig(keras.optimizers.Adadelta)["rho"].default == kn["adadelta"]["rho"]
    assert sig(keras.optimizers.Adadelta)["epsilon"].default == kn["adadelta"]["eps"]
    bn = sig(keras.layers.BatchNormalization)
    assert (bn["momentum"].default, bn["epsilon"].default) == (k.NATIVE_BATCHNORM.momentum, k.NATIVE_BATCHNORM.epsilon)
    tbn = sig(torch.nn.BatchNorm2d)
    assert (1 - tbn["momentum"].default, tbn["eps"].default) == (
        t.NATIVE_BATCHNORM.momentum, t.NATIVE_BATCHNORM.epsilon)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_shapes_and_counts_equal_the_spec(backend, name):
    spec = zoo.get(name)
    model = backend.build(spec)
    assert backend.param_counts(model, spec) == [(r.trainable, r.state) for r in spec.rows]
    assert backend.layer_output_shapes(model, spec) == [r.output_shape for r in spec.rows]
    out = backend.predict(model, spec, np.zeros((4,) + spec.input_shape, np.float32))
    assert out.shape == (4,) + spec.output_shape


def test_native_totals_as_each_framework_reports_them():
    """torch parameters() holds no BN statistics; Keras count_params() holds them (4C)."""
    spec = zoo.get("keras-bn-cnn")
    tm = mnistcnn.build(spec, "torch")
    km = mnistcnn.build(spec, "keras")
    assert sum(p.numel() for p in tm.parameters()) == spec.trainable_params == 277_834
    assert km.count_params() == spec.total_params == 278_858
    assert [n for n in km.layers if n.count_params()][0].count_params() == 640


def test_build_returns_native_models():
    import keras
    import torch

    assert isinstance(mnistcnn.build("seed000-cnn", backend="torch"), torch.nn.Module)
    km = mnistcnn.build("seed000-cnn", backend="keras")
    assert isinstance(km, keras.Model)
    assert tuple(km.input_shape) == (None, 28, 28, 1)  # channels_last


# 'same' with stride > 1 on odd and even sizes: TensorFlow pads the extra pixel at the
# end; the torch backend must give the same shapes (and values, checked below).
SAME_CASES = [(28, 3, 2), (7, 3, 2), (9, 4, 2), (10, 5, 3), (5, 2, 1)]


@pytest.mark.parametrize("n,k,s", SAME_CASES)
def test_same_padding_with_stride(backend, n, k, s):
    spec = S.ModelSpec("same", [S.Conv2D(3, k, stride=s, padding="same"),
                                S.MaxPool2D(k, stride=s, padding="same"),
                                S.AvgPool2D(k, stride=s, padding="same")], (2, n, n))
    model = backend.build(spec)
    assert backend.layer_output_shapes(model, spec) == [r.output_shape for r in spec.rows]


def _copy_weights_keras_to_torch(spec, km, tm):
    """Conv/Dense weights from a Keras model into the torch one (kernel layouts differ)."""
    import torch

    for row in spec.rows:
        if row.kind not in ("Conv2D", "Dense"):
            continue
        w, b = km.get_layer(row.name).get_weights()
        w = w.transpose(3, 2, 0, 1) if w.ndim == 4 else w.T
        op = getattr(tm, row.name)
        op = op.op if hasattr(op, "op") else op
        with torch.no_grad():
            op.weight.copy_(torch.from_numpy(w))
            op.bias.copy_(torch.from_numpy(b))


@pytest.mark.parametrize("n,k,s", SAME_CASES)
def test_same_padding_values_agree(n, k, s):
    """Same weights, same input: the asymmetric padding, -inf max padding and the
    exclude-padding average all match TensorFlow's (tolerance 1e-5 absolute)."""
    spec = S.ModelSpec("same", [S.Conv2D(3, k, stride=s, padding="same"),
                                S.MaxPool2D(k, stride=s, padding="same"),
                                S.Conv2D(2, 1), S.Activation("tanh"),
                                S.AvgPool2D(k, stride=s, padding="same")], (2, n, n))
    torch_b, keras_b = get_backend("torch"), get_backend("keras")
    km, tm = keras_b.build(spec), torch_b.build(spec)
    _copy_weights_keras_to_torch(spec, km, tm)
    x = np.random.default_rng(0).normal(size=(3, 2, n, n)).astype(np.float32)
    np.testing.assert_allclose(torch_b.predict(tm, spec, x), keras_b.predict(km, spec, x), atol=1e-5)


@pytest.mark.parametrize("name", ["keras3-cnn", "keras5-cnn", "keras7-cnn", "keras-bn-cnn"])
def test_keras_axis1_batchnorm_reproduces_the_published_counts(name):
    """Rebuild a zoo model in real Keras with BatchNormalization(axis=1), as report 004
    did: Keras' own total, non-trainable count and per-layer rows equal the report's
    summary tables (and the spec-level recount)."""
    import keras

    spec = zoo.get(name)
    km = mnistcnn.build(spec, "keras")

    def axis1(layer):
        cfg = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            cfg["axis"] = 1
        return layer.__class__.from_config(cfg)

    wrong = keras.models.clone_model(km, clone_function=axis1)
    assert wrong.count_params() == spec.keras_count_with_bn_axis(1)
    published = zoo.ZOO[name].published
    if "keras_total_bn_axis1" in published:
        non_trainable = sum(int(np.prod(w.shape)) for w in wrong.non_trainable_weights)
        assert (wrong.count_params(), non_trainable) == (
            published["keras_total_bn_axis1"], published["keras_non_trainable_bn_axis1"])
        assert [l.count_params() for l in wrong.layers if l.count_params()] == \
            published["keras_layer_params_bn_axis1"]


def test_real_mnist_images_give_finite_outputs(backend, mnist):
    from mnistcnn.data import normalize

    x = normalize(mnist.x_test[:64])
    for name in ("seed000-cnn", "complex-cnn", "pytorch-examples-net"):
        spec = zoo.get(name)
        out = backend.predict(backend.build(spec), spec, x)
        assert out.shape == (64, 10)
        assert np.isfinite(out).all()
        assert out.std() > 0  # the images reach the output: not a constant


def test_unknown_backend_lists_valid_ones():
    with pytest.raises(BackendUnavailableError, match="Unknown backend 'mxnet'. Valid backends: torch, keras, jax"):
        mnistcnn.build("mlp", backend="mxnet")


@pytest.mark.slow
@pytest.mark.parametrize("backend_name,blocked,extra", [
    ("torch", "torch", "mnistcnn[torch]"), ("keras", "keras", "mnistcnn[keras]"),
    ("keras", "tensorflow", "mnistcnn[keras]"), ("jax", "jax", "mnistcnn[jax]"), ("jax", "keras", "mnistcnn[jax]"),
])
def test_missing_framework_names_the_pip_extra(backend_name, blocked, extra):
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "import mnistcnn\n"
        "try:\n"
        f"    mnistcnn.build('mlp', backend={backend_name!r})\n"
        "except mnistcnn.BackendUnavailableError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert f"pip install '{extra}'" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernel", "keras-ops"])
@pytest.mark.parametrize("shape", [(64, 7, 7, 16), (64, 32)])
def test_harmonized_keras_batchnorm_follows_pytorch_rules(shape, fused):
    """float32 training goes through TensorFlow's fused kernel (TensorFlow only); the
    formula in keras.ops is what every other Keras backend runs. Both must give what the
    definition gives: (x - mean) / sqrt(var + eps) * gamma + beta with the biased batch
    variance, and running statistics updated with the UNBIASED one (PyTorch's rule)."""
    from mnistcnn.backends._keras3 import TorchBatchNormalization

    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 0.5 + 3.0).astype(np.float32)  # mean large next to spread
    layer = TorchBatchNormalization(axis=-1, momentum=0.9, epsilon=1e-5, fused_training=fused)
    layer.build(shape)
    layer.gamma.assign(rng.standard_normal(shape[-1]).astype(np.float32))
    layer.beta.assign(rng.standard_normal(shape[-1]).astype(np.float32))
    y = np.asarray(layer(x, training=True))
    x64 = x.astype(np.float64).reshape(-1, shape[-1])
    mean, var = x64.mean(0), x64.var(0)
    expected = (x64 - mean) / np.sqrt(var + 1e-5) * np.asarray(layer.gamma) + np.asarray(layer.beta)
    np.testing.assert_allclose(y.reshape(-1, shape[-1]), expected, atol=1e-5)
    n = x64.shape[0]
    np.testing.assert_allclose(np.asarray(layer.moving_mean), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(layer.moving_variance), 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)

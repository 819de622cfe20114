"""Bring your own model: models written the way users write them (not through mnistcnn)
come in as a spec with their weights, and the other framework then predicts the same on
all 10,000 MNIST test images. Unsupported models are refused, naming layer and argument."""
import numpy as np
import pytest

import mnistcnn
from mnistcnn import data
from mnistcnn.backends import get_backend
from mnistcnn.importers import ModelImportError, from_keras, from_torch

#: largest |difference| of outputs (logits, probabilities or log-probabilities) allowed
#: between the original model and the imported one in the other framework, float32
TOL = 2e-4


@pytest.fixture(scope="module")
def test_images(mnist):
    """The first 2,000 real test images: enough to compare every class's predictions (all
    10,000 through the 1.2M-parameter Net took 30 s a test)."""
    return data.normalize(mnist.x_test[:2000], "standard"), mnist.y_test[:2000]


# -- models as users write them --------------------------------------------------------
def keras_simple_convnet():
    """keras.io's "Simple MNIST convnet" (34,826 parameters)."""
    import keras

    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])


def keras_bn_model():
    """A functional Keras model with BatchNorm, activation layers and a LeakyReLU."""
    import keras

    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Conv2D(16, 5, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, strides=2)(x)
    x = keras.layers.LeakyReLU(negative_slope=0.1)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32)(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = keras.layers.Activation("tanh")(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # running statistics that are not the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.5, b + 0.1, rng.normal(0, 0.5, m.shape), rng.uniform(0.5, 2, v.shape)])
    return model


def torch_modules():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class ExamplesNet(nn.Module):
        """pytorch/examples' mnist Net today: functional calls in forward (1,199,882 parameters)."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.dropout2(x)
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)

    class Net2019(nn.Module):
        """Report 001's 2019 pytorch/examples Net (21,840 parameters)."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.conv2_drop = nn.Dropout2d()
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 10)

        def forward(self, x):
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
            x = x.view(-1, 320)
            x = F.relu(self.fc1(x))
            x = F.dropout(x, training=self.training)
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)

    torch.manual_seed(0)
    sequential = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16, momentum=0.3), nn.ELU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 3 * 3, 64), nn.BatchNorm1d(64), nn.GELU(),
        nn.Dropout(0.2), nn.Linear(64, 10))
    with torch.no_grad():
        for m in sequential.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return {"examples-net": (ExamplesNet(), 1_199_882), "net-2019": (Net2019(), 21_840),
            "sequential-bn": (sequential, None)}


# -- tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("make,total", [(keras_simple_convnet, 34_826), (keras_bn_model, None)],
                         ids=["keras-io-convnet", "keras-bn"])
def test_keras_model_comes_in_and_predicts_the_same_in_torch(make, total, test_images):
    model = make()
    spec, weights = from_keras(model, with_weights=True)
    assert spec.total_params == model.count_params() == (total or model.count_params())
    assert spec.state_params == sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    kb = get_backend("keras")
    built = mnistcnn.build(spec, backend="keras")  # the spec's shapes are Keras' own, layer by layer
    assert [tuple(s) for s in kb.layer_output_shapes(built, spec)] == [r.output_shape for r in spec.rows]
    x, _ = test_images
    original = model.predict(x.transpose(0, 2, 3, 1), batch_size=1000, verbose=0)
    tb = get_backend("torch")
    twin = tb.build(spec)
    tb.set_weights(twin, spec, weights)
    ours = tb.predict(twin, spec, x)
    diff = float(np.abs(ours - original).max())
    assert diff < TOL, diff
    assert (ours.argmax(1) == original.argmax(1)).all()


@pytest.mark.parametrize("name", ["examples-net", "net-2019", "sequential-bn"])
def test_torch_module_comes_in_and_predicts_the_same_in_keras(name, test_images):
    import torch

    module, total = torch_modules()[name]
    module.eval()
    spec, weights = from_torch(module, with_weights=True)
    counted = sum(p.numel() for p in module.parameters()) + sum(
        b.numel() for n, b in module.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert spec.total_params == counted == (total or counted)
    x, _ = test_images
    with torch.no_grad():
        original = module(torch.from_numpy(x)).numpy()
    kb = get_backend("keras")
    twin = kb.build(spec)
    kb.set_weights(twin, spec, weights)
    ours = kb.predict(twin, spec, x)
    diff = float(np.abs(ours - original).max())
    assert diff < TOL, diff
    assert (ours.argmax(1) == original.argmax(1)).all()


def test_the_2019_net_is_the_zoo_entry():
    module, _ = torch_modules()["net-2019"]
    spec = from_torch(module)
    assert spec.total_params == mnistcnn.zoo.get("pytorch-examples-net").total_params


@pytest.mark.slow
def test_a_saved_keras_file_and_a_torch_class_through_the_command_line(tmp_path, mnist_path, capsys):
    import json
    import sys

    from mnistcnn.cli import main

    keras_simple_convnet().save(tmp_path / "convnet.keras")
    assert main(["import", str(tmp_path / "convnet.keras"), "--out", str(tmp_path / "imported")]) == 0
    out = capsys.readouterr().out
    assert "34,826 parameters" in out
    doc = json.loads((tmp_path / "imported" / "spec.json").read_text())
    assert [layer["kind"] for layer in doc["layers"]][:2] == ["Conv2D", "MaxPool2D"]
    assert main(["evaluate", str(tmp_path / "imported" / "weights.npz"), "--data-dir", str(mnist_path)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert lines[0]["test_acc"] == pytest.approx(lines[1]["test_acc"], abs=2e-4)
    assert main(["evaluate", str(tmp_path / "convnet.keras"), "--data-dir", str(mnist_path)]) == 0  # the file itself
    direct = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert direct[0]["test_acc"] == pytest.approx(lines[0]["test_acc"], abs=2e-4)
    # summary and compare take the .keras file where they take a zoo name
    assert main(["summary", str(tmp_path / "convnet.keras"), "--backend", "both"]) == 0
    assert "all backends agree with the spec" in capsys.readouterr().out
    (tmp_path / "usernet.py").write_text(
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n\n"
        "    def forward(self, x):\n        return self.body(x)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["import", "usernet:Net", "--out", str(tmp_path / "net")]) == 0
    finally:
        sys.path.remove(str(tmp_path))
    assert "7,850 parameters" in capsys.readouterr().out


@pytest.mark.parametrize("make,words", [
    (lambda nn: nn.Sequential(nn.Conv2d(1, 4, 3, dilation=2), nn.Flatten(), nn.Linear(4 * 24 * 24, 10)),
     ["0 (Conv2d)", "dilation=(2, 2)", "Supported: Conv2d"]),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 4, 3, groups=1, padding=1, padding_mode="reflect")),
     ["padding_mode='reflect'"]),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 4, 3), nn.Upsample(scale_factor=2)),
     ["Upsample has no spec equivalent"]),
    (lambda nn: nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.BatchNorm1d(10, affine=False)),
     ["affine=False"]),
    (lambda nn: nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), ["ceil_mode=True"]),
], ids=["dilation", "padding-mode", "upsample", "bn-no-affine", "ceil-mode"])
def test_unsupported_torch_modules_are_refused_by_name(make, words):
    import torch.nn as nn

    with pytest.raises(ModelImportError) as e:
        from_torch(make(nn))
    for w in words:
        assert w in str(e.value)


# -- residual blocks, the layers tutorials use, today's file formats (issue 33) -----------
@pytest.fixture(scope="module")
def all_images(mnist):
    """All 10,000 test images (standard normalisation)."""
    return data.normalize(mnist.x_test, "standard")


def torch_resnet():
    """A ResNet as PyTorch users write it: torchvision's BasicBlock (``out += identity``, a
    downsample Sequential as the projection), AdaptiveAvgPool2d(1), torch.flatten."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            identity = x
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
            return F.relu(out)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
            self.layer1 = BasicBlock(8, 8)
            self.layer2 = BasicBlock(8, 16, stride=2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = self.layer2(self.layer1(self.stem(x)))
            return self.fc(torch.flatten(self.pool(x), 1))

    torch.manual_seed(0)
    model = _randomize_bn(ResNet())
    return model


def _randomize_bn(model):
    import torch
    import torch.nn as nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return model.eval()


def keras_resnet():
    """A functional Keras ResNet: identity and projection blocks merged by layers.Add."""
    import keras

    def block(x, filters, stride=1):
        shortcut = x
        y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.Activation("relu")(y)
        y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = keras.layers.BatchNormalization()(y)
        if stride != 1 or x.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
            shortcut = keras.layers.BatchNormalization()(shortcut)
        return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = block(block(x, 8), 16, stride=2)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    return _randomize_keras_bn(model)


def _randomize_keras_bn(model):
    import keras

    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.5, b + 0.1, rng.normal(0, 0.5, m.shape), rng.uniform(0.5, 2, v.shape)])
    return model


def _torch_outputs(module, x):
    import torch

    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _keras_outputs(model, x):
    return model.predict(x.transpose(0, 2, 3, 1), batch_size=1000, verbose=0)


def same_in(backend: str, spec, weights, original, x) -> float:
    """The largest difference between ``original`` (the model's own outputs on x) and the
    imported spec's, rebuilt in ``backend`` with its weights; the predicted classes agree."""
    b = get_backend(backend)
    twin = b.build(spec)
    b.set_weights(twin, spec, weights)
    ours = b.predict(twin, spec, x)
    assert (ours.argmax(1) == original.argmax(1)).all(), f"{(ours.argmax(1) != original.argmax(1)).sum()} differ"
    diff = float(np.abs(ours - original).max())
    assert diff < TOL, diff
    return diff


def test_a_torch_resnet_comes_in_as_residual_blocks_and_predicts_the_same_in_keras(all_images):
    module = torch_resnet()
    spec, weights = from_torch(module, with_weights=True)
    assert [r.kind for r in spec.rows] == ["Conv2D", "BatchNorm", "Activation", "Residual", "Activation",
                                           "Residual", "Activation", "GlobalAvgPool2D", "Dense"]
    assert spec.rows[5].layer.shortcut is not None and spec.rows[3].layer.shortcut is None
    counted = sum(p.numel() for p in module.parameters()) + sum(
        b.numel() for n, b in module.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert spec.total_params == counted
    assert "residual_5.shortcut.conv2d_0.kernel" in weights
    same_in("keras", spec, weights, _torch_outputs(module, all_images), all_images)


def test_a_keras_resnet_comes_in_as_residual_blocks_and_predicts_the_same_in_torch(all_images):
    model = keras_resnet()
    spec, weights = from_keras(model, with_weights=True)
    assert [r.kind for r in spec.rows].count("Residual") == 2
    assert spec.total_params == model.count_params()
    same_in("torch", spec, weights, _keras_outputs(model, all_images), all_images)


def _leaves(spec) -> list:
    """Every inner row's name, kind, shape, counts and pads (a torch 'same' reads back as its
    explicit padding where that is symmetric)."""
    return [(r.name, r.kind, r.output_shape, r.trainable, r.state,
             r.layer.pads(r.input_shape) if hasattr(r.layer, "pads") else None) for r in spec.leaves]


def test_the_zoo_resnet_goes_out_and_comes_back_from_both_frameworks():
    spec = mnistcnn.zoo.get("resnet-mini")
    for backend, read in (("torch", lambda m: from_torch(m, name="resnet-mini")), ("keras", from_keras)):
        assert _leaves(read(mnistcnn.build(spec, backend=backend))) == _leaves(spec), backend


def test_other_graphs_are_refused_by_name():
    import keras
    import torch
    import torch.nn as nn

    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], 1)

    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return x * torch.sigmoid(self.conv(x))

    class Mismatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)

        def forward(self, x):
            return x + self.conv(x)

    with pytest.raises(ModelImportError, match="do not rejoin by an addition"):
        from_torch(Concat())
    with pytest.raises(ModelImportError, match="do not rejoin by an addition"):
        from_torch(Gate())
    with pytest.raises(ModelImportError, match=r"Residual's body gives 4x14x14 but its input.*shortcut=\[Conv2D\(4, 1, "
                                               r"stride=2\)\]"):
        from_torch(Mismatch())
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Concatenate()([keras.layers.Conv2D(2, 3)(inputs), keras.layers.Conv2D(2, 3)(inputs)])
    with pytest.raises(ModelImportError, match="do not rejoin by an addition"):
        from_keras(keras.Model(inputs, x))


def test_unsupported_keras_layers_are_refused_by_name():
    import keras

    bad_axis = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3),
                                 keras.layers.BatchNormalization(axis=1)])
    with pytest.raises(ModelImportError, match=r"axis=1 normalises over a non-channel axis.*mnistcnn defaults"):
        from_keras(bad_axis)
    dilated = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, dilation_rate=2)])
    with pytest.raises(ModelImportError, match=r"layer 'conv2d.*' \(Conv2D\).*dilation_rate=\[?\(?2, 2"):
        from_keras(dilated)
    swish = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="swish")])
    with pytest.raises(ModelImportError, match="activation='silu'.*Supported: linear, relu"):
        from_keras(swish)


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")  # users still have such files
@pytest.mark.parametrize("name", ["examples-net", "net-2019", "sequential-bn"])
def test_torchscript_file_gives_the_same_spec_and_weights_as_the_module(name, tmp_path):
    import torch

    from mnistcnn.importers import from_torchscript

    module, _ = torch_modules()[name]
    module.eval()
    torch.jit.save(torch.jit.script(module), str(tmp_path / "m.pt"))
    spec, weights = from_torchscript(tmp_path / "m.pt", with_weights=True)
    ref, ref_weights = from_torch(module, with_weights=True)
    assert spec.layers == ref.layers
    assert all(np.array_equal(weights[k], ref_weights[k]) for k in ref_weights)


def test_view_by_batch_size_and_a_state_dict_with_its_class(tmp_path, capsys):
    import sys

    import torch

    from mnistcnn.cli import main

    (tmp_path / "sizenet.py").write_text(
        "import torch.nn as nn\nimport torch.nn.functional as F\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(1, 4, 3)\n"
        "        self.fc = nn.Linear(4 * 13 * 13, 10)\n\n"
        "    def forward(self, x):\n        x = F.max_pool2d(F.relu(self.conv(x)), 2)\n"
        "        return self.fc(x.view(x.size(0), -1))\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import sizenet

        net = sizenet.Net()
        assert [r.kind for r in from_torch(net).rows] == ["Conv2D", "Activation", "MaxPool2D", "Flatten", "Dense"]
        torch.save(net.state_dict(), tmp_path / "state.pth")
        assert main(["import", str(tmp_path / "state.pth"), "--torch-class", "sizenet:Net",
                     "--out", str(tmp_path / "out")]) == 0
    finally:
        sys.path.remove(str(tmp_path))
    assert "6,810 parameters" in capsys.readouterr().out
    from mnistcnn import weights as W

    _, saved, _ = W.load(tmp_path / "out" / "weights.npz")
    assert np.array_equal(saved["conv2d_0.kernel"], net.conv.weight.detach().numpy())


def test_the_readme_examples_run():
    """The README's "Your own model" section, as written there."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Your own model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    for block in blocks:
        scope = {}
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 (our own README)
        assert scope["spec"].total_params in (34_826, 1_199_882)
        assert ("torch_model" in scope) or ("keras_model" in scope)


def test_an_explicit_padding_reads_as_same_where_it_is_same():
    """ZeroPad2d before a convolution, -inf before a max pooling (what mnistcnn's torch
    builder makes of padding='same' where TensorFlow pads one side more) read as 'same';
    a padding that 'same' would not add is refused."""
    import torch.nn as nn

    spec = from_torch(nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 2, 3, stride=2),
                                    nn.ConstantPad2d((0, 1, 0, 1), float("-inf")), nn.MaxPool2d(3, 2)), (1, 8, 8))
    assert [(r.kind, r.layer.padding) for r in spec.rows] == [("Conv2D", "same"), ("MaxPool2D", "same")]
    with pytest.raises(ModelImportError, match="is not what padding='same' adds"):
        from_torch(nn.Sequential(nn.ZeroPad2d(1), nn.MaxPool2d(2)), (1, 8, 8))


# -- the layers tutorials use and today's file formats (issue 33): each imports exactly, or
# is refused saying why and what to do instead ---------------------------------------------
def torch_tutorial_models():
    """Forwards as tutorials write them: a flat (784,) input, a view to the image at the
    input, x.view(x.shape[0], -1) and x.reshape(x.shape[0], -1), adaptive poolings to sizes
    that divide the map, an nn.Sequential inside a module."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Flat(nn.Module):  # the classic MLP on images given as 784 values
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(784, 64), nn.Linear(64, 10)

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x)))

    class Shapes(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.pool = nn.AdaptiveAvgPool2d((7, 7))  # 14x14 -> 7x7: 2x2 windows
            self.fc1, self.fc2 = nn.Linear(8 * 7 * 7, 32), nn.Linear(32, 10)

        def forward(self, x):
            x = x.view(-1, 1, 28, 28)
            x = self.pool(self.features(x))
            x = F.relu(self.fc1(x.view(x.shape[0], -1)))
            return self.fc2(x.reshape(x.shape[0], -1))

    class MaxHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, stride=2)
            self.pool = nn.AdaptiveMaxPool2d(1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(F.relu(self.conv(x))), 1))

    torch.manual_seed(0)
    return {"flat-784": Flat(), "view-shape-adaptive": Shapes(), "adaptive-max": MaxHead()}


@pytest.mark.parametrize("name", ["flat-784", "view-shape-adaptive", "adaptive-max"])
def test_tutorial_torch_forwards_come_in_and_predict_the_same_in_keras(name, all_images):
    module = torch_tutorial_models()[name].eval()
    spec, weights = from_torch(module, with_weights=True)
    assert spec.total_params == sum(p.numel() for p in module.parameters())
    x = all_images.reshape(len(all_images), -1) if name == "flat-784" else all_images
    same_in("keras", spec, weights, _torch_outputs(module, x), all_images)
    kinds = [r.kind for r in spec.rows]
    assert {"flat-784": "Flatten", "view-shape-adaptive": "AvgPool2D", "adaptive-max": "GlobalMaxPool2D"}[name] in kinds


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")
def test_a_scripted_module_holding_a_sequential_comes_in_as_from_torch_reads_it(tmp_path, all_images):
    import torch

    from mnistcnn.importers import from_torchscript

    module = torch_tutorial_models()["view-shape-adaptive"].eval()
    torch.jit.script(module).save(str(tmp_path / "m.pt"))
    spec, weights = from_torchscript(tmp_path / "m.pt", with_weights=True)
    ref, ref_weights = from_torch(module, with_weights=True)
    assert spec.layers == ref.layers and all(np.array_equal(weights[k], ref_weights[k]) for k in ref_weights)
    same_in("keras", spec, weights, _torch_outputs(module, all_images), all_images)


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:DeprecationWarning")
def test_files_and_modules_that_are_refused_say_why_and_what_to_do(tmp_path):
    import torch
    import torch.nn as nn

    from mnistcnn.importers import load_model

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)).eval()
    x = torch.zeros(1, 1, 28, 28)
    exported = torch.export.export(net, (x,))
    torch.export.save(exported, str(tmp_path / "m.pt2"))
    torch.jit.trace(net, x).save(str(tmp_path / "traced.pt"))
    torch.save(net, tmp_path / "whole.pt")
    for given in (lambda: from_torch(exported), lambda: load_model(tmp_path / "m.pt2")):
        with pytest.raises(ModelImportError, match=r"torch.export ExportedProgram \(.pt2\).*Give the nn.Module"):
            given()
    with pytest.raises(ModelImportError, match=r"traced TorchScript file \(torch.jit.trace\).*\(dilation\).*"
                                               r"torch.jit.script\(model\).save\(path\)"):
        load_model(tmp_path / "traced.pt")
    with pytest.raises(ModelImportError, match=r"a whole model saved with torch.save\(model\).*never unpickles.*"
                                               r"state_dict\(\).*--torch-class"):
        load_model(tmp_path / "whole.pt")

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.conv(torch.relu(self.conv(x))), 1))

    with pytest.raises(ModelImportError, match="the module conv is called 2 times, so its weights are shared"):
        from_torch(Twice())
    with pytest.raises(ModelImportError, match=r"output_size=3 on a 26x26 map pools windows of unequal sizes"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(3)))


def keras_tutorial_models():
    """Keras models as tutorials write them: a flat input reshaped to the image, a nested
    Sequential (in a Sequential and in a functional model), GlobalMaxPooling2D."""
    import keras

    keras.utils.set_random_seed(0)
    reshaped = keras.Sequential([keras.Input((784,)), keras.layers.Reshape((28, 28, 1)),
                                 keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.MaxPooling2D(),
                                 keras.layers.Flatten(), keras.layers.Dense(10)])
    block = keras.Sequential([keras.layers.Conv2D(8, 3, padding="same"), keras.layers.ReLU(),
                              keras.layers.MaxPooling2D()], name="block")
    nested = keras.Sequential([keras.Input((28, 28, 1)), block, keras.layers.Flatten(), keras.layers.Dense(10)])
    inputs = keras.Input((28, 28, 1))
    inner = keras.Sequential([keras.layers.Conv2D(8, 3, strides=2), keras.layers.Activation("relu")], name="inner")
    functional = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalMaxPooling2D()(inner(inputs))))
    return {"reshape-input": reshaped, "nested-sequential": nested, "nested-in-functional-gmp": functional}


@pytest.mark.parametrize("name", ["reshape-input", "nested-sequential", "nested-in-functional-gmp"])
def test_tutorial_keras_models_come_in_and_predict_the_same_in_torch(name, all_images):
    model = keras_tutorial_models()[name]
    spec, weights = from_keras(model, with_weights=True)
    assert spec.total_params == model.count_params()
    x = all_images.reshape(len(all_images), -1) if name == "reshape-input" else all_images.transpose(0, 2, 3, 1)
    original = model.predict(x, batch_size=1000, verbose=0)
    same_in("torch", spec, weights, original, all_images)


def test_keras_models_that_are_refused_say_why_and_what_to_do():
    import keras

    def first(layer):
        return keras.Sequential([keras.Input((28, 28, 1)), layer, keras.layers.Flatten(), keras.layers.Dense(10)])

    with pytest.raises(ModelImportError, match=r"Rescaling\(scale=0.00392.*drop Rescaling and train or evaluate "
                                               r"with --normalization unit"):
        from_keras(first(keras.layers.Rescaling(1 / 255)))
    with pytest.raises(ModelImportError, match=r"drop Normalization and use --normalization standard"):
        from_keras(first(keras.layers.Normalization(mean=0.1307, variance=0.3081 ** 2)))

    class Experts(keras.Model):  # TensorFlow's "quickstart for experts"
        def __init__(self):
            super().__init__()
            self.conv1 = keras.layers.Conv2D(32, 3, activation="relu")
            self.flatten = keras.layers.Flatten()
            self.d1 = keras.layers.Dense(128, activation="relu")
            self.d2 = keras.layers.Dense(10)

        def call(self, x):
            return self.d2(self.d1(self.flatten(self.conv1(x))))

    model = Experts()
    model(np.zeros((1, 28, 28, 1), "float32"))
    with pytest.raises(ModelImportError, match=r"subclassed keras.Model.*keras.Sequential.*functional API"):
        from_keras(model)
    inputs = keras.Input((28, 28, 1))
    shared = keras.layers.Conv2D(1, 3, padding="same")
    with pytest.raises(ModelImportError, match=r"called 2 times \(shared weights\)"):
        from_keras(keras.Model(inputs, keras.layers.Flatten()(shared(shared(inputs)))))

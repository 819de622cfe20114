"""The zoo against the reports' own code: each model as its report wrote it (PyTorch
modules, Keras Sequential models: the architectures are facts of the reports), imported
with mnistcnn.importers, must be the zoo entry layer for layer (inline activations and
explicit 'same' paddings compared as what they compute)."""
from dataclasses import fields, replace

import pytest

from mnistcnn import spec as S
from mnistcnn import zoo
from mnistcnn.importers import ModelImportError, from_keras, from_torch


def canonical(spec) -> list:
    """Layers as (kind, arguments, pads): an inline activation becomes its own Activation,
    and padding is compared as the pads it gives on this input."""
    out = []
    for r in spec.rows:
        layer, act = r.layer, getattr(r.layer, "activation", None)
        if act is not None and isinstance(layer, (S.Conv2D, S.Dense)):
            layer = replace(layer, activation=None)
        args = {f.name: getattr(layer, f.name) for f in fields(layer) if f.name != "padding"}
        pads = layer.pads(r.input_shape) if hasattr(layer, "pads") else None
        out.append((type(layer).__name__, args, pads))
        if act is not None and isinstance(r.layer, (S.Conv2D, S.Dense)):
            out.append(("Activation", {f.name: getattr(S.Activation(act), f.name) for f in fields(S.Activation)},
                        None))
    return out


def report_001_net(hidden=50, pool="max"):
    """Report 001 lines 610-625 (862-877 with 25 hidden, 966-982 with average pooling)."""
    import torch.nn as nn
    import torch.nn.functional as F

    pool2d = F.max_pool2d if pool == "max" else F.avg_pool2d

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.conv2_drop = nn.Dropout2d()
            self.fc1 = nn.Linear(320, hidden)
            self.fc2 = nn.Linear(hidden, 10)

        def forward(self, x):
            x = F.relu(pool2d(self.conv1(x), 2))
            x = F.relu(pool2d(self.conv2_drop(self.conv2(x)), 2))
            x = x.view(-1, 320)
            x = F.relu(self.fc1(x))
            x = F.dropout(x, training=self.training)
            x = self.fc2(x)
            return F.log_softmax(x, -1)

    return Net()


def report_003_simple_fc():
    """Report 003 lines 131-139."""
    import torch.nn as nn
    import torch.nn.functional as F

    class SimpleFC(nn.Module):
        def __init__(self, input_size=784, num_classes=10):
            super().__init__()
            self.fcl = nn.Linear(input_size, num_classes)

        def forward(self, x):
            x = x.view(-1, 784)
            return F.log_softmax(self.fcl(x), dim=1)

    return SimpleFC()


def report_003_mlp(training_flag: bool):
    """Report 003 lines 306-324; as printed, its F.dropout has no training=self.training."""
    import torch.nn as nn
    import torch.nn.functional as F

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(784, 512), nn.Linear(512, 512), nn.Linear(512, 10)

        def forward(self, x):
            x = F.relu(self.fc1(x.view(-1, 784)))
            x = F.dropout(x, p=0.2, training=self.training) if training_flag else F.dropout(x, p=0.2)
            x = F.relu(self.fc2(x))
            x = F.dropout(x, p=0.2, training=self.training) if training_flag else F.dropout(x, p=0.2)
            return F.log_softmax(self.fc3(x), dim=1)

    return MLP()


def report_003_complex_cnn():
    """Report 003 lines 487-527."""
    import torch.nn as nn
    import torch.nn.functional as F

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
            self.conv3 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
            self.fc1, self.fc2, self.fc3 = nn.Linear(64 * 7 * 7, 512), nn.Linear(512, 256), nn.Linear(256, 10)
            self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(32), nn.BatchNorm2d(64), nn.BatchNorm2d(64)
            self.bn4, self.bn5 = nn.BatchNorm1d(512), nn.BatchNorm1d(256)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(F.max_pool2d(self.bn2(self.conv2(x)), 2))
            x = F.relu(F.max_pool2d(self.bn3(self.conv3(x)), 2))
            x = x.view(-1, 64 * 7 * 7)
            x = F.dropout(F.relu(self.bn4(self.fc1(x))), training=self.training)
            x = F.dropout(F.relu(self.bn5(self.fc2(x))), training=self.training)
            return F.log_softmax(self.fc3(x), dim=1)

    return CNN()


def report_001_keras(convs=2):
    """Report 001 lines 75-88 (530-545: the second conv block commented out)."""
    import keras
    from keras.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D

    model = keras.Sequential([keras.Input((28, 28, 1))])
    model.add(Conv2D(64, kernel_size=(3, 3), activation="relu"))
    model.add(BatchNormalization())
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    if convs == 2:
        model.add(Conv2D(64, (3, 3), activation="relu"))
        model.add(BatchNormalization())
        model.add(MaxPooling2D(pool_size=(2, 2)))
        model.add(Dropout(0.25))
    model.add(Flatten())
    for _ in range(3):
        model.add(Dense(128, activation="relu"))
        model.add(BatchNormalization())
        model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    return model


CASES = {
    "pytorch-examples-net": lambda: from_torch(report_001_net()),
    "pytorch-examples-net-25": lambda: from_torch(report_001_net(hidden=25)),
    "pytorch-examples-net-avgpool": lambda: from_torch(report_001_net(pool="avg")),
    "simple-fc": lambda: from_torch(report_003_simple_fc()),
    "mlp": lambda: from_torch(report_003_mlp(training_flag=True)),
    "complex-cnn": lambda: from_torch(report_003_complex_cnn()),
    "keras-bn-cnn": lambda: from_keras(report_001_keras()),
    "keras-bn-cnn-1conv": lambda: from_keras(report_001_keras(convs=1)),
}


@pytest.mark.parametrize("name", CASES)
def test_zoo_entry_is_its_reports_code(name):
    imported = CASES[name]()
    assert canonical(imported) == canonical(zoo.get(name))
    assert "report 00" in zoo.ZOO[name].source  # and says which report, which lines


def test_report_003s_mlp_as_printed_keeps_dropout_on_when_testing():
    """Its F.dropout(x, p=0.2) has no training=self.training: the importer refuses it
    rather than import a model that behaves otherwise in inference."""
    with pytest.raises(ModelImportError, match=r"F.dropout\(x, p=0.2\) without training=self.training stays on"):
        from_torch(report_003_mlp(training_flag=False))


def test_every_zoo_entry_names_its_source():
    for name, entry in zoo.ZOO.items():  # an entry of the project's own says so (resnet-mini)
        assert "report 00" in entry.source or entry.source.startswith("not from a reference report"), name

"""Lesson 2: compare a model you wrote in PyTorch or in Keras.

You do not have to write a spec by hand: mnistcnn reads a PyTorch module (traced with
torch.fx) or a Keras model (its layer configurations) into a spec, exactly, or refuses
naming the layer and the argument it cannot represent. The spec then trains in both
frameworks like any other.

    python examples/02_compare_your_own_model.py        # about 2 minutes on a laptop CPU
"""
import os

import torch
from torch import nn
from torch.nn import functional as F

import mnistcnn
from mnistcnn.backends import get_backend
from mnistcnn.train import TrainConfig

get_backend("keras")  # Keras on TensorFlow, loaded with mnistcnn's settings (quiet C++ logs)
import keras  # noqa: E402 (after the line above)

SMOKE = os.environ.get("MNISTCNN_SMOKE") == "1"


# 1. A PyTorch model written the usual way: modules in __init__, functional calls in
#    forward. Input (N, 1, 28, 28), output logits (N, 10).
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.fc1 = nn.Linear(16 * 5 * 5, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


# 2. Into a spec. The summary names each layer as both frameworks will name it.
spec = mnistcnn.from_torch(Net(), input_shape=(1, 28, 28), name="my-torch-net")
spec.summary()

# 3. The same network written in Keras gives the same layers (Keras works channels-last,
#    (28, 28, 1); the spec is channels-first, and mnistcnn translates).
keras_model = keras.Sequential([
    keras.Input((28, 28, 1)),
    keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(10),
])
from_keras = mnistcnn.from_keras(keras_model)
print(f"Keras model: {from_keras.total_params:,} parameters, PyTorch module: {spec.total_params:,}")
assert [r.output_shape for r in from_keras.rows if r.kind in ("Conv2D", "Dense")] == \
       [r.output_shape for r in spec.rows if r.kind in ("Conv2D", "Dense")]

# 4. Compare it. A model of your own is compared as it is (bn=True would also train a
#    variant with BatchNorm after each hidden layer). Training starts from the same fresh
#    initial weights in both frameworks; your module's own weights are not used here
#    (lesson 5 moves trained weights between frameworks).
cfg = TrainConfig(epochs=1, train_limit=10_000)
seeds = 3
if SMOKE:
    cfg, seeds = TrainConfig(epochs=1, train_limit=128, val_size=64, test_limit=200), 1
result = mnistcnn.compare(spec, "runs/examples/lesson-2", seeds=seeds, cfg=cfg,
                          isolate=not SMOKE, progress=not SMOKE)
print(result)

# 5. A saved model file works the same way: mnistcnn.importers.load_model("model.keras")
#    (or a TorchScript file, or "package.module:Class"), and on the command line
#    `mnistcnn compare model.keras --out runs/mine`.

"""Lesson 5: train in PyTorch, predict in Keras, and check that the predictions agree.

The frameworks store the same weights differently: a conv kernel is (out, in, kh, kw) in
PyTorch and (kh, kw, in, out) in Keras, a dense kernel is transposed, and Keras flattens
an image (H, W, C) where PyTorch flattens (C, H, W), so the first dense layer's inputs
come in another order. mnistcnn keeps weights in one neutral form (the spec's layout,
named by layer) and translates each framework's layout to and from it.

    python examples/05_weights_across_frameworks.py        # about 1 minute on a laptop CPU
"""
import os

import numpy as np

from mnistcnn import data, train, transfer
from mnistcnn.backends import get_backend

SMOKE = os.environ.get("MNISTCNN_SMOKE") == "1"

# 1. Train report 000's CNN in PyTorch. Every epoch writes a checkpoint; its
#    checkpoint/weights.npz holds the neutral weights with the spec inside.
cfg = train.TrainConfig(epochs=1, train_limit=20_000)
if SMOKE:
    cfg = train.TrainConfig(epochs=1, train_limit=128, val_size=64, test_limit=200)
run = train.run("seed000-cnn", "torch", cfg, out="runs/examples/lesson-5/torch", overwrite=True,
                progress=not SMOKE)
print(run)
checkpoint = "runs/examples/lesson-5/torch/checkpoint/weights.npz"

# 2. The same weights as a Keras model, and as a PyTorch model again (for the check).
spec, keras_model = transfer.load(checkpoint, "keras")
_, torch_model = transfer.load(checkpoint, "torch")
keras_model.summary()  # a plain keras.Model: fit, evaluate, save it as you would any other

# 3. Predict the test images in both. predict() takes images as (N, C, H, W) and gives
#    each framework its own layout (Keras: (N, H, W, C)).
test = data.load("mnist")
n = 200 if SMOKE else len(test.y_test)
x, y = data.normalize(test.x_test[:n]), test.y_test[:n]
logits = {name: np.asarray(get_backend(name).predict(model, spec, x))
          for name, model in (("torch", torch_model), ("keras", keras_model))}

# 4. Do they agree? The same class for every image, and logits equal to float32
#    rounding (the frameworks add in different orders: about 1e-6, not 0).
same = int((logits["torch"].argmax(1) == logits["keras"].argmax(1)).sum())
print(f"same predicted digit on {same} of {n} test images; largest logit difference "
      f"{np.abs(logits['torch'] - logits['keras']).max():.1e}")
print(f"test accuracy: PyTorch {(logits['torch'].argmax(1) == y).mean():.4f}, "
      f"Keras {(logits['keras'].argmax(1) == y).mean():.4f}")
assert same == n

# 5. Shorter ways to the same:
#    - a model in memory: keras_model = transfer.convert(torch_model, spec, "torch", "keras")
#    - the test set in another framework: train.evaluate_checkpoint(checkpoint, backend="keras")
#      (on the command line: mnistcnn evaluate <checkpoint> --backend keras)
#    - a model of your own with its weights: spec, weights = mnistcnn.from_keras(model, with_weights=True)
#      then transfer.to_model(spec, weights, "torch")
keras_test = train.evaluate_checkpoint(checkpoint, backend="keras")
print(f"the PyTorch-trained model on the test set in Keras: {keras_test['test_acc']:.4f}")

"""Lesson 1: write a CNN once, as a spec, and compare it in PyTorch and in Keras.

A spec is plain data: a list of layers on an input shape. mnistcnn builds the same
network from it in each framework, trains it under one protocol (same initial weights,
same batches in the same order, same optimizer formulas: "harmonized"), and compares the
test accuracies seed by seed, with a confidence interval for the difference.

    python examples/01_compare_a_spec.py        # about 2 minutes on a laptop CPU

The notebook 01_compare_a_spec.ipynb walks through the same steps with their outputs.
"""
import os

import mnistcnn
from mnistcnn import Conv2D, Dense, Flatten, MaxPool2D, ModelSpec
from mnistcnn.train import TrainConfig

# MNISTCNN_SMOKE=1 shrinks every example to seconds (the tests run them that way).
SMOKE = os.environ.get("MNISTCNN_SMOKE") == "1"

# 1. The architecture, once. Shapes are (channels, height, width); each layer checks
#    that it can take the shape it gets, so a mistake fails here, naming the layer.
spec = ModelSpec("lesson-cnn", [
    Conv2D(16, 5, padding="same", activation="relu"), MaxPool2D(2),   # 16 x 14 x 14
    Conv2D(32, 5, padding="same", activation="relu"), MaxPool2D(2),   # 32 x 7 x 7
    Flatten(),
    Dense(64, activation="relu"),
    Dense(10),                                                        # logits of the ten digits
])

# 2. Its summary is arithmetic only (no framework is loaded yet): output shapes,
#    parameters and multiply-adds per layer, as Keras' model.summary() prints them.
spec.summary()

# 3. The training settings. Short on purpose: 10,000 training images, one epoch.
#    (TrainConfig holds every setting: optimizer, lr, batch size, schedule, ...)
cfg = TrainConfig(epochs=1, train_limit=10_000)
seeds = 3
if SMOKE:
    cfg = TrainConfig(epochs=1, train_limit=128, val_size=64, test_limit=200)
    seeds = 1

# 4. The comparison: every seed trained in both frameworks (3 seeds x 2 = 6 runs), each
#    run's files under runs/examples/lesson-1/runs/, and a report (report.md, plots).
#    Finished runs are kept: running the script again skips them.
#    (isolate=False trains in this process instead of worker processes: quicker to start,
#    which the smoke test uses; progress=False keeps it quiet.)
result = mnistcnn.compare(spec, "runs/examples/lesson-1", seeds=seeds, cfg=cfg,
                          isolate=not SMOKE, progress=not SMOKE)

# 5. Printed, the result is its verdict: is there a difference between the frameworks,
#    and how large could it be? With 3 seeds the confidence interval is wide; more seeds
#    narrow it (or ci_target_pp=0.1 adds seeds until it is within +-0.1 points).
print(result)

# 6. Its rows are plain records (or a pandas DataFrame: result.to_pandas()).
for run in result.records("runs"):
    print(f"  {run['backend']:6s} seed {run['seed']}: test accuracy {run['test_acc']:.4f}, "
          f"{run['epoch_time_s']:.1f} s per epoch")

# 7. The figures, drawn on request (matplotlib figures; a notebook shows them inline).
#    forest: the paired difference with its 95% CI; accuracy: per epoch, both frameworks.
figures = result.plot("forest", "accuracy")
print("saved:", *figures.save("runs/examples/lesson-1/figures"))

# 8. Later, or in another process, the comparison opens again from its directory.
again = mnistcnn.load_comparison("runs/examples/lesson-1")
assert again.paired == result.paired

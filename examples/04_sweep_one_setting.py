"""Lesson 4: a sweep over one setting, in both frameworks.

A sweep trains every value of a grid (here the learning rate) in each framework, so you
see whether a setting matters, and whether it matters the same way in both. A grid axis
is a spec variant (activation, pooling, hidden, kernel, conv_blocks, arch) or any
training setting (lr, batch_size, epochs, optimizer, ...); several axes make every
combination.

    python examples/04_sweep_one_setting.py        # about 3 minutes on a laptop CPU
"""
import os

import mnistcnn
from mnistcnn.train import TrainConfig

SMOKE = os.environ.get("MNISTCNN_SMOKE") == "1"

# 1. The base settings every cell starts from, and the grid: three learning rates of
#    plain SGD on the small CNN of the zoo (simple-cnn).
cfg = TrainConfig(optimizer="sgd", epochs=2, train_limit=10_000)
grid = {"lr": [0.1, 0.01, 0.001]}
seeds = 2
if SMOKE:
    cfg = TrainConfig(optimizer="sgd", epochs=1, train_limit=128, val_size=64, test_limit=200)
    grid, seeds = {"lr": [0.1, 0.001]}, 1

# 2. The sweep: 3 values x 2 frameworks x 2 seeds = 12 runs, finished runs kept (run it
#    again with another value and only the new cells train). Its table is also written
#    to runs/examples/lesson-4/sweep.md.
result = mnistcnn.sweep("simple-cnn", grid, "runs/examples/lesson-4", seeds=seeds, cfg=cfg,
                        isolate=not SMOKE, progress=not SMOKE)

# 3. Printed: the best and worst cell in each framework.
print(result)

# 4. One record per cell and framework: pick out what you need.
for row in result.records():
    print(f"  lr={row['lr']:<6g} {row['backend']:5s} test accuracy {row['test_acc_mean'] * 100:6.2f}%  "
          f"validation accuracy per epoch: {', '.join(f'{v * 100:.1f}' for v in row['val_acc_per_epoch'])}")

# 5. Figures: test accuracy of every cell (each seed and the mean), and the validation
#    accuracy per epoch, one panel per cell.
print("figures:", *result.plot().save("runs/examples/lesson-4/figures"))

# 6. The same sweep on the command line:
#    mnistcnn sweep simple-cnn --grid lr=0.1,0.01,0.001 --optimizer sgd --epochs 2 \
#        --train-limit 10000 --seeds 2 --out runs/examples/lesson-4

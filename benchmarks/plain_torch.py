"""A plain PyTorch script, as a user writes it (pytorch/examples style): seed000-cnn,
Adam 1e-3, batch 128, one epoch over the first N training images (default all 60,000), then the test set.
The whole-process yardstick for `mnistcnn train` (benchmarks/processes.py).

    python benchmarks/plain_torch.py DATA_DIR [N]
"""
import sys

import torch
from plain_data import mnist
from torch import nn


def main(data_dir, n=60_000):
    torch.manual_seed(0)
    data = mnist(data_dir)
    x = {s: torch.from_numpy(images).unsqueeze(1) for s, (images, _) in data.items()}
    y = {s: torch.from_numpy(labels) for s, (_, labels) in data.items()}
    model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for i in torch.randperm(n).split(128):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x["train"][i]), y["train"][i]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        correct = sum((model(xb).argmax(1) == yb).sum().item()
                      for xb, yb in zip(x["t10k"].split(1000), y["t10k"].split(1000)))
    print(f"test accuracy {correct / 10_000:.4f}")


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:]))

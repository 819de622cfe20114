"""The PyTorch Net study: 50 vs 25 hidden units, max vs average pooling (SGD, lr 0.01,
momentum 0.5 as pytorch/examples)."""
import sys

from _study import study

if __name__ == "__main__":
    sys.exit(study("pytorch-width-pooling",
                   ["sweep", "pytorch-examples-net", "--grid", "hidden=50,25", "--grid", "pooling=max,avg",
                    "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.5", "--batch-size", "64"],
                   full=["--seeds", "1", "--epochs", "2", "--train-limit", "20000"]))

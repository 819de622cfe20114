"""The SGD study: simple FC, simple CNN and complex CNN with plain SGD, and its
learning-rate experiments (0.1 / 0.01 / 0.001, and 2 epochs at 0.01 then 2 at 0.001)."""
import sys

from _study import study

if __name__ == "__main__":
    rc = study("sgd-models", ["sweep", "simple-fc", "--grid", "arch=simple-fc,simple-cnn,complex-cnn",
                              "--grid", "lr=0.1,0.01,0.001", "--optimizer", "sgd"],
               full=["--seeds", "1", "--epochs", "4", "--train-limit", "10000"])
    # the report's schedule: 2 epochs at 0.01, then 2 at 0.001
    rc |= study("sgd-lr-schedule", ["sweep", "simple-fc", "--grid", "arch=simple-fc,simple-cnn,complex-cnn",
                                    "--optimizer", "sgd", "--lr", "0.01", "--schedule", "multistep",
                                    "--milestones", "2"],
                full=["--seeds", "1", "--epochs", "4", "--train-limit", "10000"])
    sys.exit(rc)

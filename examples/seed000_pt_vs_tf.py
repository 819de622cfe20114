"""seed000-cnn in PyTorch and Keras, with and without batch norm (the seed report):
test accuracy over seeds, loss curves, and which native defaults make them differ."""
import sys

from _study import study

if __name__ == "__main__":
    sys.exit(study("seed000-pt-vs-tf", ["compare", "seed000-cnn", "--native", "--ablate"],
                   full=["--seeds", "2", "--epochs", "1", "--train-limit", "20000"]))

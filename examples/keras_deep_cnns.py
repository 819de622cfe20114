"""The 3/5/7-layer Keras CNNs of report 004 (its layer lists, channel BatchNorm), in both backends."""
import sys

from _study import study

if __name__ == "__main__":
    sys.exit(study("keras-deep-cnns",
                   ["sweep", "keras3-cnn", "--grid", "arch=keras3-cnn,keras5-cnn,keras7-cnn"],
                   full=["--seeds", "1", "--epochs", "2", "--train-limit", "20000"]))

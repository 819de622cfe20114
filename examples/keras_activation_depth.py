"""The Keras BN CNN study: activation (relu, sigmoid, tanh) and two conv blocks vs one."""
import sys

from _study import study

if __name__ == "__main__":
    sys.exit(study("keras-activation-depth",
                   ["sweep", "keras-bn-cnn", "--grid", "activation=relu,sigmoid,tanh",
                    "--grid", "conv_blocks=2,1"],
                   full=["--seeds", "1", "--epochs", "2", "--train-limit", "10000"]))

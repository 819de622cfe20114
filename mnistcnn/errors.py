"""The errors mnistcnn raises. Each message names the cause and the fix.

A message speaks to a Python caller: an argument is written in backticks, as its name
(`out`) or with a value (`resume=True`, `lr=0.1`), and a value received may follow as
``lr=0.1``. The command line renders each argument of the message that is one of its
flags as that flag (--out, --resume, --lr 0.1): one message, in the words of whoever
called (mnistcnn.cli)."""
import re

#: an argument in a message: `name` or `name=value`
ARGUMENT = re.compile(r"`([A-Za-z_]\w*)(?:=[^`]*)?`")


class MnistCnnError(Exception):
    """Base class of every error raised on purpose by mnistcnn. ``arguments``: the names
    of the arguments the message speaks of (default: those it writes in backticks)."""

    def __init__(self, message: str = "", *, arguments=None):
        super().__init__(message)
        self.arguments = tuple(dict.fromkeys(ARGUMENT.findall(message) if arguments is None else arguments))


class SpecError(MnistCnnError, ValueError):
    """An architecture spec that cannot work (bad argument, impossible shape)."""


class BackendUnavailableError(MnistCnnError, ImportError):
    """A backend was asked for whose framework is not installed."""


class DataError(MnistCnnError, OSError):
    """A data file that is missing, corrupt or not what it claims to be."""


class ConfigError(MnistCnnError, ValueError):
    """A training or comparison setting that cannot be used."""


class TrainingDiverged(MnistCnnError, ArithmeticError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class CheckpointError(MnistCnnError, OSError):
    """A checkpoint file that is missing, damaged or not a mnistcnn checkpoint."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so that locks are released, children stopped
    and finished work kept, as for Ctrl-C (mnistcnn.cli installs the handler)."""


def raise_terminated(signum=None, frame=None):
    """A SIGTERM handler: ``signal.signal(signal.SIGTERM, raise_terminated)``."""
    raise Terminated()

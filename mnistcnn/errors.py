"""The errors mnistcnn raises. Each message names the cause and the fix."""


class MnistCnnError(Exception):
    """Base class of every error raised on purpose by mnistcnn."""


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

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def mnist_dir() -> Path | None:
    """The genuine MNIST files: $MNISTCNN_DATA_DIR, else ../shared/data/mnist."""
    d = os.environ.get("MNISTCNN_DATA_DIR")
    d = Path(d) if d else SHARED_MNIST
    return d if (d / "train-images-idx3-ubyte.gz").exists() else None


@pytest.fixture(scope="session")
def mnist_path():
    d = mnist_dir()
    if d is None:
        msg = ("genuine MNIST files not found: set MNISTCNN_DATA_DIR or provide "
               f"{SHARED_MNIST}")
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI must run the real-data tests)")
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def mnist(mnist_path):
    from mnistcnn import data

    return data.load("mnist", mnist_path, download=False)

"""MNIST for the plain scripts (plain_torch.py, plain_keras.py), read as a user would:
numpy over the gzipped IDX files, inputs standardised with 0.1307/0.3081."""
import gzip

import numpy as np


def idx(path):
    raw = gzip.open(path).read()
    dims = raw[3]
    shape = np.frombuffer(raw, ">i4", dims, 4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist(data_dir) -> dict:
    """{"train"|"t10k": (images (N, 28, 28) float32, labels int64)}."""
    return {s: (((idx(f"{data_dir}/{s}-images-idx3-ubyte.gz") / 255.0 - 0.1307) / 0.3081).astype(np.float32),
                idx(f"{data_dir}/{s}-labels-idx1-ubyte.gz").astype(np.int64)) for s in ("train", "t10k")}

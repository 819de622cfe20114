"""MNIST and Fashion-MNIST from IDX files, parsed with numpy (no torchvision).

Where the files are looked for, in order:
  1. the ``data_dir`` argument (``--data-dir`` on the command line);
  2. the environment variable MNISTCNN_DATA_DIR;
  3. the cache directory (``$XDG_CACHE_HOME/mnistcnn/<dataset>``, default ~/.cache/...),
     or for Fashion-MNIST Debian's /usr/share/datasets/fashion-mnist when complete.
A file missing from the chosen directory is downloaded there from $MNISTCNN_MIRROR when set,
then the public mirrors (each tried in turn), its md5 verified, and written atomically
(temp file + rename).

Every file read, .gz or raw IDX, is verified by the SHA-256 of its decompressed bytes
(measured from the genuine files), not by the md5 of its container: gzip headers differ
between copies of the same data (Debian's Fashion-MNIST .gz files carry other header bytes
than upstream's), while a flipped pixel in a raw file changes the content digest.
"""
from __future__ import annotations

import gzip
import hashlib
import ipaddress
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_bytes
from .errors import DataError

ENV_VAR = "MNISTCNN_DATA_DIR"
#: a mirror of one's own (a base URL: a company's file server, a local copy), tried first
MIRROR_VAR = "MNISTCNN_MIRROR"

@dataclass
class DatasetInfo:
    """What mnistcnn knows of a dataset: its files (role -> (file name, md5 of the upstream
    .gz file, for downloads; SHA-256 of the decompressed IDX bytes, for every read)), where
    to download them, system directories that may hold them, the training pixels' mean and
    std (scaled to [0, 1]), the image shape (channels, height, width) and the classes."""

    files: dict[str, tuple[str, str, str]]
    mirrors: list[str]
    system_dirs: list[str]
    mean_std: tuple[float, float]
    input_shape: tuple[int, int, int] = (1, 28, 28)
    classes: int = 10


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        files={
            "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                             "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432",
                             "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3",
                             "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
                             "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        },
        mirrors=[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ],
        system_dirs=[],
        mean_std=(0.1307, 0.3081),
    ),
    "fashion-mnist": DatasetInfo(
        files={
            "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                             "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe",
                             "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79",
                             "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310",
                             "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        },
        mirrors=["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        system_dirs=["/usr/share/datasets/fashion-mnist"],
        mean_std=(0.2860, 0.3530),
    ),
}

_IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Dataset:
    """Raw arrays: images uint8 (N, 28, 28), labels uint8 (N,)."""

    name: str
    directory: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an IDX file's bytes (already decompressed) into a numpy array."""
    hint = f"; delete {name} so it is downloaded again, or replace it with a genuine copy"
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(
            f"{name} is not an IDX file: bad magic number {data[:4].hex() or '(empty)'} "
            f"(expected 0000 08 0N){hint}"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{name} is truncated inside its header ({len(data)} bytes){hint}")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{name} is truncated or padded: its header says {'x'.join(map(str, dims))} "
            f"({expected} bytes of data) but it holds {len(data) - header}{hint}"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path, sha256: str | None = None) -> np.ndarray:
    """Read a .gz or raw IDX file; with ``sha256``, check the digest of its decompressed bytes."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path} is not a readable gzip file ({e}); delete it and download again.") from None
    if sha256:
        got = hashlib.sha256(raw).hexdigest()
        if got != sha256:
            raise DataError(
                f"{path}: its content (decompressed IDX bytes) has SHA-256 {got}, expected {sha256}: "
                f"the file is corrupt or a different version. Delete it so it is downloaded again, "
                f"or replace it with a genuine copy."
            )
    return parse_idx(raw, str(path))


def default_dir(dataset: str = "mnist") -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mnistcnn" / dataset


def _complete(directory: Path, files) -> bool:
    return all((directory / n).exists() or (directory / n[:-3]).exists() for n, *_ in files.values())


def locate(dataset: str = "mnist", data_dir=None) -> Path:
    """The directory to read ``dataset`` from (which may still lack files)."""
    if dataset not in DATASETS:
        raise DataError(f"Unknown dataset {dataset!r}. Valid datasets: {', '.join(DATASETS)}.")
    if data_dir:
        return Path(data_dir)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    info = DATASETS[dataset]
    for d in info.system_dirs:
        if _complete(Path(d), info.files):
            return Path(d)
    return default_dir(dataset)


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def download(url: str, timeout: float = 30) -> bytes:
    """The bytes at ``url``, through the proxy the environment names (http_proxy, ...),
    except for a mirror on this machine's loopback, which no proxy can reach."""
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(url) else []
    with urllib.request.build_opener(*handlers).open(url, timeout=timeout) as r:
        return r.read()


def _check_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise DataError(f"The data directory {directory} is a file, not a directory. Fix: point "
                        f"`data_dir` / {ENV_VAR} at the directory that holds (or will hold) the MNIST files.")


def fetch(dataset: str, directory: Path, mirrors=None, log=None) -> None:
    """Download every missing file of ``dataset`` into ``directory``, md5-verified;
    ``log``: called with one line per file downloaded (where from, where to)."""
    info = DATASETS[dataset]
    if mirrors is None:
        mine = os.environ.get(MIRROR_VAR, "").strip()
        mirrors = ([mine.rstrip("/") + "/"] if mine else []) + info.mirrors
    _check_directory(directory)
    for name, md5, _ in info.files.values():
        if (directory / name).exists() or (directory / name[:-3]).exists():
            continue
        errors = []
        for mirror in mirrors:
            try:
                data = download(mirror + name)
            except OSError as e:
                errors.append(f"{mirror}{name}: {e}")
                continue
            got = hashlib.md5(data).hexdigest()
            if got == md5:
                atomic_write_bytes(directory / name, data)
                if log:
                    log(f"downloaded {mirror}{name} ({len(data) / 1e6:.1f} MB, md5 checked) into {directory}")
                break
            errors.append(f"{mirror}{name}: md5 {got}, expected {md5}")
        else:
            raise DataError(
                f"{directory / name} is missing and downloading it failed from every mirror:\n  "
                + "\n  ".join(errors or ["(no mirrors)"])
                + f"\nFix: copy the genuine file (md5 {md5}) into {directory}, or point "
                f"`data_dir` / {ENV_VAR} at a directory that has it."
            )


_CACHE: dict = {}


def _read_cached(path: Path, sha256: str):
    """read_idx, once per file version in a process (many runs of a sweep or a study in
    one process read the same files): keyed by path, size and modification time; the
    arrays are read-only so that no caller can change them for the next."""
    st = path.stat()
    key = (str(path.resolve()), sha256, st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        array = read_idx(path, sha256)
        array.flags.writeable = False
        _CACHE[key] = array
    return _CACHE[key]


def load(dataset: str = "mnist", data_dir=None, download: bool = True, log=None) -> Dataset:
    """Load the raw train and test arrays, downloading missing files if allowed (``log``:
    see ``fetch``)."""
    directory = locate(dataset, data_dir)
    _check_directory(directory)
    files = DATASETS[dataset].files
    if download:
        fetch(dataset, directory, log=log)
    arrays = {}
    for role, (name, md5, sha256) in files.items():
        path = directory / name
        if not path.exists() and (directory / name[:-3]).exists():
            path = directory / name[:-3]
        if not path.exists():
            raise DataError(
                f"{path} is missing (downloading is off). Fix: copy the genuine file "
                f"(md5 {md5}) there, or point `data_dir` / {ENV_VAR} at a directory that has it."
            )
        arrays[role] = _read_cached(path, sha256)
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(
                f"{directory}: {split} images must be 3-D and labels 1-D, got {x.shape} and {y.shape}; "
                "are the image and label files swapped?"
            )
        if len(x) != len(y):
            raise DataError(
                f"{directory}: {len(x)} {split} images but {len(y)} {split} labels; "
                "the files do not belong together."
            )
        classes = DATASETS[dataset].classes
        if len(y) and int(y.max()) >= classes:
            raise DataError(f"{directory}: {split} labels go up to {int(y.max())}, but {dataset} has "
                            f"{classes} classes (0-{classes - 1}): the label file is damaged or another dataset's.")
    return Dataset(dataset, directory, arrays["train_images"], arrays["train_labels"],
                   arrays["test_images"], arrays["test_labels"])


def check_fits(spec, dataset: str = "mnist") -> None:
    """SpecError unless ``spec`` takes the dataset's images and gives one score per class:
    caught before training, not by a framework's shape error in the first step."""
    from .errors import SpecError

    info = DATASETS[dataset]
    if tuple(spec.input_shape) != info.input_shape:
        raise SpecError(f"Spec '{spec.name}' takes input_shape {tuple(spec.input_shape)}, but {dataset} images "
                        f"are {info.input_shape} (channels, height, width). Set input_shape to "
                        f"{list(info.input_shape)}.")
    out = spec.output_shape
    if len(out) == 1 and out[0] != info.classes:
        raise SpecError(f"Spec '{spec.name}' ends in {out[0]} classes, but {dataset} has {info.classes}: "
                        f"give its last Dense layer units={info.classes}.")


NORMALIZATIONS = ("unit", "standard")


def normalize(images: np.ndarray, how: str = "standard", dataset: str = "mnist") -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, 1, H, W): 'unit' divides by 255; 'standard' also
    subtracts the training mean and divides by the training std (0.1307/0.3081 for MNIST)."""
    if how not in NORMALIZATIONS:
        raise DataError(f"Unknown normalisation {how!r}. Valid: {', '.join(NORMALIZATIONS)}.")
    x = images.astype(np.float32)[:, None] / np.float32(255)
    if how == "standard":
        mean, std = DATASETS[dataset].mean_std
        x = (x - np.float32(mean)) / np.float32(std)
    return x


def split(x: np.ndarray, y: np.ndarray, val_size: int):
    """Deterministic train/validation split: the LAST ``val_size`` examples validate
    (Keras' validation_split rule; 50k/10k is the classic MNIST split)."""
    if not 0 <= val_size < len(x):
        raise DataError(f"val_size must be in [0, {len(x)}), got {val_size}.")
    cut = len(x) - val_size
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])

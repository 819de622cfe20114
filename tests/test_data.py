"""The MNIST loader: genuine files, every corruption, and downloading over loopback."""
import gzip
import hashlib

import numpy as np
import pytest
from conftest import http_on_loopback

from mnistcnn import data
from mnistcnn.errors import DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_genuine_files(mnist):
    assert mnist.x_train.shape == (60_000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10_000, 28, 28)
    assert np.bincount(mnist.y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.y_test).tolist() == TEST_COUNTS
    x = mnist.x_train / 255.0
    assert x.mean() == pytest.approx(0.1307, abs=5e-5)
    assert x.std() == pytest.approx(0.3081, abs=5e-5)


def test_normalisations(mnist):
    unit = data.normalize(mnist.x_train[:1000], "unit")
    assert unit.shape == (1000, 1, 28, 28) and unit.dtype == np.float32
    assert unit.min() == 0.0 and unit.max() == 1.0
    std = data.normalize(mnist.x_train, "standard")
    assert float(std.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(std.std()) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(DataError, match="Unknown normalisation 'zscore'"):
        data.normalize(mnist.x_train[:2], "zscore")


def test_split_is_deterministic_last_examples_validate(mnist):
    (xt, yt), (xv, yv) = data.split(mnist.x_train, mnist.y_train, 10_000)
    assert len(xt) == 50_000 and len(xv) == 10_000
    assert (xv == mnist.x_train[50_000:]).all() and (yt == mnist.y_train[:50_000]).all()


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _entries(blobs):
    """DATASETS file entries for blobs written by _write_set: (name, .gz md5, content SHA-256)."""
    return {role: (name, hashlib.md5(blobs[name]).hexdigest(),
                   hashlib.sha256(gzip.decompress(blobs[name])).hexdigest())
            for role, (name, *_) in data.DATASETS["mnist"].files.items()}


def _write_set(directory, n_train=6, n_test=4, labels_train=None):
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte.gz": _idx(rng.integers(0, 255, (n_train, 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx(labels_train if labels_train is not None
                                           else rng.integers(0, 10, n_train)),
        "t10k-images-idx3-ubyte.gz": _idx(rng.integers(0, 255, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": _idx(rng.integers(0, 10, n_test)),
    }
    blobs = {}
    for name, raw in files.items():
        blobs[name] = gzip.compress(raw, mtime=0)
        (directory / name).write_bytes(blobs[name])
    return blobs


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A small dataset 'tiny' registered like MNIST, with md5s of the files it writes."""
    src = tmp_path / "src"
    src.mkdir()
    blobs = _write_set(src)
    monkeypatch.setitem(data.DATASETS, "tiny", data.DatasetInfo(_entries(blobs), [], [], (0.5, 0.25)))
    return src, blobs


def test_load_small_set(tiny):
    src, _ = tiny
    ds = data.load("tiny", src, download=False)
    assert ds.x_train.shape == (6, 28, 28) and ds.y_test.shape == (4,)


def test_plain_uncompressed_files_are_read(tiny, tmp_path):
    src, blobs = tiny
    plain = tmp_path / "plain"
    plain.mkdir()
    for name, blob in blobs.items():
        (plain / name[:-3]).write_bytes(gzip.decompress(blob))
    assert data.load("tiny", plain, download=False).x_train.shape == (6, 28, 28)


@pytest.mark.parametrize("corrupt,message", [
    (lambda raw: b"\x08\x03" + raw[2:], "is not an IDX file: bad magic number 08030803"),
    (lambda raw: raw[:-100], "is truncated or padded: its header says 6x28x28 (4704 bytes of data) but it holds 4604"),
    (lambda raw: raw[:10], "truncated inside its header"),
    (lambda raw: raw + b"\0", "holds 4705"),
])
def test_corrupt_image_file(tiny, monkeypatch, corrupt, message):
    src, blobs = tiny
    name = "train-images-idx3-ubyte.gz"
    bad = gzip.compress(corrupt(gzip.decompress(blobs[name])), mtime=0)
    (src / name).write_bytes(bad)
    files = dict(data.DATASETS["tiny"].files)
    files["train_images"] = (name, "", hashlib.sha256(gzip.decompress(bad)).hexdigest())  # only the structure is wrong
    monkeypatch.setattr(data.DATASETS["tiny"], "files", files)
    with pytest.raises(DataError) as e:
        data.load("tiny", src, download=False)
    assert str(src / name) in str(e.value) and message in str(e.value)
    assert "delete" in str(e.value)


def test_wrong_content_names_file_and_expected_digest(tiny):
    src, _ = tiny
    (src / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.zeros(4)), mtime=1))
    expected = data.DATASETS["tiny"].files["test_labels"][2]
    with pytest.raises(DataError, match=f"t10k-labels-idx1-ubyte.gz: its content .* has SHA-256 [0-9a-f]{{64}}, "
                                        f"expected {expected}"):
        data.load("tiny", src, download=False)


def test_same_content_in_another_gzip_container_is_accepted(tiny):
    """Debian's .gz files differ from upstream's in header bytes only: the content decides."""
    src, blobs = tiny
    name = "train-images-idx3-ubyte.gz"
    other = gzip.compress(gzip.decompress(blobs[name]), compresslevel=1, mtime=123456)
    assert hashlib.md5(other).hexdigest() != hashlib.md5(blobs[name]).hexdigest()
    (src / name).write_bytes(other)
    assert data.load("tiny", src, download=False).x_train.shape == (6, 28, 28)


def test_raw_file_with_flipped_pixels_is_refused(tiny, tmp_path):
    src, blobs = tiny
    plain = tmp_path / "plain"
    plain.mkdir()
    for name, blob in blobs.items():
        (plain / name[:-3]).write_bytes(gzip.decompress(blob))
    raw = bytearray((plain / "train-images-idx3-ubyte").read_bytes())
    raw[100:110] = bytes(255 - b for b in raw[100:110])
    (plain / "train-images-idx3-ubyte").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: its content \(decompressed IDX bytes\) has SHA-256"):
        data.load("tiny", plain, download=False)


def test_genuine_mnist_content_digests(mnist):
    """The content digests in DATASETS are those of the genuine files' decompressed bytes."""
    for role, (name, md5, sha256) in data.DATASETS["mnist"].files.items():
        path = mnist.directory / name
        if not path.exists():
            path = mnist.directory / name[:-3]
        raw = path.read_bytes()
        if path.suffix == ".gz":
            assert hashlib.md5(raw).hexdigest() == md5
            raw = gzip.decompress(raw)
        assert hashlib.sha256(raw).hexdigest() == sha256, role


DEBIAN_FASHION = data.DATASETS["fashion-mnist"].system_dirs[0]


@pytest.mark.skipif(not (data.Path(DEBIAN_FASHION) / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FASHION} is missing; "
                           "`apt-get install dataset-fashion-mnist`; .ci/run installs it where it can)")
def test_debian_fashion_mnist_package_loads(monkeypatch):
    """The real Debian package: its .gz md5s differ from upstream's, its content is genuine."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    gz = data.Path(DEBIAN_FASHION) / "train-images-idx3-ubyte.gz"
    assert hashlib.md5(gz.read_bytes()).hexdigest() != data.DATASETS["fashion-mnist"].files["train_images"][1]
    assert data.locate("fashion-mnist") == data.Path(DEBIAN_FASHION)
    ds = data.load("fashion-mnist", download=False)
    assert ds.x_train.shape == (60_000, 28, 28) and ds.x_test.shape == (10_000, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10


def test_not_gzip(tiny, monkeypatch):
    src, _ = tiny
    (src / "train-labels-idx1-ubyte.gz").write_bytes(b"plain text")
    files = dict(data.DATASETS["tiny"].files)
    files["train_labels"] = ("train-labels-idx1-ubyte.gz", "", "")
    monkeypatch.setattr(data.DATASETS["tiny"], "files", files)
    with pytest.raises(DataError, match="is not a readable gzip file"):
        data.load("tiny", src, download=False)


def test_label_count_mismatch(tmp_path, monkeypatch):
    blobs = _write_set(tmp_path, labels_train=np.zeros(5))
    monkeypatch.setitem(data.DATASETS, "tiny", data.DatasetInfo(_entries(blobs), [], [], (0.5, 0.25)))
    with pytest.raises(DataError, match="6 train images but 5 train labels"):
        data.load("tiny", tmp_path, download=False)


def test_labels_out_of_range(tmp_path, monkeypatch):
    blobs = _write_set(tmp_path, labels_train=np.array([0, 1, 2, 3, 4, 12]))
    monkeypatch.setitem(data.DATASETS, "tiny", data.DatasetInfo(_entries(blobs), [], [], (0.5, 0.25)))
    with pytest.raises(DataError, match=r"train labels go up to 12, but tiny has 10 classes \(0-9\)"):
        data.load("tiny", tmp_path, download=False)


def test_missing_file_without_download(tiny):
    src, _ = tiny
    (src / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is missing \(downloading is off\). "
                                        r"Fix: copy the genuine file \(md5 "):
        data.load("tiny", src, download=False)


def test_location_order(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.locate("mnist", tmp_path / "arg") == tmp_path / "arg"
    assert data.locate("mnist") == tmp_path / "env"
    monkeypatch.delenv(data.ENV_VAR)
    assert data.locate("mnist") == tmp_path / "cache" / "mnistcnn" / "mnist"
    with pytest.raises(DataError, match="Unknown dataset 'cifar'. Valid datasets: mnist, fashion-mnist"):
        data.locate("cifar")


@pytest.fixture
def server(tmp_path):
    """An HTTP server on loopback serving tmp_path/www: good/ and bad/ mirrors."""
    www = tmp_path / "www"
    www.mkdir()
    with http_on_loopback(www) as url:
        yield www, url


def test_download_tries_mirrors_verifies_md5_and_writes_atomically(tiny, server, tmp_path, monkeypatch):
    """Behind a proxy too (the variables every corporate network sets): a mirror on the
    loopback is reached directly, never through the proxy."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://proxy.invalid:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    _, blobs = tiny
    www, base = server
    (www / "bad").mkdir()
    (www / "good").mkdir()
    for name, blob in blobs.items():
        (www / "good" / name).write_bytes(blob)
        (www / "bad" / name).write_bytes(blob[:-1] + b"x")  # wrong md5
    mirrors = [base + "missing/", base + "bad/", base + "good/"]
    monkeypatch.setattr(data.DATASETS["tiny"], "mirrors", mirrors)
    dest = tmp_path / "dest"
    lines = []
    ds = data.load("tiny", dest, log=lines.append)
    assert ds.x_train.shape == (6, 28, 28)
    assert len(lines) == 4 and all(f"{base}good/" in line and str(dest) in line for line in lines)
    assert sorted(p.name for p in dest.iterdir()) == sorted(blobs)  # no temp files left
    for name, blob in blobs.items():
        assert (dest / name).read_bytes() == blob


def test_download_failure_lists_every_mirror(tiny, server, tmp_path, monkeypatch):
    _, blobs = tiny
    www, base = server
    (www / "bad").mkdir()
    for name, blob in blobs.items():
        (www / "bad" / name).write_bytes(blob + b"!")
    monkeypatch.setattr(data.DATASETS["tiny"], "mirrors", [base + "none/", base + "bad/"])
    with pytest.raises(DataError) as e:
        data.load("tiny", tmp_path / "dest")
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz is missing and downloading it failed from every mirror" in msg
    assert f"{base}none/train-images-idx3-ubyte.gz: HTTP Error 404" in msg
    assert f"{base}bad/train-images-idx3-ubyte.gz: md5 " in msg
    assert not (tmp_path / "dest" / "train-images-idx3-ubyte.gz").exists()


def test_fashion_mnist_uses_a_complete_system_directory(tmp_path, monkeypatch):
    """Debian's /usr/share/datasets/fashion-mnist counts when it holds all four files."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    system = tmp_path / "debian"
    system.mkdir()
    monkeypatch.setattr(data.DATASETS["fashion-mnist"], "system_dirs", [str(system)])
    assert data.locate("fashion-mnist") == tmp_path / "cache" / "mnistcnn" / "fashion-mnist"
    _write_set(system)
    assert data.locate("fashion-mnist") == system


def test_a_data_directory_that_is_a_file_is_refused_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "download", lambda url, timeout=30: pytest.fail(f"downloaded {url}"))
    f = tmp_path / "a-file"
    f.write_text("not a directory")
    with pytest.raises(DataError, match=r"a-file is a file, not a directory. Fix: point `data_dir`"):
        data.load("mnist", f)


def test_the_command_line_says_data_dir_as_its_flag(tmp_path, capsys):
    from mnistcnn.cli import main

    f = tmp_path / "a-file"
    f.write_text("not a directory")
    assert main(["train", "simple-fc", "--backend", "torch", "--epochs", "1", "--data-dir", str(f),
                 "--out", str(tmp_path / "o")]) == 2
    assert "Fix: point --data-dir / MNISTCNN_DATA_DIR at the directory" in capsys.readouterr().err


def test_the_suite_refuses_connections_outside_the_loopback(server):
    """conftest's guard: a connection to any address but the loopback fails the test that
    makes it (before a packet leaves), while the loopback server stays reachable."""
    import socket
    import urllib.request

    _, base = server
    assert urllib.request.build_opener(urllib.request.ProxyHandler({})).open(base, timeout=10).status == 200
    for family, address in ((socket.AF_INET, ("169.254.169.254", 80)), (socket.AF_INET6, ("2001:db8::1", 80, 0, 0))):
        with socket.socket(family, socket.SOCK_STREAM) as s, \
                pytest.raises(AssertionError, match="a test connected outside the loopback"):
            s.connect(address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(AssertionError):
        s.connect_ex(("8.8.8.8", 53))

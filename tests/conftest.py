import contextlib
import http.server
import ipaddress
import os
import socket
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def mnist_dir() -> Path:
    """Where the genuine MNIST files are, found as the product finds them
    (``data.locate``: $MNISTCNN_DATA_DIR, else the user's cache, where the product
    downloads them), except that a developer's or CI's ../shared/data/mnist comes before
    the cache."""
    from mnistcnn import data

    if not os.environ.get(data.ENV_VAR) and (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        return SHARED_MNIST
    return data.locate("mnist")


def _loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):  # AF_UNIX names as bytes, netlink pairs
        return True
    if host in ("", "localhost") or host.startswith("/") or host.startswith("\0"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost: resolving it is network traffic


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _guarded(original):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            raise AssertionError(f"a test connected outside the loopback, to {address!r}: tests make no "
                                 "network connection except to 127.0.0.1 / ::1 (serve what the test needs there)")
        return original(self, address)

    return connect


@pytest.fixture(scope="session")
def mnist_path():
    """The genuine MNIST directory; missing files are downloaded into it, as the product
    does, when a network is there (before the loopback guard takes over for the tests)."""
    from mnistcnn import data
    from mnistcnn.errors import DataError

    d = mnist_dir()
    try:
        with _network_allowed():
            data.load("mnist", d, log=lambda line: print(f"\n[mnistcnn tests] {line}"))
    except DataError as e:
        msg = (f"genuine MNIST files not found in {d} and not downloadable here ({e}). Fix: run "
               "`make main` once (it downloads them into the user's cache), or set MNISTCNN_DATA_DIR "
               "to a directory that has them.")
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI must run the real-data tests)")
        pytest.skip(msg)
    return d


class _network_allowed:
    def __enter__(self):
        socket.socket.connect, socket.socket.connect_ex = _connect, _connect_ex

    def __exit__(self, *exc):
        socket.socket.connect, socket.socket.connect_ex = _guarded(_connect), _guarded(_connect_ex)


def pytest_sessionstart(session):
    """Every test stays on the loopback: a socket-level guard for this process (the
    processes the tests start are the product's; Ray's are started on the loopback)."""
    _network_allowed().__exit__()


@pytest.fixture(scope="session")
def mnist(mnist_path):
    from mnistcnn import data

    return data.load("mnist", mnist_path, download=False)


@contextlib.contextmanager
def http_on_loopback(directory):
    """An HTTP server on 127.0.0.1 serving ``directory`` (a mirror standing in for the
    real ones); yields its base URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(directory), **k)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()

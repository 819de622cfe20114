"""The newcomer's path, as a new user walks it: a fresh clone in a temporary folder, an
empty HOME, no ../shared and no MNISTCNN_DATA_DIR, MNIST coming from a mirror over plain
HTTP (a server on the loopback stands in for it). The main job downloads the data into
the user's cache and says so, writes only untracked files, and the test command then finds
the data there."""
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, http_on_loopback

from mnistcnn import data

pytestmark = pytest.mark.slow


@pytest.fixture
def mirror(mnist_path):
    """The genuine MNIST files served over HTTP on the loopback."""
    with http_on_loopback(mnist_path) as url:
        yield url


def _git(*args, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_a_fresh_clone_downloads_the_data_runs_the_main_job_and_tests_find_the_data(tmp_path, mirror):
    clone = tmp_path / "work" / "mnistcnn"  # no ../shared beside it
    # what a clone would hold if the working tree were committed: its files that git keeps
    for name in _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).split("\0"):
        if name and (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    _git("init", "-q", cwd=clone)
    _git("add", "-A", cwd=clone)
    _git("-c", "user.name=newcomer", "-c", "user.email=newcomer@localhost", "commit", "-q", "-m", "clone",
         cwd=clone)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNISTCNN_", "XDG_", "CI"))}
    env.update(HOME=str(home), PYTHONPATH=str(clone), MNISTCNN_MIRROR=mirror,
               http_proxy="http://proxy.invalid:3128")  # behind a proxy, as many newcomers are

    # the main job, on a small setting (make main's command, fewer images)
    main = subprocess.run([sys.executable, "-m", "mnistcnn", "compare", "simple-fc", "--seeds", "1", "--epochs", "1",
                           "--train-limit", "512", "--test-limit", "200", "--out", "runs/simple-fc"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert main.returncode == 0, main.stderr
    cache = home / ".cache" / "mnistcnn" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(n for n, *_ in data.DATASETS["mnist"].files.values())
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert f"downloaded {mirror}{name} " in main.stderr and f"into {cache}" in main.stderr
    assert f"data: mnist from {cache}" in main.stderr
    assert "plan: runs to train 2, already finished 0; 2 epochs in all" in main.stderr
    assert (clone / "runs" / "simple-fc" / "report.md").exists()
    assert _git("status", "--porcelain", cwd=clone) == ""  # the main job leaves the clone clean

    # the test command finds the data where the main job put it: a real-data test passes
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                            "tests/test_data.py::test_genuine_files"],
                           cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0 and "1 passed" in tests.stdout and "skipped" not in tests.stdout, tests.stdout

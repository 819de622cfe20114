"""The process settings a run trains under (mnistcnn.runtime), measured, not assumed."""
import json
import platform
import subprocess
import sys

import pytest

# A child process trains seed000-cnn (torch, batch 128) for a few steps on random
# images and reports the page faults of its later steps: with glibc's defaults each
# step maps its large activation buffers afresh and faults them in page by page.
CHILD = """
import json, resource, sys
import numpy as np
from mnistcnn import runtime, train, zoo
from mnistcnn.backends import get_backend
if sys.argv[1] == "tuned":
    runtime.tune_allocator()
cfg, b = train.TrainConfig(), get_backend("torch")
b.start_run(None)
spec = cfg.trained_spec(zoo.get("seed000-cnn"), "torch")
t = b.Trainer(spec, cfg.optimizer_for("torch"), 0)
rng = np.random.default_rng(0)
t.set_data(rng.standard_normal((1280, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 1280))
t.train_epoch(np.arange(1280), 128, 1e-3, 0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t.train_epoch(np.arange(1280), 128, 1e-3, 0)
print(json.dumps({"faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10,
                  "allocator": runtime.environment(b)["allocator"]}))
"""


def child(mode):
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                    reason="the allocator tuning is for glibc (Linux); this C library is another")
def test_tuned_allocator_stops_the_page_faults_of_every_step():
    default, tuned = child("default"), child("tuned")
    assert default["allocator"] == "glibc defaults (not tuned)"
    assert tuned["allocator"] == "glibc mallopt: mmap_threshold 32 MiB, trim_threshold 1024 MiB"
    # measured: ~11,000 faults per step by default (44 MB mapped afresh), 0 tuned
    assert default["faults_per_step"] > 1000, default
    assert tuned["faults_per_step"] < default["faults_per_step"] / 20, (tuned, default)


@pytest.mark.slow
def test_the_python_api_leaves_the_callers_allocator_alone(tmp_path, mnist_path):
    """train.run changes the process's malloc only when asked (the CLI and the runner's
    children ask: processes of mnistcnn's own)."""
    code = ("import json, sys; from mnistcnn import train; "
            f"r = train.run('simple-fc', 'torch', train.TrainConfig(epochs=1, train_limit=128, test_limit=100), "
            f"{str(tmp_path / 'r')!r}, {str(mnist_path)!r}, progress=False); print(r.environment['allocator'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1].startswith(("glibc defaults", "unchanged"))


def test_bfloat16_without_bfloat16_units_is_warned_before_training(tmp_path, mnist_path):
    from mnistcnn import runtime, train

    cfg = train.TrainConfig(epochs=1, train_limit=64, test_limit=100, precision="bfloat16")
    emulated = not runtime.cpu_flags() & {"avx512_bf16", "amx_bf16"}
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train.run("simple-fc", "torch", cfg, tmp_path, mnist_path, progress=False)
    said = [str(w.message) for w in caught if "no bfloat16 units" in str(w.message)]
    assert bool(said) == (emulated and bool(runtime.cpu_flags())), said
    if said:
        assert runtime.cpu_name() in said[0] and "Use float32 here" in said[0]

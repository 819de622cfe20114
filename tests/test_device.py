"""--device: auto, cpu, cuda[:N], mps, in every backend. The CPU paths run everywhere;
the GPU test runs where PyTorch sees CUDA and says why it is skipped elsewhere."""
import json

import numpy as np
import pytest

from mnistcnn import train
from mnistcnn.backends import call, get_backend
from mnistcnn.cli import main
from mnistcnn.errors import ConfigError

SHORT = dict(epochs=1, train_limit=512, val_size=128, test_limit=256, batch_size=64, seed=1)


def _resolve(backend, device):
    return get_backend(backend).resolve_device(device)


def _sees_gpu(backend) -> bool:
    return _resolve(backend, "auto")[0] != "cpu"


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CUDA", "cuda:-1", "", "tpu"])
def test_bad_device_spellings_are_refused_by_the_config(device):
    with pytest.raises(ConfigError, match="Invalid value for `device`. Expected auto, cpu, cuda, cuda:N"):
        train.TrainConfig(device=device)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:3", "mps"])
def test_good_device_spellings_pass_the_config(device):
    assert train.TrainConfig(device=device).device == device


# jax: a child process
@pytest.mark.parametrize("backend", ["torch", "keras", pytest.param("jax", marks=pytest.mark.slow)])
def test_auto_takes_a_gpu_only_when_the_framework_sees_one(backend):
    device, name = call(backend, _resolve, backend, "auto")
    gpu = call(backend, _sees_gpu, backend)
    assert (device != "cpu") == gpu and name
    assert call(backend, _resolve, backend, "cpu")[0] == "cpu"


@pytest.mark.parametrize("backend", ["torch", "keras", "jax"])
def test_a_gpu_that_is_not_there_is_one_clear_error(backend):
    if call(backend, _sees_gpu, backend):
        pytest.skip(f"{backend} sees a GPU here: cuda:7 would be the test, not cuda")
    with pytest.raises(ConfigError, match=r"--device cuda: .* sees 0 .*Use --device cpu, or auto"):
        call(backend, _resolve, backend, "cuda")
    if backend != "torch" or not _mps():  # MPS: PyTorch's Apple GPU, refused where absent and by Keras
        with pytest.raises(ConfigError, match="--device mps"):
            call(backend, _resolve, backend, "mps")


def _mps() -> bool:
    import torch

    return torch.backends.mps.is_available()


@pytest.mark.slow
def test_cli_device_cuda_without_a_gpu_exits_2_before_training(mnist_path, tmp_path, capsys):
    if _sees_gpu("torch"):
        pytest.skip("PyTorch sees a GPU here")
    code = main(["compare", "simple-fc", "--backends", "torch,keras", "--device", "cuda", "--seeds", "1",
                 "--epochs", "1", "--train-limit", "64", "--quiet", "--out", str(tmp_path / "c"),
                 "--data-dir", str(mnist_path)])
    err = capsys.readouterr().err
    assert code == 2 and ("PyTorch sees 0 CUDA device(s)" in err or "TensorFlow sees 0 GPU(s)" in err), err
    assert "Traceback" not in err
    assert not list((tmp_path / "c").rglob("result.json"))


@pytest.mark.slow
def test_the_run_records_the_device_it_trained_on(mnist_path, tmp_path):
    r = train.run("simple-fc", "torch", train.TrainConfig(**SHORT, device="cpu"), tmp_path / "r", mnist_path,
                  progress=False)
    assert r.environment["device"] == "cpu" and r.environment["device_name"]
    assert r.config["device"] == "cpu"


@pytest.mark.slow
def test_a_run_started_before_the_device_setting_resumes(mnist_path, tmp_path):
    """result.json written before TrainConfig had `device`: resuming counts it as the
    default (auto), not as other settings."""
    cfg = train.TrainConfig(**{**SHORT, "epochs": 2})
    part = train.run("simple-fc", "torch", cfg, tmp_path / "r", mnist_path, progress=False, stop_after=1)
    assert len(part.epochs) == 1
    path = tmp_path / "r" / "result.json"
    saved = json.loads(path.read_text())
    del saved["config"]["device"]
    path.write_text(json.dumps(saved))
    resumed = train.run("simple-fc", "torch", cfg, tmp_path / "r", mnist_path, progress=False, resume=True)
    assert len(resumed.epochs) == 2 and resumed.completed


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.slow
@pytest.mark.skipif(not _cuda(), reason="no CUDA device on this machine (torch.cuda.is_available() is False): "
                                        "the GPU path of every backend is tested where there is one")
@pytest.mark.parametrize("backend", ["torch", "keras", "jax"])
def test_training_on_the_gpu_matches_the_cpu(backend, mnist_path, tmp_path):
    """The same harmonized run on the GPU and on the CPU: deterministic settings on, the
    device recorded, accuracy within a point (GPU kernels round differently)."""
    runs = {d: call(backend, train.run, "seed000-cnn", backend, train.TrainConfig(**SHORT, device=d),
                    tmp_path / d, mnist_path, progress=False) for d in ("cuda", "cpu")}
    assert runs["cuda"].environment["device"] != "cpu"
    assert abs(runs["cuda"].test_acc - runs["cpu"].test_acc) < 0.01
    again = call(backend, train.run, "seed000-cnn", backend, train.TrainConfig(**SHORT, device="cuda"),
                 tmp_path / "again", mnist_path, progress=False)
    assert np.isclose(again.test_loss, runs["cuda"].test_loss, rtol=0, atol=0)  # repeatable on the GPU

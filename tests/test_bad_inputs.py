"""A permanent bad-input suite: every CLI subcommand given bad values, bad files and bad
places must end with exit status 2, one message that names the cause, and no traceback.
Every case fails before any training, so the whole table runs in seconds."""
import json
import os
import zipfile

import numpy as np
import pytest

from mnistcnn.cli import main

TRAIN = ["train", "simple-fc", "--backend", "torch", "--epochs", "1", "--train-limit", "64", "--quiet"]
COMPARE = ["compare", "simple-fc", "--seeds", "1", "--epochs", "1", "--train-limit", "64", "--quiet", "--in-process"]
SWEEP = ["sweep", "simple-fc", "--epochs", "1", "--train-limit", "64", "--quiet", "--in-process"]


@pytest.fixture
def files(tmp_path):
    """Bad files of every kind, and a few good ones to point at."""
    f = {"dir": tmp_path / "a-directory", "missing": tmp_path / "missing.json", "empty": tmp_path / "empty",
         "binary": tmp_path / "binary.bin", "text": tmp_path / "text.txt", "a_file": tmp_path / "a-file"}
    f["dir"].mkdir()
    f["empty"].write_bytes(b"")
    f["binary"].write_bytes(bytes(range(256)) * 4)
    f["text"].write_text("hello\n")
    f["a_file"].write_text("I am a file, not a directory\n")
    for name, doc in {"layers_not_list": {"name": "x", "input_shape": [1, 28, 28], "layers": {"a": 1}},
                      "unknown_field": {"name": "x", "input_shape": [1, 28, 28], "layers": [], "colour": "red"},
                      "evil_name": {"name": "../../evil", "input_shape": [1, 28, 28],
                                    "layers": [{"kind": "Flatten"}, {"kind": "Dense", "units": 10}]},
                      "unknown_kind": {"name": "x", "input_shape": [1, 28, 28], "layers": [{"kind": "Conv3D"}]},
                      "bad_shape": {"name": "x", "input_shape": [1, 28, 28],
                                    "layers": [{"kind": "Conv2D", "filters": 4, "kernel_size": 40}]},
                      "wrong_classes": {"name": "x", "input_shape": [1, 28, 28],
                                        "layers": [{"kind": "Flatten"}, {"kind": "Dense", "units": 7}]},
                      "wrong_input": {"name": "x", "input_shape": [3, 32, 32],
                                      "layers": [{"kind": "Flatten"}, {"kind": "Dense", "units": 10}]}}.items():
        f[name] = tmp_path / f"{name}.json"
        f[name].write_text(json.dumps({"format": "mnistcnn.spec", "version": 1, **doc}))
    # checkpoints: a zip that is not an npz of ours, a truncated npz, an npz without a spec
    f["zip"] = tmp_path / "other.npz"
    with zipfile.ZipFile(f["zip"], "w") as z:
        z.writestr("readme.txt", "not a checkpoint")
    f["nospec"] = tmp_path / "nospec.npz"
    np.savez(f["nospec"], w=np.zeros(3))
    f["npy"] = tmp_path / "array.npy"
    np.save(f["npy"], np.zeros(3))
    from mnistcnn import spec as S
    from mnistcnn import weights, zoo

    spec = zoo.get("simple-fc")
    good = weights.initial(spec, 0)
    f["nan_weights"] = weights.save(tmp_path / "nan.npz", spec,
                                    {**good, "dense_1.kernel": good["dense_1.kernel"] * np.nan})
    f["int_weights"] = weights.save(tmp_path / "int.npz", spec, {k: v.astype(np.int32) for k, v in good.items()})
    wide = S.ModelSpec("wide", [S.Conv2D(100_000, 1), S.GlobalAvgPool2D(), S.Dense(10)])  # 1.2 M weights, huge maps
    f["huge_ckpt"] = weights.save(tmp_path / "huge.npz", wide, weights.initial(wide, 0))
    f["truncated"] = tmp_path / "truncated.npz"
    f["truncated"].write_bytes(f["nospec"].read_bytes()[:40])
    # specs: non-finite layer arguments (JSON's Infinity), nesting deeper than Python's stack, sizes beyond the machine
    layers = {"elu_inf": [{"kind": "Flatten"}, {"kind": "Dense", "units": 10}, {"kind": "Activation", "name": "elu",
                                                                                 "alpha": float("inf")}],
              "bn_inf": [{"kind": "Flatten"}, {"kind": "BatchNorm", "momentum": 0.9, "epsilon": float("inf")},
                         {"kind": "Dense", "units": 10}],
              "huge_dense": [{"kind": "Flatten"}, {"kind": "Dense", "units": 10**9}, {"kind": "Dense", "units": 10}],
              "huge_conv": [{"kind": "Conv2D", "filters": 10**6, "kernel_size": 3, "padding": "same"},
                            {"kind": "Flatten"}, {"kind": "Dense", "units": 10}]}
    for name, layer_list in layers.items():
        f[name] = tmp_path / f"{name}.json"
        f[name].write_text(json.dumps({"format": "mnistcnn.spec", "version": 1, "name": name,
                                       "input_shape": [1, 28, 28], "layers": layer_list}))
    f["deep"] = tmp_path / "deep.json"
    f["deep"].write_text("[" * 100_000 + "]" * 100_000)
    # the user's model code: a module that fails on import, classes that cannot be built, state dicts
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('broken at import')\n")
    (tmp_path / "usermodels.py").write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.flat, self.fc = nn.Flatten(), nn.Linear(784, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.flat(x))\n"
        "class Wide(Net):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(784, 20)\n"
        "class NeedsArgs(nn.Module):\n"
        "    def __init__(self, width):\n"
        "        super().__init__()\n"
        "class Raises(nn.Module):\n"
        "    def __init__(self):\n"
        "        raise ValueError('no init')\n"
        "NOT_A_CLASS = 5\n")
    import torch

    f["state_dict"] = tmp_path / "net.pt"
    torch.save({"flat_is_no_weight.weight": torch.zeros(3)}, f["state_dict"])
    f["wide_state_dict"] = tmp_path / "wide.pt"
    torch.save({"fc.weight": torch.zeros(20, 784), "fc.bias": torch.zeros(20)}, f["wide_state_dict"])
    f["pickled"] = tmp_path / "pickled.pt"
    torch.save(torch.nn.Linear(784, 10), f["pickled"])  # a whole model: code, not only tensors
    f["pickled_npz"] = tmp_path / "pickled.npz"
    f["pickled_npz"].write_bytes(__import__("pickle").dumps(zipfile.ZipInfo("x"), protocol=4))
    # data directories: garbage and empty files under the genuine names
    for kind, blob in {"garbage_data": bytes(range(256)) * 40, "empty_data": b""}.items():
        f[kind] = tmp_path / kind
        f[kind].mkdir()
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            (f[kind] / name).write_bytes(blob)
    return f


# (id, argv with {placeholders} for the files fixture, words the message must contain)
CASES = [
    # values: non-positive, non-finite, out of range, wrong type
    ("lr-zero", TRAIN + ["--lr", "0"], ["Invalid value for --lr"]),
    ("lr-inf", TRAIN + ["--lr", "inf"], ["Invalid value for --lr"]),
    ("lr-nan", TRAIN + ["--lr", "nan"], ["Invalid value for --lr"]),
    ("lr-word", TRAIN + ["--lr", "fast"], ["--lr", "invalid float value"]),
    ("epochs-zero", TRAIN + ["--epochs", "0"], ["Invalid value for --epochs"]),
    ("batch-negative", TRAIN + ["--batch-size", "-2"], ["Invalid value for --batch-size"]),
    ("train-limit-zero", TRAIN + ["--train-limit", "0"], ["Invalid value for --train-limit"]),
    ("test-limit-negative", TRAIN + ["--test-limit", "-5"], ["Invalid value for --test-limit"]),
    ("threads-zero", TRAIN + ["--threads", "0"], ["Invalid value for --threads"]),
    ("backends-unknown", COMPARE + ["--backends", "torch,mxnet", "--out", "{tmp}/c"],
     ["--backends", "unknown backend(s) 'mxnet'", "torch, keras, jax"]),
    ("backends-empty", SWEEP + ["--grid", "lr=0.1,0.01", "--backends", ",", "--out", "{tmp}/s"], ["--backends"]),
    ("parity-one-backend", ["parity", "simple-fc", "--images", "4", "--backends", "torch"],
     ["Parity compares two or more backends"]),
    ("beta1-one", TRAIN + ["--optimizer", "adam", "--beta1", "1"], ["Invalid value for --beta1"]),
    ("eps-negative", TRAIN + ["--eps=-1e-8"], ["Invalid value for --eps"]),
    ("momentum-word", TRAIN + ["--momentum", "high"], ["--momentum", "invalid float value"]),
    ("optimizer-unknown", TRAIN + ["--optimizer", "lbfgs"], ["invalid choice: 'lbfgs'"]),
    ("harmonize-unknown", TRAIN + ["--defaults", "native", "--harmonize", "colour"], ["invalid choice: 'colour'"]),
    ("backend-unknown", ["train", "simple-fc", "--backend", "caffe"], ["invalid choice: 'caffe'"]),
    ("arch-unknown", TRAIN[:1] + ["resnet50"] + TRAIN[2:], ["Unknown model 'resnet50'", "Valid names"]),
    ("seeds-zero", COMPARE + ["--seeds", "0", "--out", "{tmp}/c"], ["Invalid value for --seeds"]),
    ("workers-zero", COMPARE + ["--workers", "0", "--out", "{tmp}/c"], ["Invalid value for --workers"]),
    ("sweep-axis-not-applicable", SWEEP + ["--grid", "hidden=5,6", "--out", "{tmp}/s"], ["hidden"]),
    ("sweep-grid-syntax", SWEEP + ["--grid", "lr", "--out", "{tmp}/s"], ["Bad grid axis 'lr'", "key=value1,value2"]),
    ("sweep-grid-unknown-key", SWEEP + ["--grid", "colour=1,2", "--out", "{tmp}/s"], ["colour"]),
    ("reproduce-seeds-zero", ["reproduce", "000", "--smoke", "--seeds", "0", "--out", "{tmp}/r"], ["seeds"]),
    ("parity-images-zero", ["parity", "simple-fc", "--images", "0", "--tiers", "1"], ["images"]),
    ("parity-tier-unknown", ["parity", "simple-fc", "--tiers", "1,7"], ["tier", "7"]),
    # spec files
    ("spec-missing", ["summary", "--spec", "{missing}"], ["missing.json", "No such file"]),
    ("spec-directory", ["summary", "--spec", "{dir}"], ["a-directory", "directory"]),
    ("spec-binary", ["summary", "--spec", "{binary}"], ["binary.bin", "JSON"]),
    ("spec-empty", ["summary", "--spec", "{empty}"], ["empty", "JSON"]),
    ("spec-text", ["summary", "--spec", "{text}"], ["text.txt", "JSON"]),
    ("spec-layers-not-list", ["summary", "--spec", "{layers_not_list}"], ["layers", "list"]),
    ("spec-unknown-field", ["summary", "--spec", "{unknown_field}"], ["colour"]),
    ("spec-unknown-kind", ["summary", "--spec", "{unknown_kind}"], ["Conv3D"]),
    ("spec-bad-shape", ["summary", "--spec", "{bad_shape}"], ["Conv2D", "kernel"]),
    ("spec-evil-name", ["summary", "--spec", "{evil_name}"], ["../../evil"]),
    ("spec-wrong-classes", TRAIN[:1] + ["--spec", "{wrong_classes}"] + TRAIN[2:] + ["--out", "{tmp}/t"],
     ["7 classes", "10"]),
    ("spec-wrong-input", TRAIN[:1] + ["--spec", "{wrong_input}"] + TRAIN[2:] + ["--out", "{tmp}/t"],
     ["(3, 32, 32)", "(1, 28, 28)"]),
    # data
    ("data-garbage", TRAIN + ["--data-dir", "{garbage_data}", "--out", "{tmp}/t"], ["garbage_data", "gzip"]),
    ("data-empty", TRAIN + ["--data-dir", "{empty_data}", "--out", "{tmp}/t"], ["empty_data"]),
    ("data-dir-is-file", TRAIN + ["--data-dir", "{a_file}", "--out", "{tmp}/t"], ["a-file"]),
    ("compare-data-garbage", COMPARE + ["--data-dir", "{garbage_data}", "--out", "{tmp}/c"], ["garbage_data"]),
    # output places
    ("train-out-is-file", TRAIN + ["--out", "{a_file}"], ["a-file"]),
    ("compare-out-is-file", COMPARE + ["--out", "{a_file}"], ["a-file"]),
    ("sweep-out-is-file", SWEEP + ["--grid", "lr=0.1", "--out", "{a_file}"], ["a-file"]),
    # checkpoints
    ("ckpt-missing", ["evaluate", "{missing}"], ["missing.json"]),
    ("ckpt-directory", ["evaluate", "{dir}"], ["a-directory"]),
    ("ckpt-empty", ["evaluate", "{empty}"], ["empty", "checkpoint"]),
    ("ckpt-binary", ["evaluate", "{binary}"], ["binary.bin", "checkpoint"]),
    ("ckpt-other-zip", ["evaluate", "{zip}"], ["other.npz", "checkpoint"]),
    ("ckpt-no-spec", ["evaluate", "{nospec}"], ["nospec.npz", "checkpoint"]),
    ("ckpt-npy", ["evaluate", "{npy}"], ["array.npy", "checkpoint"]),
    ("ckpt-nan-weights", ["evaluate", "{nan_weights}"], ["NaN or inf in: dense_1.kernel"]),
    ("ckpt-int-weights", ["evaluate", "{int_weights}"], ["not floats", "int32"]),
    ("ckpt-truncated", ["evaluate", "{truncated}"], ["truncated.npz", "checkpoint"]),
    # reports
    ("results-doc-missing-report", ["results-doc", "{missing}", "--out", "{tmp}/r.md"], ["missing.json"]),
    # settings the config refuses, in flag words; flags that do not apply (given, even at a default value)
    ("seed-negative", TRAIN + ["--seed=-1"], ["Invalid value for --seed", "Received --seed -1"]),
    ("seed-2**64", TRAIN + ["--seed", str(2**64)], ["Invalid value for --seed"]),
    ("threads-100000", TRAIN + ["--threads", "100000"], ["Invalid value for --threads", "1024"]),
    ("gamma-negative", TRAIN + ["--schedule", "step", "--gamma=-1"], ["Invalid value for --gamma"]),
    ("milestones-negative", TRAIN + ["--schedule", "multistep", "--milestones", "-1"], ["--milestones -1"]),
    ("momentum-with-adam", TRAIN + ["--optimizer", "adam", "--momentum", "0"],
     ["--momentum 0.0 does not apply to --optimizer adam", "--optimizer sgd"]),
    ("nesterov-with-adam", TRAIN + ["--nesterov"], ["--nesterov does not apply to --optimizer adam"]),
    ("rho-with-adam", TRAIN + ["--rho", "0.9"], ["--rho 0.9 does not apply"]),
    ("milestones-constant", TRAIN + ["--milestones", "2"], ["--milestones 2 does not apply to --schedule constant"]),
    ("nesterov-no-momentum", TRAIN + ["--optimizer", "sgd", "--nesterov"], ["--nesterov needs a momentum"]),
    ("resume-and-overwrite", TRAIN + ["--resume", "--overwrite", "--out", "{tmp}/t"], ["--resume", "--overwrite"]),
    ("compare-defaults", COMPARE + ["--defaults", "native", "--out", "{tmp}/c"], ["unrecognized", "--defaults"]),
    ("address-without-ray", COMPARE + ["--address", "auto", "--out", "{tmp}/c"],
     ["--address auto applies to --executor ray only"]),
    ("sweep-workers-zero-fresh", SWEEP + ["--grid", "lr=0.1", "--workers", "0", "--executor", "fresh", "--out",
                                         "{tmp}/s"], ["Invalid value for --workers"]),
    # nonsense places and counts
    ("out-empty", TRAIN + ["--out", ""], ["--out", "empty path"]),
    ("data-dir-empty", TRAIN + ["--data-dir", ""], ["--data-dir", "empty path"]),
    ("parity-images-negative", ["parity", "simple-fc", "--images=-1"], ["--images"]),
    ("parity-seed-negative", ["parity", "simple-fc", "--seed=-1", "--tiers", "1"], ["--seed", "from 0 to 2**32 - 1"]),
    # operating-system errors on the places named: one line naming the path and the fix
    ("out-through-a-file", ["results-doc", "--out", "{a_file}/r.md"], ["a-file", "not a directory"]),
    ("out-is-a-directory", ["results-doc", "--out", "{dir}"], ["a-directory", "name a file"]),
    ("out-read-only", ["results-doc", "--out", "/proc/mnistcnn.md"], ["/proc/mnistcnn.md"]),
    # the user's model code (module:Class, a state dict for a class): the object named, and the fix
    ("model-module-raises", ["import", "raises_on_import:Net", "--out", "{tmp}/r"],
     ["'raises_on_import'", "RuntimeError: broken at import", "python -c 'import raises_on_import'"]),
    ("model-module-missing", ["import", "no_such_module:Net", "--out", "{tmp}/r"], ["No module named"]),
    ("model-no-such-class", ["import", "usermodels:Nett", "--out", "{tmp}/r"], ["has no attribute 'Nett'"]),
    ("model-a-file-not-a-module", ["import", "usermodels.py:Net", "--out", "{tmp}/r"], ["import name"]),
    ("model-not-a-class", ["import", "usermodels:NOT_A_CLASS", "--out", "{tmp}/r"],
     ["an object of type int, not a subclass of torch.nn.Module"]),
    ("model-needs-arguments", ["import", "usermodels:NeedsArgs", "--out", "{tmp}/r"],
     ["NeedsArgs()", "it needs 'width'", "defaults"]),
    ("model-init-raises", ["import", "usermodels:Raises", "--out", "{tmp}/r"], ["ValueError: no init", "__init__"]),
    ("model-summary-needs-arguments", ["summary", "usermodels:NeedsArgs"], ["it needs 'width'"]),
    ("model-compare-module-raises", COMPARE[:1] + ["raises_on_import:Net"] + COMPARE[2:] + ["--out", "{tmp}/c"],
     ["RuntimeError: broken at import"]),
    ("state-dict-other-shapes", ["import", "{wide_state_dict}", "--torch-class", "usermodels:Net", "--out", "{tmp}/r"],
     ["wide.pt does not match the class 'usermodels:Net'", "fc.weight (20, 784) (the class: (10, 784))"]),
    ("state-dict-other-names", ["import", "{state_dict}", "--torch-class", "usermodels:Net", "--out", "{tmp}/r"],
     ["missing: fc.weight, fc.bias", "not in the class: flat_is_no_weight.weight"]),
    ("state-dict-pickled-objects", ["import", "{pickled}", "--torch-class", "usermodels:Net", "--out", "{tmp}/r"],
     ["pickled.pt is not a state dict", "never unpickles", "state_dict()"]),
    ("state-dict-binary", ["import", "{binary}", "--torch-class", "usermodels:Net", "--out", "{tmp}/r"],
     ["binary.bin is not a PyTorch file (not what torch.save writes)"]),
    ("state-dict-missing", ["import", "{tmp}/missing.pt", "--torch-class", "usermodels:Net", "--out", "{tmp}/r"],
     ["missing.pt does not exist"]),
    # misleading messages: what the file is, not what it is not
    ("ckpt-random-bytes", ["evaluate", "{binary}"], ["binary.bin is not a mnistcnn checkpoint: it is not an .npz"]),
    ("ckpt-dev-zero", ["evaluate", "/dev/zero"], ["/dev/zero is not a mnistcnn checkpoint: it is not an .npz"]),
    ("ckpt-pickle", ["evaluate", "{pickled_npz}"], ["it holds pickled Python objects"]),
    ("torchscript-missing", ["evaluate", "{tmp}/missing.pt"], ["missing.pt does not exist"]),
    ("spec-elu-alpha-inf", TRAIN[:1] + ["{elu_inf}"] + TRAIN[2:] + ["--out", "{tmp}/t"],
     ["Layer 2 (Activation) of spec 'elu_inf'", "`alpha`", "finite", "alpha=inf"]),
    ("spec-batchnorm-epsilon-inf", TRAIN[:1] + ["{bn_inf}"] + TRAIN[2:] + ["--out", "{tmp}/t"],
     ["Layer 1 (BatchNorm) of spec 'bn_inf'", "`epsilon`", "epsilon=inf"]),
    # sizes beyond the machine: refused before anything is allocated, naming both sizes
    ("spec-deep-json", ["summary", "{deep}"], ["deep.json is nested too deeply"]),
    ("spec-huge-dense-train", TRAIN[:1] + ["{huge_dense}"] + TRAIN[2:] + ["--out", "{tmp}/t"],
     ["needs at least", "TiB of memory to train", "but this machine has", "dense_1 (Dense)"]),
    ("spec-huge-dense-summary", ["summary", "{huge_dense}"], ["TiB of memory to run", "--backend spec"]),
    ("spec-huge-conv-compare", COMPARE[:1] + ["{huge_conv}"] + COMPARE[2:] + ["--out", "{tmp}/c"],
     ["needs at least", "the output of conv2d_0 (Conv2D)", "--batch-size"]),
    ("ckpt-huge-activations", ["evaluate", "{huge_ckpt}", "--backend", "torch"],
     ["of memory to run", "the output of conv2d_0 (Conv2D), 100000x28x28 per example"]),
]


@pytest.mark.parametrize("case,argv,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_clear_message(case, argv, words, files, tmp_path, mnist_path, capsys,
                                                  monkeypatch):
    monkeypatch.setenv("MNISTCNN_DATA_DIR", str(mnist_path))
    monkeypatch.chdir(tmp_path)  # a default output directory would land here
    monkeypatch.syspath_prepend(str(tmp_path))  # the user's model modules
    argv = [a.format(tmp=tmp_path, **{k: str(v) for k, v in files.items()}) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors: usage and exit status 2
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "unexpected error" not in err, err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    assert "allow_pickle" not in err and "weights_only" not in err
    assert not any((tmp_path / d).exists() for d in ("runs", "t", "c", "s", "r", "imported")), case  # nothing written
    assert os.listdir(tmp_path / "a-directory") == []

"""A probe of the boundaries (not a test: it trains tiny runs when a bad setting is
accepted): over 200 bad settings, inapplicable flags, nonsense values and operating-system
errors on the paths a user names, given to the command line (in this process, or in a
subprocess where the fault needs one) and to the Python API. Each case is classified:

  clear       a bad input refused with exit status 2 (or a mnistcnn error in the API)
              whose message names the argument as the caller wrote it
  succeeded   a good input that ran (exit 0)
  unnamed     refused with exit status 2, but the message does not name the argument as the
              caller wrote it (e.g. `lr` to a command-line user, who wrote --lr)
  traceback   a traceback, "unexpected error", another exit status, or a good input refused
  accepted    a bad input that ran anyway (exit 0, or no error from the API)

Run: MNISTCNN_DATA_DIR=/path/to/mnist .venv/bin/python tests/probe_boundaries.py [-v]
"""
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

T = ["--epochs", "1", "--train-limit", "64", "--test-limit", "64", "--val-size", "0", "--quiet"]
TRAIN = ["train", "simple-fc", "--backend", "torch", *T]
COMPARE = ["compare", "simple-fc", "--seeds", "1", "--no-bn", "--in-process", *T]
SWEEP = ["sweep", "simple-fc", "--grid", "lr=0.01", "--seeds", "1", "--in-process", *T]
SGD, ADAM, RMS, ADADELTA = (["--optimizer", o] for o in ("sgd", "adam", "rmsprop", "adadelta"))
STEP, MULTI = ["--schedule", "step"], ["--schedule", "multistep", "--milestones", "1"]


def cli_cases():
    """(id, argv, expect 'bad'|'ok', words the message must hold)"""
    c = []
    bad = lambda name, argv, *words: c.append((name, argv, "bad", list(words)))  # noqa: E731
    ok = lambda name, argv: c.append((name, argv, "ok", []))  # noqa: E731
    # class 1: each TrainConfig flag given a value of the wrong range or kind
    values = {
        "--epochs": ["0", "-1", "1.5", "x"], "--batch-size": ["0", "-3", "2.5"],
        "--lr": ["0", "-1", "inf", "nan", "-inf", "1e400", "fast"],
        "--momentum": ["-0.1", "1", "1.5", "nan"], "--beta1": ["-0.1", "1", "2"], "--beta2": ["1", "-1", "nan"],
        "--eps": ["0", "-1e-8", "inf"], "--weight-decay": ["-1", "inf", "nan"],
        "--seed": ["-1", "4294967296", "18446744073709551616", "1.5"],
        "--val-size": ["-1", "60000", "70000"], "--train-limit": ["0", "-1"], "--test-limit": ["0", "-1"],
        "--log-every": ["0", "-1"], "--threads": ["0", "-1"],
        "--device": ["gpu", "cuda:x", ""], "--dataset": ["cifar10"], "--optimizer": ["lbfgs"],
        "--schedule": ["cosine"], "--normalization": ["none"], "--defaults": ["mixed"], "--init": ["he"],
        "--precision": ["float16"],
    }
    pre = {"--momentum": SGD, "--beta1": ADAM, "--beta2": ADAM, "--eps": ADAM, "--rho": RMS}
    for flag, vs in values.items():
        for v in vs:
            for command in (TRAIN, SWEEP + ["--out", "{tmp}/s"]) if v == vs[0] else (TRAIN,):
                bad(f"{command[0]}{flag}={v}", command + pre.get(flag, []) + [f"{flag}={v}"], flag)
    for v in ("-0.1", "1", "2", "nan"):
        bad(f"rho={v}", TRAIN + RMS + [f"--rho={v}"], "--rho")
    for v in ("0", "-1"):
        bad(f"step-size={v}", TRAIN + STEP + [f"--step-size={v}"], "--step-size")
    for v in ("-1", "0", "inf", "nan"):
        bad(f"gamma={v}", TRAIN + STEP + [f"--gamma={v}"], "--gamma")
    for v in (["-1"], ["0"], ["x"], ["2", "1"], ["1", "1"]):
        bad(f"milestones={v}", TRAIN + ["--schedule", "multistep", "--milestones", *v], "--milestones")
    bad("harmonize-colour", TRAIN + ["--defaults", "native", "--harmonize", "colour"], "--harmonize")
    # class 2: flags that do not apply
    for opt, flags in ((ADAM, [["--momentum", "0.9"], ["--momentum", "0"], ["--nesterov"], ["--rho", "0.9"]]),
                       (SGD, [["--beta1", "0.8"], ["--beta2", "0.9"], ["--eps", "1e-8"], ["--rho", "0.9"]]),
                       (RMS, [["--beta1", "0.8"], ["--nesterov", "--momentum", "0.9"]]),
                       (ADADELTA, [["--momentum", "0.5"], ["--beta2", "0.99"]])):
        for f in flags:
            for command in (TRAIN, COMPARE + ["--out", "{tmp}/c"]) if f == flags[0] else (TRAIN,):
                bad(f"{command[0]}-{opt[1]}{''.join(f)}", command + opt + f, f[0])
    bad("nesterov-without-momentum", TRAIN + SGD + ["--nesterov"], "--nesterov", "--momentum")
    constant = ["--schedule", "constant"]
    for sched, flags in ((constant, [["--milestones", "2"], ["--step-size", "2"], ["--gamma", "0.5"]]),
                         ([], [["--milestones", "2"], ["--gamma", "0.5"]]),
                         (STEP, [["--milestones", "2"]]), (MULTI, [["--step-size", "2"]])):
        for f in flags:
            bad(f"schedule{''.join(sched)}{''.join(f)}", TRAIN + sched + f, f[0])
    bad("multistep-without-milestones", TRAIN + ["--schedule", "multistep"], "--milestones")
    bad("harmonize-under-harmonized", TRAIN + ["--harmonize", "init"], "--harmonize")
    bad("init-under-native", TRAIN + ["--defaults", "native", "--init", "torch_default"], "--init")
    bad("resume-and-overwrite", TRAIN + ["--resume", "--overwrite", "--out", "{tmp}/t"], "--resume", "--overwrite")
    for command in (COMPARE + ["--out", "{tmp}/c"], SWEEP + ["--out", "{tmp}/s"]):
        bad(f"{command[0]}-address-without-ray", command + ["--address", "auto"], "--address", "--executor")
        bad(f"{command[0]}-workers-0", command + ["--workers", "0"], "--workers")
        bad(f"{command[0]}-workers--1", command + ["--workers", "-1"], "--workers")
        bad(f"{command[0]}-seeds-0", command + ["--seeds", "0"], "--seeds")
        bad(f"{command[0]}-seeds--2", command + ["--seeds", "-2"], "--seeds")
        bad(f"{command[0]}-seed-max", command + ["--seed", "4294967295", "--seeds", "2"], "--seed")
    bad("compare-defaults-native", COMPARE + ["--defaults", "native", "--out", "{tmp}/c"], "--defaults")
    bad("compare-harmonize", COMPARE + ["--harmonize", "init", "--out", "{tmp}/c"], "--harmonize")
    bad("compare-max-seeds-neg", COMPARE + ["--max-seeds", "-5", "--out", "{tmp}/c"], "--max-seeds")
    bad("compare-max-seeds-no-target", COMPARE + ["--max-seeds", "5", "--out", "{tmp}/c"], "--max-seeds")
    bad("compare-ci-target-neg", COMPARE + ["--ci-target", "-1", "--out", "{tmp}/c"], "--ci-target")
    bad("compare-ci-target-zero", COMPARE + ["--ci-target", "0", "--out", "{tmp}/c"], "--ci-target")
    bad("compare-ci-target-nan", COMPARE + ["--ci-target", "nan", "--out", "{tmp}/c"], "--ci-target")
    # class 1/3: nonsense values of the command line's own flags
    bad("train-out-empty", TRAIN + ["--out", ""], "--out")
    bad("compare-out-empty", COMPARE + ["--out", ""], "--out")
    bad("sweep-out-empty", SWEEP + ["--out", ""], "--out")
    bad("train-data-dir-empty", TRAIN + ["--data-dir", "", "--out", "{tmp}/t"], "--data-dir")
    bad("parity-data-dir-empty", ["parity", "simple-fc", "--images", "2", "--tiers", "1", "--data-dir", ""],
        "--data-dir")
    for v in ("-1", "0"):
        bad(f"parity-images={v}", ["parity", "simple-fc", "--tiers", "1", f"--images={v}"], "--images")
        bad(f"parity-steps={v}", ["parity", "simple-fc", "--tiers", "3", "--images", "2", f"--steps={v}"], "--steps")
    bad("parity-seed--1", ["parity", "simple-fc", "--tiers", "1", "--images", "2", "--seed=-1"], "--seed")
    bad("parity-tiers-0", ["parity", "simple-fc", "--tiers", "0"], "tier")
    for v in ("-1", "0"):
        bad(f"reproduce-seeds={v}", ["reproduce", "000", "--smoke", f"--seeds={v}", "--out", "{tmp}/r"], "--seeds")
        bad(f"reproduce-workers={v}", ["reproduce", "000", "--smoke", f"--workers={v}", "--out", "{tmp}/r"],
            "--workers")
    bad("reproduce-out-empty", ["reproduce", "000", "--smoke", "--out", ""], "--out")
    bad("reproduce-only-all", ["reproduce", "all", "--only", "x", "--out", "{tmp}/r"], "--only")
    bad("results-doc-out-empty", ["results-doc", "--out", ""], "--out")
    bad("import-out-empty", ["import", "{spec}", "--out", ""], "--out")
    bad("import-input-shape-0", ["import", "{spec}", "--input-shape", "0", "0", "0", "--out", "{tmp}/i"],
        "--input-shape")
    bad("evaluate-data-dir-empty", ["evaluate", "{ckpt}", "--backend", "torch", "--data-dir", ""], "--data-dir")
    # class 3: operating-system errors on the paths the user named
    for command, out in ((TRAIN, "--out"), (COMPARE, "--out"), (SWEEP, "--out"), (["results-doc"], "--out"),
                         (["import", "{spec}"], "--out"),
                         (["parity", "simple-fc", "--tiers", "1", "--images", "2"], "--json"),
                         (["reproduce", "000", "--smoke"], "--out")):
        bad(f"{command[0]}{out}-through-file", command + [out, "{a_file}/x"], "a-file")
        bad(f"{command[0]}{out}-read-only", command + [out, "/sys/mnistcnn-probe"], "/sys/mnistcnn-probe")
    for command, out in ((["results-doc"], "--out"), (["parity", "simple-fc", "--tiers", "1", "--images", "2"],
                                                      "--json")):
        bad(f"{command[0]}{out}-is-directory", command + [out, "{dir}"], "a-directory")
    bad("train-out-is-file", TRAIN + ["--out", "{a_file}"], "a-file")
    bad("train-data-dir-through-file", TRAIN + ["--data-dir", "{a_file}/x", "--out", "{tmp}/t"], "a-file")
    bad("train-data-dir-missing", TRAIN + ["--data-dir", "{tmp}/nowhere", "--out", "{tmp}/t"], "nowhere")
    bad("summary-spec-through-file", ["summary", "{a_file}/x.json", "--backend", "spec"], "a-file")
    bad("summary-spec-is-dir", ["summary", "{dir}", "--backend", "spec"], "a-directory")
    bad("summary-spec-missing", ["summary", "{tmp}/missing.json", "--backend", "spec"], "missing.json")
    bad("evaluate-through-file", ["evaluate", "{a_file}/w.npz", "--backend", "torch"], "a-file")
    bad("evaluate-dir", ["evaluate", "{dir}", "--backend", "torch"], "a-directory")
    bad("tensorboard-through-file", ["tensorboard", "{a_file}/x"], "a-file")
    bad("results-doc-report-is-file", ["results-doc", "{a_file}", "--out", "{tmp}/r.md"], "a-file")
    # the user's model code: module:Class that fails to import or build, state dicts that do not fit
    refs = {"raises_on_import:Net": "RuntimeError: broken at import", "syntax_error:Net": "SyntaxError",
            "exits_on_import:Net": "SystemExit", "no_such_module:Net": "No module named 'no_such_module'",
            "usermodels:Nope": "no attribute 'Nope'", "usermodels.py:Net": "import name", ":Net": "import name",
            "usermodels:": "import name", "usermodels:NOT_A_CLASS": "not a subclass of torch.nn.Module",
            "usermodels:func": "returned an object of type int", "usermodels:Plain": "a class, not a subclass",
            "usermodels:NeedsArgs": "it needs 'width'", "usermodels:Raises": "ValueError: no init",
            "usermodels:RaisesInForward": "Cannot trace RaisesInForward"}
    for ref, word in refs.items():
        for command in (["import", ref, "--out", "{tmp}/i"], ["summary", ref, "--backend", "spec"],
                        [TRAIN[0], ref, *TRAIN[2:], "--out", "{tmp}/t"], [COMPARE[0], ref, *COMPARE[2:], "--out",
                                                                          "{tmp}/c"]):
            bad(f"{command[0]}-{ref}", command, word)
    for sd, word in (("{wide_sd}", "fc.weight (20, 784) (the class: (10, 784))"), ("{whole_pt}", "never unpickles"),
                     ("{tensor_pt}", "holds a Tensor, not a state dict"), ("{random}", "not a PyTorch file"),
                     ("/dev/zero", "not a regular file"), ("{tmp}/missing.pt", "does not exist"),
                     ("{dir}", "is a directory"), ("{empty}", "not a PyTorch file (empty)")):
        bad(f"import-state-dict-{sd}", ["import", sd, "--torch-class", "usermodels:Net", "--out", "{tmp}/i"], word)
    bad("import-state-dict-class-needs-args", ["import", "{net_sd}", "--torch-class", "usermodels:NeedsArgs", "--out",
                                               "{tmp}/i"], "it needs 'width'")
    bad("import-state-dict-class-raises", ["import", "{net_sd}", "--torch-class", "raises_on_import:Net", "--out",
                                           "{tmp}/i"], "RuntimeError: broken at import")
    ok("import-module-class", ["import", "usermodels:Net", "--out", "{tmp}/i"])
    ok("import-module-function", ["import", "usermodels:make", "--out", "{tmp}/i"])
    ok("import-state-dict", ["import", "{net_sd}", "--torch-class", "usermodels:Net", "--out", "{tmp}/i"])
    # misleading messages: what a file given to evaluate is, not what it is not
    for path, word in (("{random}", "is not an .npz archive"), ("/dev/zero", "is not an .npz archive"),
                       ("{pickle_npz}", "pickled Python objects"), ("{empty}", "it is empty"),
                       ("{tmp}/missing.pt", "missing.pt does not exist"),
                       ("{tmp}/missing.pth", "missing.pth does not exist"),
                       ("{tmp}/missing.npz", "missing.npz does not exist"), ("{whole_pt}", "whole.pt")):
        bad(f"evaluate-{path}", ["evaluate", path, "--backend", "torch"], word)
    # non-finite layer arguments in a spec file: refused at construction, naming the argument
    for name, word in (("elu_inf", "alpha=inf"), ("elu_nan", "alpha=nan"), ("bn_eps_inf", "epsilon=inf"),
                       ("bn_momentum_nan", "momentum=nan"), ("bn_momentum_inf", "momentum=inf"),
                       ("leaky_inf", "negative_slope=inf"), ("leaky_nan", "negative_slope=nan"),
                       ("dropout_nan", "rate=nan"), ("hbn_eps_inf", "epsilon=inf")):
        for command in (["summary", "{" + name + "}", "--backend", "spec"], [TRAIN[0], "{" + name + "}", *TRAIN[2:]]):
            bad(f"{command[0]}-{name}", command, word)
    # sizes beyond the machine, and nesting beyond Python's stack
    for name, word in (("huge_dense", "dense_1 (Dense)"), ("huge_conv", "the output of conv2d_0 (Conv2D)")):
        bad(f"train-{name}", [TRAIN[0], "{" + name + "}", *TRAIN[2:]], "of memory to train", word)
        bad(f"compare-{name}", [COMPARE[0], "{" + name + "}", *COMPARE[2:], "--out", "{tmp}/c"], "of memory", word)
        bad(f"sweep-{name}", [SWEEP[0], "{" + name + "}", *SWEEP[2:], "--out", "{tmp}/s"], "of memory", word)
        bad(f"summary-{name}", ["summary", "{" + name + "}", "--backend", "torch"], "of memory to run",
            "--backend spec")
        ok(f"summary-spec-{name}", ["summary", "{" + name + "}", "--backend", "spec"])
    bad("train-batch-beyond-memory", [TRAIN[0], "{mid_conv}", *TRAIN[2:], "--batch-size", "4096"], "--batch-size")
    bad("evaluate-huge-activations", ["evaluate", "{huge_ckpt}", "--backend", "torch"], "of memory to run")
    for name in ("deep_list", "deep_object", "deep_residual"):
        bad(f"summary-{name}", ["summary", "{" + name + "}", "--backend", "spec"], "nested too deeply")
        bad(f"train-{name}", [TRAIN[0], "{" + name + "}", *TRAIN[2:]], "nested too deeply")
    # good inputs, beside them
    ok("zoo", ["zoo"])
    ok("summary-spec", ["summary", "simple-fc", "--backend", "spec"])
    ok("summary-torch", ["summary", "simple-fc", "--backend", "torch"])
    ok("train-sgd-nesterov", TRAIN + SGD + ["--momentum", "0.9", "--nesterov", "--out", "{tmp}/g1"])
    ok("train-multistep", TRAIN + ["--schedule", "multistep", "--milestones", "1", "--gamma", "0.5", "--out",
                                   "{tmp}/g2"])
    ok("train-rmsprop-rho", TRAIN + RMS + ["--rho", "0.9", "--momentum", "0.1", "--out", "{tmp}/g3"])
    ok("train-native-harmonize-init", TRAIN + ["--defaults", "native", "--harmonize", "init", "--init",
                                               "torch_default", "--out", "{tmp}/g4"])
    ok("train-seed-max", TRAIN + ["--seed", "4294967295", "--out", "{tmp}/g5"])
    ok("train-gamma-above-1", TRAIN + STEP + ["--gamma", "2", "--out", "{tmp}/g6"])
    ok("parity-tier1", ["parity", "simple-fc", "--tiers", "1", "--images", "2"])
    return c


def api_cases():
    """(id, callable, expect, words)"""
    from mnistcnn.config import TrainConfig

    c = []
    bad = lambda name, fn, *words: c.append((name, fn, "bad", list(words)))  # noqa: E731
    ok = lambda name, fn: c.append((name, fn, "ok", []))  # noqa: E731
    kinds = {
        "epochs": ["5", 1.5, True, None, -1, 0], "batch_size": ["128", 0.5, None, False],
        "lr": ["0.1", None, True, [0.1], -0.1, float("nan"), 1j], "momentum": ["0.5", None, 2],
        "beta1": ["0.9", None], "beta2": ["0.999", 1.0], "eps": ["1e-8", -1.0],
        "weight_decay": ["0", None, -1], "gamma": ["0.1", -1, 0, None, float("inf")],
        "step_size": ["2", 0, 1.5], "milestones": [(-1,), "2", (1.5,), 5, (0,), (3, 2), None],
        "seed": [-1, 2 ** 64, 2 ** 32, "0", 1.5, None, True], "val_size": ["0", -1, 60_000, None],
        "train_limit": ["64", 0, 1.5], "test_limit": ["64", -1], "log_every": [0, "10", None],
        "threads": [10 ** 6, "4", 0, 1.5], "dataset": ["cifar10", 3, None], "optimizer": ["SGD", None, 1],
        "schedule": ["cosine", None], "defaults": ["Native", None], "harmonize": ["init", ("colour",), 3],
        "init": ["he", None], "normalization": ["none", None], "precision": ["float16", None],
        "device": [3, "gpu", None], "nesterov": ["yes", 1], "test_every_epoch": ["no", 2],
    }
    needs = {"momentum": {"optimizer": "sgd"}, "nesterov": {"optimizer": "sgd", "momentum": 0.9},
             "step_size": {"schedule": "step"}, "gamma": {"schedule": "step"},
             "milestones": {"schedule": "multistep", "epochs": 5}, "harmonize": {"defaults": "native"}}
    for field, vs in kinds.items():
        for v in vs:
            bad(f"TrainConfig({field}={v!r})", lambda _, f=field, v=v: TrainConfig(**{**needs.get(f, {}), f: v}),
                f"{field}=")
    for kw, word in ((dict(optimizer="adam", momentum=0.9), "momentum="),
                     (dict(optimizer="adam", nesterov=True), "nesterov="),
                     (dict(optimizer="adam", rho=0.9), "rho="), (dict(optimizer="sgd", beta1=0.5), "beta1="),
                     (dict(optimizer="sgd", eps=1e-8), "eps="), (dict(optimizer="adadelta", momentum=0.1), "momentum="),
                     (dict(optimizer="sgd", nesterov=True), "nesterov="),
                     (dict(milestones=(2,)), "milestones="), (dict(schedule="step", milestones=(2,)), "milestones="),
                     (dict(gamma=0.5), "gamma="), (dict(step_size=3), "step_size="),
                     (dict(schedule="multistep"), "milestones="), (dict(harmonize=("init",)), "harmonize="),
                     (dict(defaults="native", init="torch_default"), "init=")):
        bad(f"TrainConfig({kw})", lambda _, kw=kw: TrainConfig(**kw), word)
    for kw in (dict(optimizer="sgd", momentum=0.9, nesterov=True), dict(lr=1), dict(epochs=np.int64(3)),
               dict(lr=np.float32(0.01)), dict(schedule="multistep", milestones=[1, 3]),
               dict(optimizer="rmsprop", rho=0.9, momentum=0.5), dict(seed=2 ** 32 - 1),
               dict(defaults="native", harmonize=("init",), init="torch_default"),
               dict(schedule="step", step_size=2, gamma=0.5), dict(optimizer="adadelta", rho=0.95, eps=1e-7)):
        ok(f"TrainConfig({kw})", lambda _, kw=kw: TrainConfig(**kw))

    def train_both(tmp):
        from mnistcnn import train

        train.run("simple-fc", "torch", TrainConfig(epochs=1, train_limit=64, test_limit=64, val_size=0),
                  out=tmp / "api-both", progress=False, resume=True, overwrite=True)

    def run_jobs_address(tmp):
        from mnistcnn.runner import run_jobs

        run_jobs([], None, 1, False, False, "local", "auto")

    c.append(("train.run(resume=True, overwrite=True)", train_both, "bad", ["resume=True", "overwrite=True"]))
    # spec layer arguments: non-finite numbers refused at construction, the argument named
    from mnistcnn import spec as S

    inf, nan = float("inf"), float("nan")
    for what, fn, word in (("BatchNorm(0.9, inf)", lambda: S.BatchNorm(0.9, inf), "`epsilon`"),
                           ("BatchNorm(0.9, nan)", lambda: S.BatchNorm(0.9, nan), "`epsilon`"),
                           ("BatchNorm(inf, 1e-3)", lambda: S.BatchNorm(inf, 1e-3), "`momentum`"),
                           ("BatchNorm(0.9, True)", lambda: S.BatchNorm(0.9, True), "`epsilon`"),
                           ("HeightBatchNorm(0.9, inf)", lambda: S.HeightBatchNorm(0.9, inf), "`epsilon`"),
                           ("Activation('elu', alpha=inf)", lambda: S.Activation("elu", alpha=inf), "`alpha`"),
                           ("Activation('elu', alpha=nan)", lambda: S.Activation("elu", alpha=nan), "`alpha`"),
                           ("Activation('leaky_relu', negative_slope=inf)",
                            lambda: S.Activation("leaky_relu", negative_slope=inf), "`negative_slope`"),
                           ("Activation('leaky_relu', negative_slope=nan)",
                            lambda: S.Activation("leaky_relu", negative_slope=nan), "`negative_slope`"),
                           ("Dropout(nan)", lambda: S.Dropout(nan), "`rate`"),
                           ("SpatialDropout2D(inf)", lambda: S.SpatialDropout2D(inf), "`rate`")):
        bad(what, lambda _, fn=fn: fn(), word)
    for what, layers in (("Dense(10**9)", [S.Flatten(), S.Dense(10 ** 9), S.Dense(10)]),
                         ("Conv2D(10**6, 3)", [S.Conv2D(10 ** 6, 3, padding="same"), S.Flatten(), S.Dense(10)])):
        def huge_run(tmp, layers=layers):
            from mnistcnn import train

            train.run(S.ModelSpec("huge", layers), "torch", TrainConfig(epochs=1, train_limit=64, test_limit=64,
                                                                         val_size=0), progress=False)
        bad(f"train.run({what})", huge_run, "of memory to train", "but this machine has")
        ok(f"ModelSpec({what}) as data", lambda _, layers=layers: S.ModelSpec("huge", layers).summary_text())
    c.append(("run_jobs(executor='local', address='auto')", run_jobs_address, "bad", ["address=", "executor="]))
    return c


def sub_cases():
    """(id, shell command, expect, words): faults that need a process of their own"""
    m = f"{sys.executable} -m mnistcnn"
    return [
        ("zoo | true", f"{m} zoo | true", "quiet", []),
        ("summary | true", f"{m} summary seed000-cnn --backend spec | true", "quiet", []),
        ("full disk: results-doc", f"ulimit -f 1; {m} results-doc --out {{tmp}}/full.md", "bad", ["full.md"]),
        ("full disk: parity --json", f"ulimit -f 1; {m} parity simple-fc --tiers 1 --images 2 "
                                     f"--json {{tmp}}/p.json", "bad", ["p.json"]),
        ("XDG_CACHE_HOME a file, a bug", f"XDG_CACHE_HOME={{a_file}} {sys.executable} -c 'import mnistcnn.zoo as z; "
                                         "z.names = lambda: 1 / 0; from mnistcnn.cli import main; "
                                         "raise SystemExit(main([\"zoo\"]))'",
         "bug", ["unexpected error"]),
        ("XDG_CACHE_HOME a file, no data", f"XDG_CACHE_HOME={{a_file}} MNISTCNN_DATA_DIR= {m} parity simple-fc "
                                           f"--tiers 1 --images 2", "bad", ["a-file"]),
        ("threads 100000", f"{m} train simple-fc --backend torch {' '.join(T)} --threads 100000 "
                           f"--out {{tmp}}/thr", "bad", ["--threads"]),
        ("seed 2**64", f"{m} train simple-fc --backend torch {' '.join(T)} --seed 18446744073709551616 "
                       f"--out {{tmp}}/s64", "bad", ["--seed"]),
    ]


def files(tmp: Path) -> dict:
    from mnistcnn import spec, weights, zoo

    f = {"tmp": tmp, "a_file": tmp / "a-file", "dir": tmp / "a-directory", "spec": tmp / "spec.json"}
    f["a_file"].write_text("a file, not a directory\n")
    f["dir"].mkdir()
    spec.save(zoo.get("simple-fc"), f["spec"])
    f["ckpt"] = weights.save(tmp / "w.npz", zoo.get("simple-fc"), weights.initial(zoo.get("simple-fc"), 0))
    # the user's model code (this directory is on sys.path and PYTHONPATH)
    (tmp / "raises_on_import.py").write_text("raise RuntimeError('broken at import')\n")
    (tmp / "syntax_error.py").write_text("def f(:\n")
    (tmp / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    (tmp / "usermodels.py").write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.flat, self.fc = nn.Flatten(), nn.Linear(784, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.flat(x))\n"
        "class NeedsArgs(nn.Module):\n"
        "    def __init__(self, width):\n"
        "        super().__init__()\n"
        "class Raises(nn.Module):\n"
        "    def __init__(self):\n"
        "        raise ValueError('no init')\n"
        "class RaisesInForward(Net):\n"
        "    def forward(self, x):\n"
        "        raise RuntimeError('no forward')\n"
        "class Plain:\n"
        "    pass\n"
        "def func():\n"
        "    return 3\n"
        "def make():\n"
        "    return Net()\n"
        "NOT_A_CLASS = 5\n")
    import torch

    f["net_sd"], f["wide_sd"], f["whole_pt"], f["tensor_pt"] = (tmp / n for n in ("net.pt", "wide.pt", "whole.pt",
                                                                                   "tensor.pt"))
    torch.save({"fc.weight": torch.zeros(10, 784), "fc.bias": torch.zeros(10)}, f["net_sd"])
    torch.save({"fc.weight": torch.zeros(20, 784), "fc.bias": torch.zeros(20)}, f["wide_sd"])
    torch.save(torch.nn.Linear(784, 10), f["whole_pt"])
    torch.save(torch.zeros(3), f["tensor_pt"])
    f["random"], f["empty"], f["pickle_npz"] = tmp / "random.bin", tmp / "empty.npz", tmp / "pickle.npz"
    f["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    f["empty"].write_bytes(b"")
    f["pickle_npz"].write_bytes(__import__("pickle").dumps({"a": 1}, protocol=4))
    # spec files: non-finite layer arguments, sizes beyond the machine, nesting beyond Python's stack
    inf, nan = float("inf"), float("nan")
    flat, dense = {"kind": "Flatten"}, {"kind": "Dense", "units": 10}
    specs = {"elu_inf": [flat, dense, {"kind": "Activation", "name": "elu", "alpha": inf}],
             "elu_nan": [flat, dense, {"kind": "Activation", "name": "elu", "alpha": nan}],
             "bn_eps_inf": [flat, {"kind": "BatchNorm", "momentum": 0.9, "epsilon": inf}, dense],
             "bn_momentum_nan": [flat, {"kind": "BatchNorm", "momentum": nan, "epsilon": 1e-3}, dense],
             "bn_momentum_inf": [flat, {"kind": "BatchNorm", "momentum": inf, "epsilon": 1e-3}, dense],
             "leaky_inf": [flat, dense, {"kind": "Activation", "name": "leaky_relu", "negative_slope": inf}],
             "leaky_nan": [flat, dense, {"kind": "Activation", "name": "leaky_relu", "negative_slope": nan}],
             "dropout_nan": [flat, {"kind": "Dropout", "rate": nan}, dense],
             "hbn_eps_inf": [{"kind": "HeightBatchNorm", "momentum": 0.9, "epsilon": inf}, flat, dense],
             "huge_dense": [flat, {"kind": "Dense", "units": 10 ** 9}, dense],
             "huge_conv": [{"kind": "Conv2D", "filters": 10 ** 6, "kernel_size": 3, "padding": "same"}, flat, dense],
             "mid_conv": [{"kind": "Conv2D", "filters": 2000, "kernel_size": 3, "padding": "same"}, flat, dense]}
    for name, layers in specs.items():
        f[name] = tmp / f"{name}.json"
        f[name].write_text(__import__("json").dumps({"format": "mnistcnn.spec", "version": 1, "name": name,
                                                     "input_shape": [1, 28, 28], "layers": layers}))
    n = 100_000
    f["deep_list"], f["deep_object"], f["deep_residual"] = (tmp / f"{d}.json" for d in ("deep1", "deep2", "deep3"))
    f["deep_list"].write_text("[" * n + "]" * n)
    f["deep_object"].write_text('{"a": ' * n + "1" + "}" * n)
    f["deep_residual"].write_text('{"format": "mnistcnn.spec", "version": 1, "name": "deep", "layers": ['
                                  + '{"kind": "Residual", "body": [' * 5000 + '{"kind": "Flatten"}'
                                  + "]}" * 5000 + "]}")
    wide = spec.ModelSpec("wide", [spec.Conv2D(100_000, 1), spec.GlobalAvgPool2D(), spec.Dense(10)])
    f["huge_ckpt"] = weights.save(tmp / "huge.npz", wide, weights.initial(wide, 0))
    return {k: str(v) for k, v in f.items()}


def listing(tmp: Path) -> set:
    return {str(p) for p in tmp.rglob("*")}


def classify(expect, code, err, words):
    if expect == "ok":
        return "succeeded" if code == 0 else "traceback"
    if expect == "bug":  # a bug is reported as one, and the report itself does not fail
        ok = code == 1 and "During handling of the above exception" not in err and all(w in err for w in words)
        return "succeeded" if ok else "traceback"
    if expect == "quiet":
        return "succeeded" if not err.strip() else "traceback"
    if code == 0:
        return "accepted"
    if code != 2 or "Traceback" in err or "unexpected error" in err:
        return "traceback"
    return "clear" if all(w in err for w in words) else "unnamed"


def main():
    from mnistcnn.cli import main as cli

    verbose = "-v" in sys.argv
    totals, wrote = Counter(), []
    home = Path(tempfile.mkdtemp(prefix="probe-"))
    os.chdir(home)
    sys.path.insert(0, str(home))  # the user's model modules
    os.environ["PYTHONPATH"] = str(home)
    f = files(home)

    def report(name, outcome, err):
        totals[outcome] += 1
        if verbose or outcome != "clear" and outcome != "succeeded":
            print(f"{outcome:10s} {name}: {err.strip().splitlines()[-1][:200] if err.strip() else ''}", flush=True)

    for i, (name, argv, expect, words) in enumerate(cli_cases()):
        if argv[0] == "train" and "--out" not in argv:
            argv = argv + ["--out", "{tmp}/t"]
        f["tmp"] = str(home / f"case{i}")  # each case its own output places
        argv = [a.format(**f) for a in argv]
        words = [w.format(**f) for w in words]
        before, out, err = listing(home), io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli(argv)
        except SystemExit as e:
            code = e.code
        except BaseException as e:  # noqa: BLE001 - a traceback out of main
            code, err = 1, io.StringIO(f"Traceback: {type(e).__name__}: {e}")
        outcome = classify(expect, code, err.getvalue(), words)
        if code == 2 and listing(home) - before:
            wrote.append(name)
        report(name, outcome, err.getvalue())
    f["tmp"] = str(home)
    for name, fn, expect, words in api_cases():
        try:
            fn(home)
            code, err = 0, ""
        except Exception as e:  # noqa: BLE001
            from mnistcnn.errors import MnistCnnError

            code, err = (2, str(e)) if isinstance(e, MnistCnnError) else (1, f"Traceback: {type(e).__name__}: {e}")
        report(name, classify(expect, code, err, words), err)
    for name, command, expect, words in sub_cases():
        p = subprocess.run(["bash", "-c", command.format(**f)], capture_output=True, text=True, timeout=300)
        code = p.returncode if expect != "quiet" else 0
        report(name, classify(expect, code, p.stderr, [w.format(**f) for w in words]), p.stderr)
    n = sum(totals.values())
    print(f"\n{n} cases: {totals['clear']} clear exit 2, {totals['succeeded']} rightly succeeded, "
          f"{totals['unnamed']} exit 2 not naming the argument, {totals['traceback']} traceback/unexpected, "
          f"{totals['accepted']} silently accepted; "
          f"{len(wrote)} wrote files on exit 2{': ' + ', '.join(wrote) if wrote else ''}")


if __name__ == "__main__":
    main()

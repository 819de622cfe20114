"""Throughput of mnistcnn's training loops against hand-written native ones, and against
the machine's fp32 matrix-multiply rate. Run by `make bench`, never by the tests.

This machine's speed drifts by up to 2x from minute to minute, so nothing here is an
absolute claim: the loops compared run in rounds (A B C, A B C, ...) in one process and
the report gives the median of the per-round ratios, and a 95% interval of their
geometric mean; efficiency divides each round's
FLOP rate by the matmul rate measured just before it. Each framework is measured in its
own process (two frameworks in one process compete for the cores). Everything runs with
mnistcnn's allocator tuning (mnistcnn.runtime), hand-written loops included; its own
effect is measured in child processes, with and without it.

    python benchmarks/bench.py --framework torch --out benchmarks/torch.json
    python benchmarks/bench.py --framework keras --out benchmarks/keras.json
    python benchmarks/bench.py --framework jax --out benchmarks/jax.json
    python benchmarks/bench.py --report benchmarks/torch.json benchmarks/keras.json benchmarks/jax.json --md docs/performance.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mnistcnn import data, runtime, train, zoo
from mnistcnn import weights as W
from mnistcnn._io import atomic_write_text

MODELS = ("seed000-cnn", "complex-cnn")
BATCHES = (64, 128)
SGEMM_N = 2048


BF16_UNITS = {"avx512_bf16", "amx_bf16"}


def cpu_facts() -> dict:
    return {"name": runtime.cpu_name(), "cores": os.cpu_count(), "vector_extensions": runtime.vector_extensions()}


def training_flops(spec) -> float:
    """Per image: forward 2*MACs; backward ~2x forward (weight and input gradients),
    less the input gradient of the first layer, which nobody needs."""
    first = next(r.macs for r in spec.rows if r.macs)
    return 2.0 * (3 * spec.macs - first)


def rounds(loops: dict, reps: int, probe=None) -> tuple[dict, list]:
    """Run the loops round-robin ``reps`` times; each returns images/s. With ``probe``
    (a matmul rate), it is measured at the start of each round."""
    speeds, rates = {k: [] for k in loops}, []
    for _ in range(reps):
        if probe:
            rates.append(probe())
        for k, f in loops.items():
            speeds[k].append(f())
    return speeds, rates


def ratio(a: list, b: list) -> dict:
    r = [x / y for x, y in zip(a, b)]
    return {"ratios": r, "median_ratio": statistics.median(r)}


def explore(what: str, a, b, reps: int, note: str = "") -> dict:
    """One exploration: variant a against variant b, warmed up, then A B A B ..."""
    a(), b()
    s, _ = rounds({"a": a, "b": b}, reps)
    return {"what": what, "a_images_per_s": s["a"], "b_images_per_s": s["b"], "note": note} | ratio(s["a"], s["b"])


def case(name: str, bs: int, spec, loops: dict, reps: int, probe, precision: str = "float32") -> dict:
    """mnistcnn's loop ('ours') against the others, with the matmul rates ({dtype: FLOP/s})
    measured at the start of each round."""
    for f in loops.values():
        f()  # warm up
    speeds, rates = rounds(loops, reps, probe)
    flops = training_flops(spec)
    return {"model": name, "batch": bs, "precision": precision, "images_per_s": speeds,
            "matmul_flops": {k: [r[k] for r in rates] for k in rates[0]}, "train_flops_per_image": flops,
            "vs": {k: ratio(speeds["ours"], v) for k, v in speeds.items() if k != "ours"},
            "efficiency": {k: [s * flops / r[k] for s, r in zip(speeds["ours"], rates)] for k in rates[0]}}


def timed(f, k: int = 20) -> float:
    """Median seconds of f() over k calls, after two warm-up calls."""
    f(), f()
    times = []
    for _ in range(k):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def mnistcnn_trainer(backend: str, name: str, x, y, precision: str = "float32"):
    """The library's own training loop for a zoo model, harmonized, data in place."""
    from mnistcnn.backends import get_backend

    cfg, b = train.TrainConfig(), get_backend(backend)
    b.start_run(None)  # as train.run: deterministic algorithms, threads left as they are
    spec = cfg.trained_spec(zoo.get(name), backend)
    trainer = b.Trainer(spec, cfg.optimizer_for(backend), 0, W.initial(spec, 0), precision=precision)
    trainer.set_data(x, y)
    return spec, trainer


def epoch_speed(trainer, n: int, bs: int):
    order = np.arange(n)

    def run():
        t = time.perf_counter()
        trainer.train_epoch(order, bs, 1e-3, 0)
        return n / (time.perf_counter() - t)
    return run


def images(n):
    ds = data.load("mnist")
    return data.normalize(ds.x_train[:n]), ds.y_train[:n].astype(np.int64)


def allocator_effect(framework: str, steps: int, reps: int) -> dict:
    """Tuned allocator against glibc's defaults: the setting is per process, so each
    measurement is a child process (tuned, default, tuned, default, ...)."""
    def child(tune: bool):
        def run():
            out = subprocess.run([sys.executable, __file__, "--probe", framework, "--steps", str(steps)]
                                 + ([] if tune else ["--no-tune"]), capture_output=True, text=True, check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])
        return run

    tuned, default = child(True), child(False)
    got = {"tuned": [], "default": []}
    for _ in range(reps):
        got["tuned"].append(tuned())
        got["default"].append(default())
    speeds = {k: [g["images_per_s"] for g in v] for k, v in got.items()}
    return {"what": "seed000-cnn/b128/allocator_tuned_vs_glibc_default",
            "a_images_per_s": speeds["tuned"], "b_images_per_s": speeds["default"],
            "note": "page faults per step: tuned {:,.0f}, default {:,.0f}".format(
                statistics.median(g["page_faults_per_step"] for g in got["tuned"]),
                statistics.median(g["page_faults_per_step"] for g in got["default"]))
            } | ratio(speeds["tuned"], speeds["default"])


def probe(framework: str, steps: int, tune: bool) -> dict:
    """One child measurement for allocator_effect: mnistcnn's seed000-cnn loop, batch 128."""
    if tune:
        runtime.tune_allocator()
    bs = 128
    x, y = images(steps * bs)
    _, trainer = mnistcnn_trainer(framework, "seed000-cnn", x, y)
    run = epoch_speed(trainer, steps * bs, bs)
    run()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    speed = run()
    return {"images_per_s": speed,
            "page_faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps}


# -- torch ----------------------------------------------------------------------------
def torch_suite(steps: int, reps: int) -> dict:
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.set_num_threads(os.cpu_count())
    n_max = steps * max(BATCHES)
    ds = data.load("mnist")
    raw, y = ds.x_train[:n_max], ds.y_train[:n_max].astype(np.int64)
    x = data.normalize(raw)
    out = {"framework": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
           "allocator": runtime.tune_allocator()}
    a, b = torch.randn(SGEMM_N, SGEMM_N), torch.randn(SGEMM_N, SGEMM_N)
    a16, b16 = a.bfloat16(), b.bfloat16()

    def sgemm():
        return {"float32": 2 * SGEMM_N ** 3 / timed(lambda: a @ b, 3)}

    def both_gemms():
        return sgemm() | {"bfloat16": 2 * SGEMM_N ** 3 / timed(lambda: a16 @ b16, 3)}

    def hand_model(name, channels_last=True, inplace=False):
        """Written out as a user would, from the reports' descriptions."""
        if name == "seed000-cnn":
            m = nn.Sequential(
                nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(inplace), nn.MaxPool2d(2),
                nn.Conv2d(32, 16, 5, padding=2), nn.ReLU(inplace), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(inplace), nn.Linear(1024, 10))
        else:
            m = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(3136, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(0.5),
                nn.Linear(512, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10))
        return m.to(memory_format=torch.channels_last) if channels_last else m

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    xcl = xt.contiguous(memory_format=torch.channels_last)

    def hand_loop(model, n, bs, inputs=xcl, fused=True, shuffle=True, autocast=False):
        """The pytorch/examples way, with what measured faster (channels_last, fused Adam)
        unless told otherwise: tensors in memory, a plain loop."""
        opt = torch.optim.Adam(model.parameters(), 1e-3, fused=fused)

        def run():
            model.train()
            t = time.perf_counter()
            perm = torch.randperm(n) if shuffle else torch.arange(n)
            for i in range(0, n, bs):
                idx = perm[i:i + bs]
                opt.zero_grad()
                with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                    logits = model(inputs[idx]).float()
                F.cross_entropy(logits, yt[idx]).backward()
                opt.step()
            return n / (time.perf_counter() - t)
        return run

    def dataloader_loop(model, n, bs):
        class PerSample(torch.utils.data.Dataset):  # what the reports did: torchvision-style
            def __len__(self):  # per-sample ToTensor() + Normalize((0.1307,), (0.3081,))
                return n

            def __getitem__(self, i):
                img = torch.from_numpy(raw[i]).float().div(255).unsqueeze(0)
                return (img - 0.1307) / 0.3081, int(y[i])

        loader = torch.utils.data.DataLoader(PerSample(), batch_size=bs, shuffle=True)
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def run():
            model.train()
            t = time.perf_counter()
            for xb, yb in loader:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
            return n / (time.perf_counter() - t)
        return run

    cases = []
    for name in MODELS:
        spec, trainer = mnistcnn_trainer("torch", name, x, y)
        hand, plain = hand_model(name), hand_model(name, channels_last=False)
        for bs in BATCHES:
            n = steps * bs
            cases.append(case(name, bs, spec, {"ours": epoch_speed(trainer, n, bs),
                                               "handwritten": hand_loop(hand, n, bs),
                                               "dataloader": dataloader_loop(plain, n, bs)}, reps, sgemm))
    # what was tried, on seed000-cnn at batch 128
    name, bs, n = "seed000-cnn", 128, steps * 128
    spec, trainer = mnistcnn_trainer("torch", name, x, y)
    _, trainer_bf16 = mnistcnn_trainer("torch", name, x, y, "bfloat16")
    cases.append(case(name, bs, spec, {"ours": epoch_speed(trainer_bf16, n, bs),
                                       "handwritten": hand_loop(hand_model(name), n, bs, autocast=True)},
                      reps, both_gemms, "bfloat16"))
    out["cases"] = cases
    key = f"{name}/b{bs}/"

    def fill(on: bool, run):
        def f():
            torch.utils.deterministic.fill_uninitialized_memory = on
            try:
                return run()
            finally:
                torch.utils.deterministic.fill_uninitialized_memory = False
        return f

    def threads(k: int, run):
        def f():
            torch.set_num_threads(k)
            try:
                return run()
            finally:
                torch.set_num_threads(os.cpu_count())
        return f

    compiled = hand_model(name)
    t = time.perf_counter()
    compiled_loop = hand_loop(torch.compile(compiled), n, bs)
    compiled_loop()
    compile_s = time.perf_counter() - t
    out["explore"] = [
        explore(key + "channels_last_vs_contiguous", hand_loop(hand_model(name), n, bs, xcl),
                hand_loop(hand_model(name, channels_last=False), n, bs, xt), reps,
                "hand-written loop; adopted in the torch Trainer"),
        explore(key + "fused_adam_vs_foreach_adam", hand_loop(hand_model(name), n, bs),
                hand_loop(hand_model(name), n, bs, fused=False), reps,
                "hand-written loop; fused Adam and SGD adopted in the torch Trainer"),
        explore(key + "no_nan_fill_vs_nan_fill", fill(False, epoch_speed(trainer, n, bs)),
                fill(True, epoch_speed(trainer, n, bs)), reps,
                "mnistcnn Trainer under use_deterministic_algorithms; fill turned off by start_run"),
        explore(key + "inplace_relu_vs_not", hand_loop(hand_model(name, inplace=True), n, bs),
                hand_loop(hand_model(name), n, bs), reps,
                "hand-written loop; adopted for the activation of a Conv2D or Dense in the torch backend"),
        explore(key + "torch_compile_vs_eager", compiled_loop, hand_loop(hand_model(name), n, bs), reps,
                f"hand-written loop; compiling took {compile_s:.0f} s; not adopted"),
        explore(key + "1_thread_vs_2_threads", threads(1, hand_loop(hand_model(name), n, bs)),
                threads(2, hand_loop(hand_model(name), n, bs)), reps, "hand-written loop"),
        explore(key + "bfloat16_vs_float32", epoch_speed(trainer_bf16, n, bs), epoch_speed(trainer, n, bs),
                reps, "mnistcnn Trainer, precision='bfloat16' (autocast) vs 'float32'; opt-in"),
        allocator_effect("torch", steps, reps),
    ]
    out["kernels"] = torch_kernels(spec, bs, sgemm)
    out["profile"] = torch_profile(trainer, n, bs)
    return out


def torch_kernels(spec, bs: int, sgemm) -> list:
    """Each conv and dense layer of the spec alone, forward and backward at batch ``bs``,
    in the Trainer's layout: the rate the framework's kernels reach by themselves."""
    import torch

    from mnistcnn.backends.torch import BACKEND

    build = BACKEND.build

    model = build(spec).to(memory_format=torch.channels_last)
    rows, x = [], torch.randn(bs, *spec.input_shape).contiguous(memory_format=torch.channels_last)
    first = True
    for row, layer in zip(spec.rows, model):
        if row.macs:
            inp = x.detach().requires_grad_(not first)
            params = list(layer.parameters())
            with torch.no_grad():
                fwd = timed(lambda: layer(inp))
            out = layer(inp)
            g = torch.randn_like(out)
            wrt = params + ([inp] if not first else [])
            both = timed(lambda: torch.autograd.grad(layer(inp), wrt, g))
            rows.append(_kernel_row(row, bs, fwd, both - fwd, not first, sgemm()["float32"]))
            first = False
        with torch.no_grad():
            x = layer(x)
    return rows


def _kernel_row(row, bs, fwd, bwd, input_grad, rate) -> dict:
    fwd_flops = 2.0 * row.macs * bs
    bwd_flops = fwd_flops * (2 if input_grad else 1)
    return {"layer": row.name, "fwd_s": fwd, "bwd_s": bwd, "fwd_flops": fwd_flops, "bwd_flops": bwd_flops,
            "sgemm_flops": rate}


def torch_profile(trainer, n: int, bs: int, top: int = 10) -> list:
    """Where a training epoch's time goes: torch.profiler's operators by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    run = epoch_speed(trainer, n, bs)
    run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "calls": e.count, "share": e.self_cpu_time_total / total} for e in events[:top]]


def keras_profile(trainer, n: int, bs: int, top: int = 10) -> list:
    """As torch_profile, with TensorFlow's profiler: its framework op statistics (the
    TensorBoard profile tool's table, read with TensorFlow's own converter), self time on
    the host summed per op type; IDLE is time the step's threads waited."""
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    run = epoch_speed(trainer, n, bs)
    run()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        run()
        tf.profiler.experimental.stop()
        paths = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        table, _ = _pywrap_profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    table = json.loads(table)[0]
    cols = [c["id"] for c in table["cols"]]
    by_type: dict = {}
    for row in table["rows"]:
        r = dict(zip(cols, (c["v"] for c in row["c"])))
        if r["host_or_device"] == "Host":
            t = by_type.setdefault(r["type"], [0, 0.0])
            t[0] += int(r["occurrences"])
            t[1] += r["total_self_time"]
    total = sum(t for _, t in by_type.values())
    ranked = sorted(by_type.items(), key=lambda kv: kv[1][1], reverse=True)
    return [{"op": op, "calls": calls, "share": t / total} for op, (calls, t) in ranked[:top]]


def profile_here(framework: str, steps: int) -> dict:
    """On this machine, in one process: mnistcnn's training step (seed000-cnn, batch 128,
    harmonized), its kernels alone (the ceiling), and the profiler's account of the step."""
    name, bs, n = "seed000-cnn", 128, steps * 128
    x, y = images(n)
    if framework == "keras":
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf

        a, b = tf.random.normal((SGEMM_N, SGEMM_N)), tf.random.normal((SGEMM_N, SGEMM_N))
        sgemm = lambda: {"float32": 2 * SGEMM_N ** 3 / timed(lambda: (a @ b).numpy(), 3)}  # noqa: E731
    else:
        import torch

        a, b = torch.randn(SGEMM_N, SGEMM_N), torch.randn(SGEMM_N, SGEMM_N)
        sgemm = lambda: {"float32": 2 * SGEMM_N ** 3 / timed(lambda: a @ b, 3)}  # noqa: E731
    spec, trainer = mnistcnn_trainer(framework, name, x, y)
    run = epoch_speed(trainer, n, bs)
    run()
    speeds = [run() for _ in range(3)]
    kernels = (keras_kernels if framework == "keras" else torch_kernels)(spec, bs, sgemm)
    prof = (keras_profile if framework == "keras" else torch_profile)(trainer, n, bs)
    step_s = bs / statistics.median(speeds)
    kernel_s = sum(k["fwd_s"] + k["bwd_s"] for k in kernels)
    return {"framework": framework, "mode": "profile", "model": name, "batch": bs, "steps": steps,
            "images_per_s": speeds,
            "step_s": step_s, "kernels_s": kernel_s, "of_ceiling": kernel_s / step_s, "kernels": kernels,
            "profile": prof}


# -- keras ----------------------------------------------------------------------------
def keras_hand_model(keras, name: str, jit_compile="auto"):
    """The plain Keras script's model: a Sequential as keras.io writes it, compiled with
    Adam and the logits loss (the same in Keras on TensorFlow and on JAX)."""
    L = keras.layers
    if name == "seed000-cnn":
        layers = [L.Conv2D(32, 5, padding="same", activation="relu"), L.MaxPooling2D(2),
                  L.Conv2D(16, 5, padding="same", activation="relu"), L.MaxPooling2D(2),
                  L.Flatten(), L.Dense(1024, activation="relu"), L.Dense(10)]
    else:
        def conv(f):
            return [L.Conv2D(f, 3, padding="same"), L.BatchNormalization(), L.ReLU()]

        def dense(u):
            return [L.Dense(u), L.BatchNormalization(), L.ReLU(), L.Dropout(0.5)]
        layers = [*conv(32), *conv(64), L.MaxPooling2D(2), *conv(64), L.MaxPooling2D(2),
                  L.Flatten(), *dense(512), *dense(256), L.Dense(10)]
    model = keras.Sequential([keras.Input((28, 28, 1)), *layers])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def keras_fit(model, xl, y, n: int, bs: int):
    """Plain Keras: fit on numpy arrays, one epoch of n images; returns images/s."""
    def run():
        t = time.perf_counter()
        model.fit(xl[:n], y[:n], batch_size=bs, epochs=1, shuffle=True, verbose=0)
        return n / (time.perf_counter() - t)
    return run


def keras_suite(steps: int, reps: int) -> dict:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    from mnistcnn.backends._keras3 import TorchBatchNormalization, floatx

    n_max = steps * max(BATCHES)
    x, y = images(n_max)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out = {"framework": "keras", "version": f"keras {keras.__version__}, tensorflow {tf.__version__}",
           "threads": "TensorFlow default (0 = all cores)", "allocator": runtime.tune_allocator()}
    a, b = tf.random.normal((SGEMM_N, SGEMM_N)), tf.random.normal((SGEMM_N, SGEMM_N))
    a16, b16 = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)

    def sgemm():
        return {"float32": 2 * SGEMM_N ** 3 / timed(lambda: (a @ b).numpy(), 3)}

    def both_gemms():
        return sgemm() | {"bfloat16": 2 * SGEMM_N ** 3 / timed(lambda: (a16 @ b16).numpy(), 3)}

    hand_model = lambda name, jit_compile="auto": keras_hand_model(keras, name, jit_compile)  # noqa: E731
    fit = lambda model, n, bs: keras_fit(model, xl, y, n, bs)  # noqa: E731

    # XLA first: mnistcnn's start_run turns on TensorFlow's op determinism for the whole
    # process, and XLA has no deterministic MaxPool gradient
    name, bs, n = "seed000-cnn", 128, steps * 128
    xla = explore(f"{name}/b{bs}/xla_fit_vs_fit", fit(hand_model(name, True), n, bs),
                  fit(hand_model(name, False), n, bs), reps,
                  "plain fit, before op determinism is on; not adopted")
    cases = []
    for name in MODELS:
        spec, trainer = mnistcnn_trainer("keras", name, x, y)
        hand = hand_model(name)
        for bs in BATCHES:
            n = steps * bs
            cases.append(case(name, bs, spec, {"ours": epoch_speed(trainer, n, bs), "fit": fit(hand, n, bs)},
                              reps, sgemm))
    name, bs, n = "seed000-cnn", 128, steps * 128
    spec, trainer = mnistcnn_trainer("keras", name, x, y)
    _, trainer_bf16 = mnistcnn_trainer("keras", name, x, y, "bfloat16")
    with floatx("mixed_bfloat16"):
        hand_bf16 = hand_model(name)
    cases.append(case(name, bs, spec, {"ours": epoch_speed(trainer_bf16, n, bs), "fit": fit(hand_bf16, n, bs)},
                      reps, both_gemms, "bfloat16"))
    out["cases"] = cases

    _, fused_bn = mnistcnn_trainer("keras", "complex-cnn", x, y)
    fused_run = epoch_speed(fused_bn, n, bs)
    fused_run()  # traced with the fused kernel
    _, formula_bn = mnistcnn_trainer("keras", "complex-cnn", x, y)
    for layer in formula_bn.model.layers:
        if isinstance(layer, TorchBatchNormalization):
            layer.fused_training = False  # the layer's own switch, before the step is traced
    formula_run = epoch_speed(formula_bn, n, bs)
    formula_run()  # traced with separate ops
    out["explore"] = [
        xla,
        explore(f"complex-cnn/b{bs}/fused_bn_vs_separate_ops_bn", fused_run, formula_run, reps,
                "mnistcnn Trainer, harmonized BatchNorm (PyTorch's rules) through TensorFlow's fused kernel "
                "vs the same definition as separate ops; adopted"),
        explore(f"{name}/b{bs}/bfloat16_vs_float32", epoch_speed(trainer_bf16, n, bs),
                epoch_speed(trainer, n, bs), reps,
                "mnistcnn Trainer, precision='bfloat16' (mixed_bfloat16 policy) vs 'float32'; opt-in"),
        allocator_effect("keras", steps, reps),
    ]
    out["kernels"] = keras_kernels(spec, bs, sgemm)
    return out


def jax_suite(steps: int, reps: int) -> dict:
    """Keras on JAX: mnistcnn's jitted step against a plain Keras-on-JAX fit script (which
    jit-compiles its own step), with the fp32 matmul rate of jax.numpy."""
    from mnistcnn.backends import get_backend

    get_backend("jax")  # KERAS_BACKEND=jax before Keras loads
    import jax
    import jax.numpy as jnp
    import keras

    n_max = steps * max(BATCHES)
    x, y = images(n_max)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out = {"framework": "jax", "version": f"keras {keras.__version__}, jax {jax.__version__}",
           "threads": "XLA default (all cores)", "allocator": runtime.tune_allocator()}
    a = jax.random.normal(jax.random.key(0), (SGEMM_N, SGEMM_N), jnp.float32)
    matmul = jax.jit(jnp.matmul)

    def sgemm():
        return {"float32": 2 * SGEMM_N ** 3 / timed(lambda: matmul(a, a).block_until_ready(), 3)}

    cases = []
    for name in MODELS:
        spec, trainer = mnistcnn_trainer("jax", name, x, y)
        hand = keras_hand_model(keras, name)
        for bs in BATCHES:
            n = steps * bs
            cases.append(case(name, bs, spec, {"ours": epoch_speed(trainer, n, bs),
                                               "fit": keras_fit(hand, xl, y, n, bs)}, reps, sgemm))
    out["cases"] = cases
    out["explore"] = []
    spec, _ = mnistcnn_trainer("jax", "seed000-cnn", x, y)
    out["kernels"] = jax_kernels(spec, 128, sgemm)
    return out


def jax_kernels(spec, bs: int, sgemm) -> list:
    """As torch_kernels, for the Keras layers under jax.jit (a linear copy of each conv
    and dense layer, as keras_kernels)."""
    import jax

    from mnistcnn.backends.jax import BACKEND

    build, _group = BACKEND.build, BACKEND.row_layers

    model = build(spec)
    c, h, w = spec.input_shape
    rows, x, first = [], np.random.default_rng(0).standard_normal((bs, h, w, c)).astype(np.float32), True
    for row in spec.rows:
        group = _group(model, row)
        if row.macs:
            layer = type(group[0]).from_config(group[0].get_config() | {"activation": "linear"})
            layer.build(x.shape)
            weights, input_grad = [v.value for v in layer.trainable_variables], not first

            def apply(weights, inp, layer=layer):
                return layer.stateless_call(weights, [], inp)[0]
            upstream = np.ones(layer.compute_output_shape(x.shape), np.float32)
            fwd_fn = jax.jit(apply)
            bwd_fn = jax.jit(lambda weights, inp, apply=apply, upstream=upstream, input_grad=input_grad:
                             jax.vjp(apply, weights, inp)[1](upstream)[:2 if input_grad else 1])
            fwd = timed(lambda: fwd_fn(weights, x).block_until_ready())
            both = timed(lambda: jax.block_until_ready(bwd_fn(weights, x)))  # vjp runs the forward too
            rows.append(_kernel_row(row, bs, fwd, both - fwd, input_grad, sgemm()["float32"]))
            first = False
        for layer in group:
            x = np.asarray(layer(x))
    return rows


def keras_kernels(spec, bs: int, sgemm) -> list:
    """As torch_kernels, for the Keras model's layers inside tf.function."""
    import tensorflow as tf

    from mnistcnn.backends.keras import BACKEND

    build, _group = BACKEND.build, BACKEND.row_layers

    model = build(spec)
    c, h, w = spec.input_shape
    rows, x, first = [], tf.random.normal((bs, h, w, c)), True
    for row in spec.rows:
        group = _group(model, row)
        if row.macs:
            # the Conv2D or Dense alone: mnistcnn builds it with its activation inside,
            # which the torch side times separately, so time a linear copy of it
            layer = type(group[0]).from_config(group[0].get_config() | {"activation": "linear"})
            layer.build(x.shape)
            inp, input_grad = tf.Variable(x), not first
            upstream = tf.random.normal(layer.compute_output_shape(x.shape))
            fwd_fn = tf.function(lambda: layer(inp))

            @tf.function
            def bwd_fn():  # a linear layer's gradients do not need its output: TensorFlow
                with tf.GradientTape() as tape:  # prunes the forward, leaving the backward kernels
                    out = layer(inp)
                return tape.gradient(out, layer.trainable_variables + ([inp] if input_grad else []),
                                     output_gradients=upstream)
            fwd = timed(lambda: fwd_fn().numpy())
            bwd = timed(lambda: [g.numpy() for g in bwd_fn()])
            rows.append(_kernel_row(row, bs, fwd, bwd, input_grad, sgemm()["float32"]))
            first = False
        for layer in group:
            x = layer(x)
    return rows


def time_to_accuracy(backend: str, precision: str = "float32", target: float = 0.99,
                     max_epochs: int = 8) -> dict:
    """Epochs and training seconds for seed000-cnn to first reach ``target`` test accuracy
    (mnistcnn's protocol: Adam 1e-3, batch 128, harmonized, seed 0)."""
    from mnistcnn.backends import get_backend

    cfg = train.TrainConfig(val_size=0, precision=precision)
    spec = cfg.trained_spec(zoo.get("seed000-cnn"), backend)
    trainer = get_backend(backend).Trainer(spec, cfg.optimizer_for(backend), 0, W.initial(spec, 0),
                                           precision=precision)
    (xt, yt), _, (xs, ys) = train.prepare_data(cfg)
    trainer.set_data(xt, yt)
    seconds, curve = 0.0, []
    result = {"backend": backend, "precision": precision, "reached": False}
    for epoch in range(max_epochs):
        t = time.perf_counter()
        trainer.train_epoch(train.epoch_order(0, epoch, len(xt)), cfg.batch_size, cfg.lr, epoch)
        seconds += time.perf_counter() - t
        acc = trainer.evaluate(xs, ys)[1]
        curve.append({"epoch": epoch + 1, "test_acc": acc, "train_seconds": seconds})
        if acc >= target:
            result["reached"] = True
            break
    return result | {"epochs": len(curve), "train_seconds": seconds, "curve": curve}


# -- report ---------------------------------------------------------------------------
def _ci(ratios) -> str:
    """95% t-interval of the geometric mean ratio (scipy), over the rounds."""
    from scipy import stats

    if len(ratios) < 2:
        return "n/a"
    logs = np.log(ratios)
    half = stats.t.ppf(0.975, len(logs) - 1) * stats.sem(logs)
    return f"{np.exp(logs.mean() - half):.2f}-{np.exp(logs.mean() + half):.2f}"


def _pct(values) -> str:
    return f"{statistics.median(values):.0%} ({min(values):.0%}-{max(values):.0%})"


def markdown(runs: list[dict], command: str) -> str:
    suites = [r for r in runs if r.get("mode") != "profile"]
    reps = "/".join(sorted({str(len(r["cases"][0]["efficiency"]["float32"])) for r in suites}))
    lines = ["# Performance", "", f"Command: `{command}`  "]
    for r in suites:
        cpu, ext = r["cpu"], r["cpu"]["vector_extensions"]
        lines.append(f"The {r['framework']} run (`{r.get('command', 'make bench')}`): {cpu['name']}, {cpu['cores']} cores, "
                     "vector extensions "
                     + ("not recorded" if ext is None else ", ".join(ext) or "none of " + ", ".join(runtime.VECTOR_EXTENSIONS))
                     + ".  ")
    lines.append(f"Python {platform.python_version()}.  ")
    lines += [f"{r['framework']}: {r['version']}, threads {r['threads']}, allocator: {r['allocator']}.  " for r in suites]
    lines += ["", "This machine's speed drifts by up to 2x, so the loops compared ran in rounds (A B C, "
              f"A B C, ... {reps} rounds) in one process per framework; a ratio is the median of the "
              "per-round ratios; the 95% CI is a t-interval of their geometric mean (an interval that holds 1.00 "
              "is a tie at this machine's noise). Ratios above 1 mean the first named is faster.", "",
              "## mnistcnn against hand-written native loops", "",
              "| framework | model | batch, precision | compared with | median ratio | 95% CI | per-round ratios |",
              "|---|---|---:|---|---:|---|---|"]
    for r in suites:
        for c in r["cases"]:
            for other, p in c["vs"].items():
                lines.append(f"| {r['framework']} | {c['model']} | {c['batch']} {c['precision']} | {other} | {p['median_ratio']:.3f} | "
                             f"{_ci(p['ratios'])} | "
                             + ", ".join(f"{v:.2f}" for v in p["ratios"]) + " |")
    lines += ["", "handwritten: the pytorch/examples loop over tensors in memory, in channels_last with fused "
              "Adam (the two changes that measured faster, so the bar is the best plain loop); dataloader: "
              "per-sample Dataset with torchvision-style transforms, as the reports did; fit: `model.fit` on "
              "numpy arrays. bfloat16 rows: both loops in bfloat16 mixed precision (autocast in PyTorch, the "
              "mixed_bfloat16 policy in Keras).", "",
              "## Efficiency: training FLOPs per second against the matrix-multiply rate", "",
              f"Training FLOPs per image from the spec (forward 2·MACs, backward twice that, less the first "
              f"layer's input gradient), times mnistcnn's images/s, divided by the {SGEMM_N}x{SGEMM_N} "
              "matmul rate measured at the start of the same round; median (range) over the rounds. The "
              "bfloat16 rows are divided by the fp32 rate (the issue's yardstick) and by the bfloat16 "
              "matmul rate (what that precision could reach).", "",
              "| framework | model | batch | precision | images/s | GFLOP/image | fp32 matmul GFLOP/s "
              "| efficiency vs fp32 matmul | bf16 matmul GFLOP/s | efficiency vs bf16 matmul |",
              "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in suites:
        ext = r["cpu"]["vector_extensions"]
        units = ext is None or BF16_UNITS & set(ext)  # not recorded: shown as measured
        for c in r["cases"]:
            bf = c["matmul_flops"].get("bfloat16")
            if bf and not units:  # an emulated bfloat16 matmul rate is not a yardstick
                lines.append(f"| {r['framework']} | {c['model']} | {c['batch']} | {c['precision']} | "
                             f"{statistics.median(c['images_per_s']['ours']):,.0f} | {c['train_flops_per_image'] / 1e9:.4f} | "
                             f"{statistics.median(c['matmul_flops']['float32']) / 1e9:.0f} | {_pct(c['efficiency']['float32'])} | "
                             "not measurable: no bfloat16 units (emulated) | not measurable |")
                continue
            lines.append(f"| {r['framework']} | {c['model']} | {c['batch']} | {c['precision']} | "
                         f"{statistics.median(c['images_per_s']['ours']):,.0f} | {c['train_flops_per_image'] / 1e9:.4f} | "
                         f"{statistics.median(c['matmul_flops']['float32']) / 1e9:.0f} | {_pct(c['efficiency']['float32'])} | "
                         + (f"{statistics.median(bf) / 1e9:.0f} | {_pct(c['efficiency']['bfloat16'])} |" if bf else " | |"))
    lines += ["", "## The kernels alone (seed000-cnn, batch 128)", "",
              "Each conv and dense layer run by itself, forward and backward (weight gradients, plus the input "
              "gradient after the first layer), timed as the median of 20 calls, against the matmul rate measured "
              "right after. The last row is the ceiling: the efficiency a training step would reach if "
              "everything but these kernels (activations, pooling, loss, optimizer, Python) took no time.", "",
              "| framework | layer | forward ms | forward efficiency | backward ms | backward efficiency |",
              "|---|---|---:|---:|---:|---:|"]
    for r in suites:
        ks = r.get("kernels", [])
        for k in ks:
            lines.append(f"| {r['framework']} | {k['layer']} | {k['fwd_s'] * 1e3:.2f} | "
                         f"{k['fwd_flops'] / k['fwd_s'] / k['sgemm_flops']:.0%} | {k['bwd_s'] * 1e3:.2f} | "
                         f"{k['bwd_flops'] / k['bwd_s'] / k['sgemm_flops']:.0%} |")
        if ks:
            flops = sum(k["fwd_flops"] + k["bwd_flops"] for k in ks)
            seconds = sum(k["fwd_s"] + k["bwd_s"] for k in ks)
            rate = statistics.median(k["sgemm_flops"] for k in ks)
            lines.append(f"| {r['framework']} | **all kernels, forward + backward (ceiling)** | | | "
                         f"{seconds * 1e3:.2f} in all | **{flops / seconds / rate:.0%}** |")
    here = [r for r in runs if r.get("mode") == "profile"]
    if here:
        cpu = here[0]["cpu"]
        lines += ["", f"## Where a training step goes, and how close it is to the kernels ({cpu['name']})", "",
                  "One process per framework, one sitting (`" + "`, `".join(r["command"] for r in here) + "`): "
                  "mnistcnn's step (seed000-cnn, batch 128, harmonized) timed (the median of 3 passes of "
                  f"{here[0]['steps']} steps), its conv and dense "
                  "kernels timed alone (forward + backward: the ceiling, what the step would take if nothing "
                  "else cost time), and the profiler's account of the step (torch.profiler; TensorFlow's "
                  "profiler for Keras), self time per operator type.", "",
                  "| framework | step ms | kernels alone ms | step at % of the ceiling | where the step's time goes "
                  "(self time, top operators) |", "|---|---:|---:|---:|---|"]
        for r in here:
            ops = ", ".join(f"{p['op']} {p['share']:.0%}" for p in r["profile"][:8])
            lines.append(f"| {r['framework']} | {r['step_s'] * 1e3:.1f} | {r['kernels_s'] * 1e3:.1f} | "
                         f"{r['of_ceiling']:.0%} | {ops} |")
    prof = [r for r in suites if r.get("profile")]
    for r in prof:
        lines += ["", f"## Where a {r['framework']} training step goes (seed000-cnn, batch 128, mnistcnn's loop)", "",
                  "torch.profiler, operators by self CPU time:", "", "| operator | calls | share |", "|---|---:|---:|"]
        lines += [f"| {p['op']} | {p['calls']} | {p['share']:.1%} |" for p in r["profile"]]
    lines += ["", "## Explored", "", "| framework | what (first vs second) | median ratio | per-round | note |",
              "|---|---|---:|---|---|"]
    for r in suites:
        for e in r["explore"]:
            lines.append(f"| {r['framework']} | {e['what']} | {e['median_ratio']:.3f} | "
                         + ", ".join(f"{v:.2f}" for v in e["ratios"]) + f" | {e['note']} |")
    tta = [t for r in suites for t in r.get("time_to_accuracy", [])]
    if tta:
        lines += ["", "## Time to 99.0% test accuracy (seed000-cnn, Adam 1e-3, batch 128, harmonized, seed 0)", "",
                  "| backend | precision | reached | epochs | training seconds | test accuracy per epoch |",
                  "|---|---|---|---:|---:|---|"]
        for t in tta:
            lines.append(f"| {t['backend']} | {t['precision']} | {'yes' if t['reached'] else 'no'} | {t['epochs']} | "
                         f"{t['train_seconds']:.0f} | " + ", ".join(f"{c['test_acc'] * 100:.2f}" for c in t["curve"]) + " |")
    notes = Path(__file__).with_name("notes.md")
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--framework", choices=("torch", "keras", "jax"))
    p.add_argument("--out")
    p.add_argument("--steps", type=int, default=40, help="training steps per measurement")
    p.add_argument("--reps", type=int, default=5, help="rounds per comparison")
    p.add_argument("--time-to-accuracy", action="store_true")
    p.add_argument("--profile", action="store_true",
                   help="only the step, its kernels and the profiler's account of it, on this machine")
    p.add_argument("--report", nargs="*", help="JSON files to turn into Markdown")
    p.add_argument("--md", help="where the Markdown goes")
    p.add_argument("--probe", choices=("torch", "keras"), help=argparse.SUPPRESS)  # allocator_effect's child
    p.add_argument("--no-tune", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe, args.steps, not args.no_tune)))
        return 0
    if args.report:
        runs = [json.loads(Path(f).read_text()) for f in args.report]
        atomic_write_text(args.md, markdown(runs, runs[0].get("command", "make bench")))
        return 0
    if args.profile:
        result = profile_here(args.framework, args.steps)
    else:
        result = {"torch": torch_suite, "keras": keras_suite, "jax": jax_suite}[args.framework](args.steps, args.reps)
    if args.time_to_accuracy:
        result["time_to_accuracy"] = [time_to_accuracy(args.framework, p) for p in ("float32", "bfloat16")]
    result["command"] = "python benchmarks/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result["cpu"] = cpu_facts()
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

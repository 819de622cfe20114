"""One training protocol for every backend: the loop over epochs, the sampler, metrics,
progress, per-epoch checkpoints and resume.

Same data, same normalisation and the same batches (one numpy sampler) in every backend;
what the defaults mode changes (initial weights, BatchNorm settings and rules, optimizer
values and formulas) is decided in mnistcnn.config, the framework's side of each step is
the backend's Trainer, and the result is plain data (mnistcnn.results).
"""
from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import runtime
from . import spec as S
from . import weights as W
from ._io import atomic_write_text, dir_lock
from .config import (  # noqa: F401  (TrainConfig and the constants: the public training API)
    DEFAULT_ITEMS,
    DEFAULTS_MODES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    Optimizer,
    TrainConfig,
)
from .errors import CheckpointError, ConfigError, TrainingDiverged
from .results import EpochRecord, RunResult  # noqa: F401
from .spec.memory import check_memory


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled index order of one epoch: a function of (seed, epoch) alone, so both
    backends (and a resumed run) see exactly the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def prepare_data(cfg: TrainConfig, data_dir=None):
    """(x_train, y_train), (x_val, y_val), (x_test, y_test) as float32 (N, 1, 28, 28)."""
    from . import data

    ds = data.load(cfg.dataset, data_dir)
    x = data.normalize(ds.x_train, cfg.normalization, cfg.dataset)
    (xt, yt), (xv, yv) = data.split(x, ds.y_train, cfg.val_size)
    if cfg.train_limit:
        xt, yt = xt[:cfg.train_limit], yt[:cfg.train_limit]
    xs, ys = ds.x_test[:cfg.test_limit], ds.y_test[:cfg.test_limit]
    return (xt, yt), (xv, yv), (data.normalize(xs, cfg.normalization, cfg.dataset), ys)


def _confusion(y, preds, classes=10) -> list:
    m = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(m, (y.astype(np.int64), preds.astype(np.int64)), 1)
    return m.tolist()


def run(spec, backend: str, cfg: TrainConfig, out=None, data_dir=None, progress=True,
        resume: bool = False, stop_after: int | None = None, overwrite: bool = False,
        callbacks=(), tensorboard: bool | None = None, tune_allocator: bool = False) -> RunResult:
    """Train ``spec`` in ``backend`` under ``cfg``; with ``out``, write result.json,
    epochs.csv and a checkpoint (neutral + native) after every epoch. ``resume``
    continues from the checkpoint in ``out``; a run already in ``out`` is otherwise
    refused unless ``overwrite``. ``stop_after`` ends after that many epochs in total
    without testing (to simulate an interruption). A non-finite training loss stops the
    run (TrainingDiverged) and keeps the last good checkpoint.

    ``callbacks``: mnistcnn.callbacks.Callback objects, called with the plain records.
    ``tensorboard``: event files in ``out``/tensorboard; None writes them when ``out`` is
    given and the tensorboard package is installed, True requires it, False never.
    ``tune_allocator``: make glibc's malloc keep large buffers (mnistcnn.runtime; its gain
    is measured in docs/performance.md): it changes the allocator of the whole calling process, so the
    processes mnistcnn starts (the command line, the runner's children) opt in and a
    script's own process only when it asks."""
    from . import zoo
    from .backends import get_backend

    if resume and overwrite:
        raise ConfigError("`resume=True` continues the run in `out` and `overwrite=True` replaces it: give one.")
    if out is not None and not str(out).strip():
        raise ConfigError("Invalid value for `out`. Expected a directory, or None to write nothing. Received out=''.")
    with dir_lock(out) if out is not None else nullcontext():  # one writer per run directory
        if out is not None and not resume and not overwrite and (Path(out) / "result.json").exists():
            saved = RunResult.read(Path(out) / "result.json")
            state = "a finished run" if saved.completed else f"an interrupted run ({len(saved.epochs)} epochs done)"
            raise ConfigError(f"{out} already holds {state}. Resume it with `resume=True`, replace it with "
                              "`overwrite=True`, or choose another `out`.")
        spec = zoo.resolve(spec)
        check_memory(spec, cfg.batch_size, training=True)  # refused before a framework tries to allocate it
        b = get_backend(backend)
        b.start_run(cfg.threads)
        if tune_allocator:
            runtime.tune_allocator()
        device, device_name = b.resolve_device(cfg.device)
        if device == "cpu":
            _warn_precision(cfg.precision)
        trained = cfg.trained_spec(spec, backend)
        opt = cfg.optimizer_for(backend)
        init_weights = W.initial(trained, cfg.seed, cfg.init) if cfg.harmonized("init") else None
        trainer = b.Trainer(trained, opt, cfg.seed, init_weights, bn_rules=cfg.bn_rules(),
                            precision=cfg.precision, device=device)
        (xt, yt), (xv, yv), (xs, ys) = prepare_data(cfg, data_dir)
        trainer.set_data(xt, yt)

        plain_config = json.loads(json.dumps(asdict(cfg)))  # as it reads back from result.json
        result = RunResult(backend, S.to_dict(trained), plain_config, opt,
                           trainable_params=trained.trainable_params, state_params=trained.state_params,
                           environment=runtime.environment(b) | {"device": device, "device_name": device_name})
        out = Path(out) if out else None
        if resume:
            result = _restore(out, trainer, result)
            if result.completed:
                return result
        callbacks = list(callbacks) + _tensorboard_callback(out, tensorboard)
        for c in callbacks:
            c.on_train_begin(result)
        for epoch in range(len(result.epochs), cfg.epochs):
            if stop_after is not None and epoch >= stop_after:
                return result
            result.epochs.append(_one_epoch(trainer, cfg, epoch, len(xt), (xv, yv), (xs, ys), progress,
                                            backend, result.steps))
            if out:
                _checkpoint(out, trainer, trained, result)
            for c in callbacks:
                c.on_epoch_end(result.epochs[-1], result)
        test_loss, test_acc, preds = trainer.evaluate(xs, ys)
        result.test_loss, result.test_acc = test_loss, test_acc
        result.confusion = _confusion(ys, preds)
        result.completed = True
        if out:
            _write_result(out, result)
        for c in callbacks:
            c.on_train_end(result)
        if progress:
            print(f"[{backend}] test loss {test_loss:.4f}  test accuracy {test_acc:.4f}", flush=True)
        return result


def _warn_precision(precision: str) -> None:
    """bfloat16 on a CPU without bfloat16 units is emulated: a warning with the reason
    before training (measured here: 212 img/s against 3,200 in float32 on an AMD EPYC
    without AVX512-BF16 or AMX, 15x slower)."""
    if precision != "bfloat16":
        return
    flags = runtime.cpu_flags()
    if flags and not flags & {"avx512_bf16", "amx_bf16"}:
        import warnings

        warnings.warn(f"--precision bfloat16 on {runtime.cpu_name()}, which has no bfloat16 units (no "
                      "avx512_bf16 or amx_bf16 in /proc/cpuinfo): the frameworks emulate it, about 15x slower than "
                      "float32 on such a CPU (measured: 212 vs 3,200 img/s for seed000-cnn). Use float32 here.",
                      RuntimeWarning, stacklevel=3)


def _tensorboard_callback(out, wanted: bool | None) -> list:
    from .callbacks import TENSORBOARD_DIR, TensorBoard, tensorboard_available

    if wanted is False or out is None or (wanted is None and not tensorboard_available()):
        return []
    return [TensorBoard(Path(out) / TENSORBOARD_DIR)]


def _one_epoch(trainer, cfg, epoch, n_train, val, test, progress, backend, steps) -> EpochRecord:
    from tqdm.auto import tqdm

    step = epoch * -(-n_train // cfg.batch_size)  # global step count before this epoch
    window = []

    def on_batch(n, loss):
        nonlocal step
        step += 1
        bar.update(n)
        window.append(loss)
        if len(window) == cfg.log_every:
            mean = sum(float(v) for v in window) / len(window)
            if not math.isfinite(mean):
                raise TrainingDiverged(
                    f"[{backend}] the training loss became {mean} in epoch {epoch + 1}, within steps "
                    f"{step - len(window) + 1}-{step} (learning rate {cfg.lr_at(epoch):g}). The "
                    "checkpoint of the last finished epoch is kept. Lower `lr`, or add BatchNorm or "
                    "gradient-friendlier inputs (`normalization='standard'`).")
            steps.append([step, mean])
            window.clear()

    order = epoch_order(cfg.seed, epoch, n_train)
    lr = cfg.lr_at(epoch)
    bar = tqdm(total=len(order), unit="img", desc=f"[{backend}] epoch {epoch + 1}/{cfg.epochs}",
               disable=True if not progress else None,  # None: no bar where stderr is not a terminal
               leave=False, mininterval=0.5)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        train_loss, train_acc = trainer.train_epoch(order, cfg.batch_size, lr,
                                                    rng_seed=cfg.seed * 100_003 + epoch,
                                                    on_batch=on_batch)
    finally:
        bar.close()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"[{backend}] the mean training loss of epoch {epoch + 1} is {train_loss} "
                               f"(learning rate {lr:g}). The checkpoint of the last finished epoch is "
                               "kept. Lower `lr`.")
    val_loss = val_acc = test_loss = test_acc = None
    if len(val[0]):
        val_loss, val_acc, _ = trainer.evaluate(*val)
    if cfg.test_every_epoch:
        test_loss, test_acc, _ = trainer.evaluate(*test)
    record = EpochRecord(epoch + 1, lr, train_loss, train_acc, val_loss, val_acc, seconds,
                         len(order) / seconds, test_loss, test_acc, cpu_seconds, runtime.load_average())
    if progress:
        val = f"  val loss {val_loss:.4f} acc {val_acc:.4f}" if val_loss is not None else ""
        val += f"  test loss {test_loss:.4f} acc {test_acc:.4f}" if test_loss is not None else ""
        print(f"[{backend}] epoch {epoch + 1}/{cfg.epochs}  lr {lr:g}  loss {train_loss:.4f} "
              f"acc {train_acc:.4f}{val}  {seconds:.1f}s  {record.images_per_s:,.0f} img/s",
              flush=True)
    return record


def _write_result(out: Path, result: RunResult) -> None:
    atomic_write_text(out / "epochs.csv", result.epochs_csv())
    atomic_write_text(out / "result.json", result.to_json() + "\n")


def _checkpoint(out: Path, trainer, trained, result: RunResult) -> None:
    """Neutral weights, native model + optimizer state, then the result that points at
    them: each file is atomic, and result.json (written last) names a complete set."""
    ckpt = out / "checkpoint"
    W.save(ckpt / "weights.npz", trained, trainer.get_weights(),
           {"epoch": len(result.epochs), "backend": result.backend, "seed": result.config["seed"],
            "dataset": result.config["dataset"], "normalization": result.config["normalization"]})
    trainer.save(ckpt)
    _write_result(out, result)


def differences(saved: RunResult, backend: str, spec: dict, config: dict, ignore=()) -> dict:
    """{what: (saved, now)} where a saved run differs from a run of ``backend`` with the
    (trained) ``spec`` and ``config`` as result.json records them; empty: the same run. A
    setting added since the run was saved counts as its default (device: auto), and the
    saved spec is read by today's parser (a layer field added since takes its default)."""
    defaults = json.loads(json.dumps(asdict(TrainConfig())))
    then = {**{k: defaults[k] for k in config.keys() - saved.config.keys() if k in defaults}, **saved.config}
    diff = {k: (then.get(k), v) for k, v in config.items() if k not in ignore and then.get(k) != v}
    if saved.backend != backend:
        diff["backend"] = (saved.backend, backend)
    old = S.to_dict(S.from_dict(saved.spec))
    if old != spec:
        changed = [i for i, (a, b) in enumerate(zip(old["layers"], spec["layers"])) if a != b]
        diff["spec"] = ((old["name"], spec["name"]) if old["name"] != spec["name"] else
                        (f"layer {changed[0]}: {old['layers'][changed[0]]}", f"{spec['layers'][changed[0]]}")
                        if changed else (f"{len(old['layers'])} layers, input {old['input_shape']}",
                                         f"{len(spec['layers'])} layers, input {spec['input_shape']}"))
    return diff


def _restore(out: Path | None, trainer, fresh: RunResult) -> RunResult:
    if out is None or not (out / "result.json").exists():
        raise ConfigError(f"Nothing to resume: {out}/result.json does not exist. Run without `resume=True`.")
    saved = RunResult.read(out / "result.json")
    diff = differences(saved, fresh.backend, fresh.spec, fresh.config)
    if diff:
        threads = (" (compare, sweep and reproduce give each run cpu count / `workers` threads: resume with "
                   "the same `workers`)") if "threads" in diff else ""
        raise ConfigError(
            f"Cannot resume {out}: it was started with other settings {diff}. "
            f"Use the same settings{threads} or another `out`."
        )
    if saved.completed:
        return saved
    try:
        trainer.restore(out / "checkpoint")
    except Exception as e:  # a damaged or missing native file: say which, and what to do
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"Cannot resume {out}: its checkpoint ({out / 'checkpoint'}) cannot be read ({type(e).__name__}: "
            f"{first[:200]}). It is damaged or incomplete; start the run again with `overwrite=True` "
            f"(its {len(saved.epochs)} finished epochs are trained again).") from None
    fresh.epochs, fresh.steps = saved.epochs, saved.steps  # the loss log before the interruption too
    return fresh


def evaluate_checkpoint(path, data_dir=None, dataset: str | None = None, normalization: str | None = None,
                        backend: str = "torch") -> dict:
    """Test loss/accuracy of a neutral checkpoint (weights.npz), or of a .keras or
    TorchScript model file (imported with its weights), in either backend. The
    dataset and normalisation are the checkpoint's own (recorded by training); an argument
    given overrides it, and a checkpoint that records none is read as MNIST, 'standard'.
    The loss is cross-entropy on logits, as in training: a softmax head is left out."""
    from . import data
    from .backends import get_backend
    from .spec.variants import logits_head

    if Path(str(path)).suffix in (".keras", ".h5", ".pt", ".pth", ".ts"):  # a model of the user's, imported
        from .importers import load_model

        (spec, weights), meta = load_model(path), {}
    else:
        spec, weights, meta = W.load(path)
    dataset = dataset or meta.get("dataset") or "mnist"
    normalization = normalization or meta.get("normalization") or "standard"
    spec = logits_head(spec)
    check_memory(spec, 1000)  # evaluation's batches: refused before a framework tries to allocate it
    b = get_backend(backend)
    trainer = b.Trainer(spec, TrainConfig().optimizer_for(backend), 0, weights)  # for evaluate only
    ds = data.load(dataset, data_dir)
    loss, acc, preds = trainer.evaluate(data.normalize(ds.x_test, normalization, dataset), ds.y_test)
    return {"backend": backend, "checkpoint": str(path), "epoch": meta.get("epoch"), "dataset": dataset,
            "normalization": normalization, "test_loss": loss, "test_acc": acc,
            "confusion": _confusion(ds.y_test, preds)}

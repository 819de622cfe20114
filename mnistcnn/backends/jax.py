"""Keras 3 backend on JAX: the same keras.Model as the TensorFlow backend (built by
mnistcnn.backends._keras3), trained by a jax.jit-compiled step over Keras' stateless
API (``stateless_call``, ``stateless_apply``). ``BACKEND`` is its mnistcnn.backends.protocol.Backend.

Keras picks its framework once per process, when it is first imported: get_backend('jax')
sets KERAS_BACKEND=jax before that, and a process that already holds Keras on
TensorFlow runs this backend in a child process (mnistcnn.backends.call).

Determinism: XLA on CPU runs the same compiled program with the same reduction order on
every call, so a run repeats bit for bit (tests/test_jax.py checks it); random numbers
(dropout) come from Keras' seed generators, whose state mnistcnn seeds per epoch.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import keras
import numpy as np

from ._keras3 import KerasBackend, KerasTrainer, floatx, require

require("jax", "jax")


def _state(model, optimizer=None) -> tuple:
    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    return state + (([v.value for v in optimizer.variables],) if optimizer is not None else ())


# -- the process ----------------------------------------------------------------------
def startup() -> None:
    """What JAX and Keras load on first use, loaded while get_backend filters start-up
    notices: JAX's CPU client, and TensorFlow where it is installed (Keras'
    set_random_seed seeds it too, and it prints its CUDA probing when it loads)."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow  # noqa: F401


#: XLA's CPU flags for a single-threaded run (XLA has no knob for N > 1 threads: its
#: pools take every core the process may use)
ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _gpus() -> list:
    try:
        return jax.devices("gpu")
    except RuntimeError:  # a jaxlib without a GPU backend
        return []


class KerasOnJax(KerasBackend):
    def build(self, spec, *, bn_rules: str = "native", dtype: str = "float32") -> keras.Model:
        """As the keras backend's build. JAX computes in 32 bits unless 64-bit types are
        switched on for the process (jax_enable_x64); a float64 model switches them on."""
        if dtype == "float64" and not jax.config.read("jax_enable_x64"):
            jax.config.update("jax_enable_x64", True)
        return super().build(spec, bn_rules=bn_rules, dtype=dtype)

    def gradients(self, model, spec, x, y) -> tuple[float, dict]:
        """Training-mode cross-entropy (on logits) of one batch and its parameter gradients,
        in the neutral layout."""
        dtype = model.input.dtype
        xt = jnp.asarray(np.ascontiguousarray(np.asarray(x, dtype).transpose(0, 2, 3, 1)))
        trainable, non_trainable = _state(model)

        def loss_of(trainable):
            with floatx(dtype):
                out, _ = model.stateless_call(trainable, non_trainable, xt, training=True)
                return keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y.astype(np.int32), out)

        loss, grads = jax.value_and_grad(loss_of)(trainable)
        index = {id(v): i for i, v in enumerate(model.trainable_variables)}
        return float(loss), self._trainable_gradients(
            model, spec, lambda variables: [[grads[index[id(v)]] for v in vs] for vs in variables])

    # -- the process ------------------------------------------------------------------------
    def _gpus(self) -> list[tuple[str, str]]:
        return [(f"gpu:{i}", gpu.device_kind) for i, gpu in enumerate(_gpus())]

    def _sees(self, count: int) -> str:
        return (f"JAX sees {count} GPU(s) (jax {jax.__version__}, platform {jax.default_backend()}; a CUDA jaxlib "
                "comes with pip install 'jax[cuda12]')")

    def _mps(self) -> bool | str:
        return "--device mps is PyTorch's Apple GPU; JAX has no MPS backend here: use --device cpu or auto."

    def start_run(self, threads: int | None) -> None:
        """One thread: XLA's single-thread flags, which take effect only before JAX starts
        its CPU client (the first computation); more threads: XLA's own choice (all cores)."""
        from jax._src import xla_bridge

        if threads == 1 and not xla_bridge.backends_are_initialized():
            flags = os.environ.get("XLA_FLAGS", "")
            if ONE_THREAD_FLAGS not in flags:
                os.environ["XLA_FLAGS"] = f"{flags} {ONE_THREAD_FLAGS}".strip()

    def environment(self) -> dict:
        import jaxlib

        one = ONE_THREAD_FLAGS in os.environ.get("XLA_FLAGS", "")
        return {"keras": keras.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "keras_backend": keras.backend.backend(), "jax_platform": jax.default_backend(),
                "threads": 1 if one else len(os.sched_getaffinity(0)),
                "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax_enable_x64": bool(jax.config.read("jax_enable_x64")),
                "jit_compile": True}


BACKEND = KerasOnJax()


# -- training -------------------------------------------------------------------------
class Trainer(KerasTrainer):
    """The Keras side of mnistcnn.train's protocol on JAX: one jax.jit-compiled step
    (forward, gradients, optimizer update) on the model's and optimizer's variables held
    as JAX arrays through an epoch and written back to the Keras variables after it."""

    backend = BACKEND

    def __init__(self, spec, optimizer, seed: int, weights: dict | None = None,
                 bn_rules: str = "torch", precision: str = "float32", device: str = "cpu"):
        platform, _, index = device.partition(":")
        self._jax_device = (_gpus() if platform == "gpu" else jax.devices("cpu"))[int(index or 0)]
        super().__init__(spec, optimizer, seed, weights, bn_rules, precision, device)
        self._step = jax.jit(self._train_step)
        self._infer = jax.jit(self._forward)

    def _forward(self, trainable, non_trainable, x):
        out, _ = self.model.stateless_call(trainable, non_trainable, x, training=False)
        return out.astype(jnp.float32)

    def _train_step(self, state, x_all, y_all, idx):
        trainable, non_trainable, opt = state
        x, y = x_all[idx], y_all[idx]

        def loss_of(trainable, non_trainable):
            logits, non_trainable = self.model.stateless_call(trainable, non_trainable, x, training=True)
            logits = logits.astype(jnp.float32)
            return self.loss_fn(y, logits), (non_trainable, logits)

        (loss, (non_trainable, logits)), grads = jax.value_and_grad(loss_of, has_aux=True)(
            trainable, non_trainable)
        trainable, opt = self.optimizer.stateless_apply(opt, grads, trainable)
        correct = jnp.sum(jnp.argmax(logits, 1) == y)
        return (trainable, non_trainable, opt), loss, correct

    def _store(self, state) -> None:
        trainable, non_trainable, opt = state
        for variables, values in ((self.model.trainable_variables, trainable),
                                  (self.model.non_trainable_variables, non_trainable),
                                  (self.optimizer.variables, opt)):
            for v, value in zip(variables, values):
                v.assign(value)

    def placed(self):
        return jax.default_device(self._jax_device)

    def set_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = jax.device_put(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), self._jax_device)
        self.y = jax.device_put(y.astype(np.int32), self._jax_device)

    def _epoch(self, order, batch_size, on_batch):
        state = _state(self.model, self.optimizer)
        losses, correct = [], []
        try:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                state, loss, c = self._step(state, self.x, self.y, jnp.asarray(idx, jnp.int32))
                losses.append(loss * len(idx))  # summed on the host at the end: no wait per step
                correct.append(c)
                if on_batch:
                    on_batch(len(idx), loss)
        finally:  # an interrupted epoch leaves the variables of its last finished step
            self._store(state)
        return float(sum(np.asarray(losses, np.float64))) / len(order), int(np.sum(correct)) / len(order)

    def _logits(self, x):
        return np.asarray(self._infer(*_state(self.model), x))


KerasOnJax.Trainer = Trainer

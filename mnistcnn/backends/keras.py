"""Keras 3 backend on TensorFlow: a spec becomes a functional keras.Model (built by
mnistcnn.backends._keras3, shared with the JAX backend), trained by a compiled
tf.function step. ``BACKEND`` is its mnistcnn.backends.protocol.Backend.
"""
from __future__ import annotations

import os

import keras
import numpy as np

from ._keras3 import KerasBackend, KerasTrainer, floatx, require

require("tensorflow", "keras")


class KerasOnTensorFlow(KerasBackend):
    def gradients(self, model, spec, x, y) -> tuple[float, dict]:
        """Training-mode cross-entropy (on logits) of one batch and its parameter gradients,
        in the neutral layout."""
        import tensorflow as tf

        xt = tf.constant(np.ascontiguousarray(np.asarray(x, model.input.dtype).transpose(0, 2, 3, 1)))
        with floatx(model.output.dtype), tf.GradientTape() as tape:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
                y.astype(np.int32), model(xt, training=True))
        return float(loss), self._trainable_gradients(model, spec, lambda variables: tape.gradient(loss, variables))

    # -- the process ------------------------------------------------------------------------
    def _gpus(self) -> list[tuple[str, str]]:
        import tensorflow as tf

        return [(f"/GPU:{i}", tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
                for i, gpu in enumerate(tf.config.list_physical_devices("GPU"))]

    def _sees(self, count: int) -> str:
        import tensorflow as tf

        build = "" if tf.test.is_built_with_cuda() else ", a build without CUDA"
        return f"TensorFlow sees {count} GPU(s) (tensorflow {tf.__version__}{build})"

    def _mps(self) -> bool | str:
        return ("--device mps is PyTorch's Apple GPU; TensorFlow shows an Apple GPU (through the tensorflow-metal "
                "plugin) as a GPU: use --device auto.")

    def start_run(self, threads: int | None) -> None:
        """TensorFlow's op determinism, its thread pools, and its Python log level (each
        Trainer traces its own functions once; TF's retracing notice counts them across
        trainers in one process and would be a false alarm)."""
        import tensorflow as tf

        if threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
            except RuntimeError:  # TensorFlow already started its pools in this process
                pass
        tf.config.experimental.enable_op_determinism()
        tf.get_logger().setLevel("ERROR")

    def environment(self) -> dict:
        import tensorflow as tf

        return {"keras": keras.__version__, "tensorflow": tf.__version__,
                "keras_backend": keras.backend.backend(),
                "threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
                "jit_compile": False}


BACKEND = KerasOnTensorFlow()


# -- training -------------------------------------------------------------------------
class Trainer(KerasTrainer):
    """The Keras side of mnistcnn.train's protocol on TensorFlow: a compiled tf.function
    step over batches gathered on the TensorFlow side from index arrays."""

    backend = BACKEND

    def __init__(self, spec, optimizer, seed: int, weights: dict | None = None,
                 bn_rules: str = "torch", precision: str = "float32", device: str = "cpu"):
        import tensorflow as tf

        self.tf = tf
        super().__init__(spec, optimizer, seed, weights, bn_rules, precision, device)
        c, h, w = spec.input_shape
        self._step = tf.function(self._train_step, input_signature=[tf.TensorSpec([None], tf.int32)])
        self._infer = tf.function(lambda x: tf.cast(self.model(x, training=False), tf.float32),
                                  input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])

    def _train_step(self, idx):
        tf = self.tf
        x, y = tf.gather(self.x, idx), tf.gather(self.y, idx)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(x, training=True), tf.float32)
            loss = self.loss_fn(y, logits)
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=y.dtype), y), tf.int32))
        return loss, correct

    def placed(self):
        return self.tf.device(self.device)

    def set_data(self, x: np.ndarray, y: np.ndarray) -> None:
        with self.placed():
            self.x = self.tf.constant(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
            self.y = self.tf.constant(y.astype(np.int32))

    def _epoch(self, order, batch_size, on_batch):
        loss_sum, correct = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss, c = self._step(self.tf.constant(idx, self.tf.int32))
            loss_sum += float(loss) * len(idx)
            correct += int(c)
            if on_batch:
                on_batch(len(idx), loss)
        return loss_sum / len(order), correct / len(order)

    def _logits(self, x):
        return self._infer(x).numpy()


KerasOnTensorFlow.Trainer = Trainer

"""What the Keras 3 backends share, whichever framework runs Keras underneath
(mnistcnn.backends.keras: TensorFlow; mnistcnn.backends.jax: JAX): ``KerasBackend``, their
base (the model built from a spec, one entry per layer kind in ``KINDS``, its layout and
its weights in the neutral form), the harmonized BatchNorm and optimizers (written with
keras.ops, so they run on any Keras backend), and ``KerasTrainer`` (evaluation,
checkpoints). The training step and the process settings are each framework's own (its
module).

Input is channels_last (N, H, W, C). Each spec layer becomes one Keras layer named as
the spec row ('conv2d_0'), plus helpers named '<row>_pad' / '<row>_act' where needed.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import replace

import keras
import numpy as np

from ..errors import BackendUnavailableError
from ..spec import layers as L
from .protocol import BN_RULES, Backend, Kind, Unsupported, need

ops = keras.ops


def require(framework: str, backend: str) -> None:
    """One process holds one Keras backend, chosen when Keras is first imported."""
    if keras.backend.backend() != framework:
        raise BackendUnavailableError(
            f"mnistcnn's {backend!r} backend runs Keras on {framework}, but Keras was already loaded "
            f"on {keras.backend.backend()!r} in this process (one process holds one Keras backend). Run it "
            f"in its own process (mnistcnn.backends.call does), or set KERAS_BACKEND={framework} before "
            "anything imports keras.")


#: Private Keras internals this module relies on: (class, attribute, where it is used).
#: tests/test_backends.py fails with this table's words when an upgrade removes one.
KERAS_INTERNALS = [
    (keras.layers.BatchNormalization, "_moments", "TorchBatchNormalization.call"),
    (keras.optimizers.Optimizer, "_get_variable_index", "TorchFormSGD/Adam/RMSprop.update_step"),
    (keras.optimizers.SGD, "momentums", "TorchFormSGD.update_step (built by SGD.build with momentum)"),
    (keras.optimizers.Adam, "_momentums", "TorchFormAdam.update_step (built by Adam.build)"),
    (keras.optimizers.Adam, "_velocities", "TorchFormAdam.update_step (built by Adam.build)"),
    (keras.optimizers.RMSprop, "_velocities", "TorchFormRMSprop.update_step (built by RMSprop.build)"),
    (keras.optimizers.RMSprop, "_momentums", "TorchFormRMSprop.update_step (built by RMSprop.build)"),
    (keras.layers.Dropout, "seed_generator", "KerasTrainer.seed_dropout (dropout masks per epoch)"),
]


def _activation(layer: L.Activation, name: str):
    if layer.name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=layer.negative_slope, name=name)
    if layer.name == "elu":
        return keras.layers.ELU(alpha=layer.alpha, name=name)
    return keras.layers.Activation(layer.name, name=name)  # gelu: exact form by default


def _padded(layer, row, make):
    """Keras' own 'same' is TensorFlow's rule, which the spec uses; explicit padding
    becomes a ZeroPadding2D before a 'valid' layer."""
    if layer.padding in ("valid", "same"):
        return [make(layer.padding)]
    return [keras.layers.ZeroPadding2D(layer.pads(row.input_shape), name=f"{row.name}_pad"),
            make("valid")]


def _conv(layer: L.Conv2D, row):
    return _padded(layer, row, lambda padding: keras.layers.Conv2D(
        layer.filters, layer.kernel_size, layer.stride, padding=padding,
        activation=layer.activation, use_bias=layer.use_bias, name=row.name))


def _pool(cls):
    return lambda layer, row: [cls(layer.pool_size, layer.stride, padding=layer.padding,
                                   name=row.name)]


@keras.saving.register_keras_serializable(package="mnistcnn")
class TorchBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization computed by PyTorch's rules, for harmonized training:

    - the moving variance takes the UNBIASED batch variance (Keras stores the biased one);
    - the output is (x - mean) * gamma / sqrt(var + eps) + beta. TensorFlow computes
      x * inv + (beta - mean * inv), which cancels catastrophically when a channel's mean
      is large next to its spread (MNIST's constant background does that); stacked
      conv-BN layers then give float32 gradients several percent off (see docs/parity.md).
    """

    def __init__(self, *args, fused_training: bool = True, **kwargs):
        """fused_training: train float32 channels-last batches through TensorFlow's fused
        kernel (False: the formula as separate ops; benchmarks/ measure both). Other
        Keras backends always compute the formula."""
        super().__init__(*args, **kwargs)
        self.fused_training = fused_training

    def get_config(self):
        return {**super().get_config(), "fused_training": self.fused_training}

    def call(self, inputs, training=None, mask=None):
        if mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        # float32 at least (bfloat16 inputs computed in float32), float64 kept: Keras' own
        # result_type(float64, float32) is float32 on every backend but TensorFlow
        dtype = "float64" if keras.backend.standardize_dtype(inputs.dtype) == "float64" else "float32"
        x = ops.cast(inputs, dtype)
        channels_last = self.axis in (-1, len(x.shape) - 1)
        if (training and self.trainable and dtype == "float32" and channels_last and self.fused_training
                and keras.backend.backend() == "tensorflow"):
            return self._fused_training(x)
        if training and self.trainable:
            mean, variance = self._moments(x, None)
            n = ops.cast(ops.size(x), dtype) / ops.cast(ops.size(mean), dtype)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (n / (n - 1.0)) * (1.0 - m))
        else:
            mean, variance = ops.cast(self.moving_mean, dtype), ops.cast(self.moving_variance, dtype)
        gamma, beta = ops.cast(self.gamma, dtype), ops.cast(self.beta, dtype)
        if not channels_last:  # axis=1 of (N, H, W, C): the statistics broadcast along H
            shape = [1] * len(x.shape)
            shape[self.axis] = -1
            mean, variance, gamma, beta = (ops.reshape(v, shape) for v in (mean, variance, gamma, beta))
        out = (x - mean) * (gamma * ops.rsqrt(variance + self.epsilon)) + beta
        return ops.cast(out, self.compute_dtype)

    def _fused_training(self, x):
        """float32 training through TensorFlow's fused kernel, which already follows
        PyTorch's rules: it normalises as (x - mean) * inv * gamma + beta and returns the
        unbiased batch variance. Faster than the formula as separate ops
        (docs/performance.md), with float32 gradients closer to float64 (docs/parity.md).
        It takes 4-D NHWC input; dense BatchNorm is reshaped."""
        import tensorflow as tf

        shape = ops.shape(x)
        x4 = x if len(x.shape) == 4 else ops.reshape(x, (-1, 1, 1, shape[-1]))
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x4, ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32"),
            epsilon=self.epsilon, is_training=True)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return ops.cast(ops.reshape(y, shape), self.compute_dtype)


def _batchnorm(cls, axis=-1):
    return lambda layer, row: [cls(axis=axis, momentum=layer.momentum, epsilon=layer.epsilon,
                                   name=row.name)]


# -- reading a user's layers (mnistcnn.importers) ---------------------------------------
def _config(layer) -> dict:
    c = layer.get_config()
    if c.get("data_format", "channels_last") != "channels_last":
        need("data_format", False, c["data_format"])
    return c


def _plain(c: dict) -> None:
    """A Conv2D or Dense without regularizers, constraints or LoRA."""
    for arg in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                "bias_constraint", "lora_rank"):
        need(arg, not c.get(arg), c.get(arg))


#: activation names the spec takes as they are (Keras' names; 'linear' is none)
_ACTIVATION_NAMES = {"linear": None, "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax",
                     "log_softmax": "log_softmax", "elu": "elu", "gelu": "gelu"}


def _inline_activation(value) -> tuple:
    """(the spec's inline activation, layers to add after) for a layer's activation argument."""
    if isinstance(value, str) and value == "leaky_relu":  # keras.activations.leaky_relu: slope 0.2
        return None, [L.Activation("leaky_relu", negative_slope=0.2)]
    if not (isinstance(value, str) and value in _ACTIVATION_NAMES):
        raise Unsupported(f"activation={value!r}", [*_ACTIVATION_NAMES, "leaky_relu"])
    return _ACTIVATION_NAMES[value], []


def _read_conv(layer, in_shape) -> list:
    c = _config(layer)
    _plain(c)
    need("dilation_rate", tuple(c["dilation_rate"]) == (1, 1), c["dilation_rate"])
    need("groups", c.get("groups", 1) == 1, c.get("groups"))
    act, extra = _inline_activation(c["activation"])
    return [L.Conv2D(c["filters"], tuple(c["kernel_size"]), stride=tuple(c["strides"]), padding=c["padding"],
                     activation=act, use_bias=c["use_bias"]), *extra]


def _read_dense(layer, in_shape) -> list:
    c = _config(layer)
    _plain(c)
    need("input rank", len(in_shape) == 1, f"a Dense on a {len(in_shape)}-D map (Keras applies it per pixel)")
    act, extra = _inline_activation(c["activation"])
    return [L.Dense(c["units"], activation=act, use_bias=c["use_bias"]), *extra]


def _read_pool(cls):
    def read(layer, in_shape) -> list:
        c = _config(layer)
        strides = c["strides"] if c["strides"] is not None else c["pool_size"]
        return [cls(tuple(c["pool_size"]), tuple(strides), c["padding"])]
    return read


def _read_batchnorm(layer, in_shape) -> list:
    c = _config(layer)
    axis = c["axis"][0] if isinstance(c["axis"], (list, tuple)) and len(c["axis"]) == 1 else c["axis"]
    rank = len(in_shape) + 1
    if axis not in (-1, rank - 1):
        raise Unsupported(f"axis={c['axis']!r} normalises over a non-channel axis of its "
                          f"{'(H, W, C)' if rank == 4 else 'input'} (see `mnistcnn defaults <spec>`: the lint "
                          "explains this mistake of report 004; spec.HeightBatchNorm reproduces axis=1 on purpose)",
                          "BatchNormalization on the channel axis (axis=-1)")
    for arg in ("center", "scale"):
        need(arg, c[arg], c[arg])
    for arg in ("beta_regularizer", "gamma_regularizer", "renorm", "synchronized"):
        need(arg, not c.get(arg), c.get(arg))
    return [L.BatchNorm(momentum=float(c["momentum"]), epsilon=float(c["epsilon"]))]


def _read_dropout(layer, in_shape) -> list:
    c = _config(layer)
    need("noise_shape", c.get("noise_shape") is None, c.get("noise_shape"))
    return [L.Dropout(float(c["rate"]))]


def _read_activation(layer, in_shape) -> list:
    c, kind = _config(layer), type(layer).__name__
    if kind == "ReLU":
        need("max_value", c.get("max_value") is None, c.get("max_value"))
        need("threshold", not c.get("threshold"), c.get("threshold"))
        slope = float(c.get("negative_slope") or 0.0)
        return [L.Activation("leaky_relu", negative_slope=slope) if slope else L.Activation("relu")]
    if kind == "LeakyReLU":
        return [L.Activation("leaky_relu", negative_slope=float(c.get("negative_slope", c.get("alpha"))))]  # type: ignore[arg-type]
    if kind == "ELU":
        return [L.Activation("elu", alpha=float(c.get("alpha", 1.0)))]
    if kind == "Softmax":
        need("axis", c.get("axis", -1) in (-1, len(in_shape)), c.get("axis"))
        return [L.Activation("softmax")]
    act, extra = _inline_activation(c["activation"])
    return ([L.Activation(act)] if act else []) + extra


def _read_global_pool(kind):
    def read(layer, in_shape) -> list:
        c = _config(layer)
        need("keepdims", not c.get("keepdims"), c.get("keepdims"))
        return [kind()]
    return read


_BATCHNORMS = (keras.layers.BatchNormalization, TorchBatchNormalization)

#: One entry per layer kind (a test asserts this covers spec.LAYER_KINDS): its builder (for
#: bn_rules='native'), the Keras classes it is, and its reader.
KINDS: dict[type, Kind] = {
    L.Conv2D: Kind(_conv, (keras.layers.Conv2D,), _read_conv),
    L.MaxPool2D: Kind(_pool(keras.layers.MaxPooling2D), (keras.layers.MaxPooling2D,), _read_pool(L.MaxPool2D)),
    L.AvgPool2D: Kind(_pool(keras.layers.AveragePooling2D), (keras.layers.AveragePooling2D,),
                      _read_pool(L.AvgPool2D)),
    L.BatchNorm: Kind(_batchnorm(keras.layers.BatchNormalization), _BATCHNORMS, _read_batchnorm),
    L.Dropout: Kind(lambda layer, row: [keras.layers.Dropout(layer.rate, name=row.name)], (keras.layers.Dropout,),
                    _read_dropout),
    L.SpatialDropout2D: Kind(lambda layer, row: [keras.layers.SpatialDropout2D(layer.rate, name=row.name)],
                             (keras.layers.SpatialDropout2D,),
                             lambda layer, in_shape: [L.SpatialDropout2D(float(_config(layer)["rate"]))]),
    L.Flatten: Kind(lambda layer, row: [keras.layers.Flatten(name=row.name)], (keras.layers.Flatten,),
                    lambda layer, in_shape: [] if len(in_shape) == 1 else [L.Flatten()]),
    L.Dense: Kind(lambda layer, row: [keras.layers.Dense(
        layer.units, activation=layer.activation, use_bias=layer.use_bias, name=row.name)], (keras.layers.Dense,),
        _read_dense),
    L.Activation: Kind(lambda layer, row: [_activation(layer, row.name)],
                       (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
                        keras.layers.Softmax), _read_activation),
    L.GlobalAvgPool2D: Kind(lambda layer, row: [keras.layers.GlobalAveragePooling2D(name=row.name)],
                            (keras.layers.GlobalAveragePooling2D,), _read_global_pool(L.GlobalAvgPool2D)),
    L.GlobalMaxPool2D: Kind(lambda layer, row: [keras.layers.GlobalMaxPooling2D(name=row.name)],
                            (keras.layers.GlobalMaxPooling2D,), _read_global_pool(L.GlobalMaxPool2D)),
    # (N, H, W, C): axis 1 = H; a Keras model with it is refused on import (the BatchNorm reader says why)
    L.HeightBatchNorm: Kind(_batchnorm(keras.layers.BatchNormalization, axis=1), _BATCHNORMS, None),
    # a composite: built by _apply (its parts on one input, then Add); the importer reads it from the graph
    L.Residual: Kind(lambda layer, row: [], (keras.layers.Add,), None),
}
#: bn_rules='torch': the builders of the BatchNorm kinds by PyTorch's rules
_TORCH_RULES = {L.BatchNorm: _batchnorm(TorchBatchNormalization),
                L.HeightBatchNorm: _batchnorm(TorchBatchNormalization, axis=1)}


def _apply(rows, x, bn_rules: str, prefix: str = ""):
    """The Keras layers of ``rows`` applied to ``x``, each named as its row (a composite's
    inner rows by their path, ``prefix``)."""
    for row in rows:
        kind = type(row.layer)
        if row.layer.parts(row.input_shape):  # a composite: its parts on x, added
            parts = row.layer.parts(row.input_shape)
            outs = [_apply(spec.rows, x, bn_rules, f"{prefix}{row.name}.{part}.") for part, spec in parts.items()]
            x = keras.layers.Add(name=prefix + row.name)(outs + [x] * (2 - len(outs)))
            continue
        make = _TORCH_RULES[kind] if bn_rules == "torch" and kind in _TORCH_RULES else KINDS[kind].build
        for layer in make(row.layer, replace(row, name=prefix + row.name)):
            x = layer(x)
    return x


@contextlib.contextmanager
def floatx(dtype: str):
    """Keras' global float type for a while: layers take their dtype when constructed,
    and some computations (losses, casts) read it when they run. Both floatx and the
    global dtype policy are set: Keras caches the policy once it has been used, after
    which floatx alone no longer reaches new layers. ``dtype`` is a float type or a
    policy name: 'mixed_bfloat16' keeps float32 variables and computes in bfloat16."""
    previous, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(keras.DTypePolicy(dtype).variable_dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)
        keras.config.set_dtype_policy(policy)


def _size(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def to_spec_layout(shape: tuple) -> tuple:
    """(H, W, C) -> (C, H, W); flat shapes unchanged."""
    return (shape[-1],) + tuple(shape[:-1]) if len(shape) == 3 else tuple(shape)


def _to_neutral_output(out: np.ndarray, order) -> np.ndarray:
    if out.ndim == 4:
        return out.transpose(0, 3, 1, 2)
    # a flattened map leaving the model goes back to (C, H, W) order
    return _unorder_rows(out.T, order).T


def _flat_orders(spec) -> dict:
    """For each row, the order of its flat input features in Keras relative to the
    neutral (C, H, W) flatten order: keras position k holds neutral feature order[k].
    None where nothing is permuted. Key None: the model's output."""
    orders: dict = {}
    order = None
    for r in spec.rows:
        orders[r.name] = order
        if r.layer.flattens and len(r.input_shape) == 3:
            c, h, w = r.input_shape
            order = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()
        elif not r.layer.per_feature:
            order = None
    orders[None] = order
    return orders


def _weighted_rows(spec) -> list:
    """The rows holding weights, a composite's inner rows in its place (named by their path,
    as their Keras layers are)."""
    return [r for r in spec.leaves if r.layer.weight_shapes(r.input_shape)]


def _unorder_rows(v, order):
    if order is None:
        return v
    neutral = np.empty_like(v)
    neutral[order] = v
    return neutral


def _order_rows(v, order):
    return v if order is None else v[order]


#: Each weight layout (spec.WEIGHT_LAYOUTS) from Keras' form to the neutral one and back;
#: ``order`` is the row's flat input order (_flat_orders), None where nothing is permuted.
_FROM_KERAS = {
    L.CONV_KERNEL: lambda v, order: v.transpose(3, 2, 0, 1),  # (kh, kw, in, out) -> (out, in, kh, kw)
    L.DENSE_KERNEL: lambda v, order: _unorder_rows(v, order).T,  # (in, out), inputs in Keras' flat order
    L.PER_OUTPUT: lambda v, order: v,
    L.PER_INPUT: _unorder_rows,
}
_TO_KERAS = {
    L.CONV_KERNEL: lambda v, order: v.transpose(2, 3, 1, 0),
    L.DENSE_KERNEL: lambda v, order: _order_rows(v.T, order),
    L.PER_OUTPUT: lambda v, order: v,
    L.PER_INPUT: _order_rows,
}


class KerasBackend(Backend):
    """What Keras on TensorFlow and Keras on JAX share: the model, its layout and its
    weights; each subclass adds its framework's gradients, devices, process settings and
    Trainer."""

    KINDS = KINDS
    #: Keras' own optimizer values (tests/test_backends.py reads the installed signatures)
    NATIVE_OPTIMIZER_DEFAULTS = {"adam": {"eps": 1e-7}, "rmsprop": {"rho": 0.9, "eps": 1e-7},
                                 "adadelta": {"rho": 0.95, "eps": 1e-7}, "sgd": {}}
    #: BatchNormalization's momentum=0.99, epsilon=1e-3
    NATIVE_BATCHNORM = L.BatchNorm.preset("keras")
    #: the private Keras names the harmonized optimizers and BatchNorm use
    KERAS_INTERNALS = KERAS_INTERNALS

    def build(self, spec, *, bn_rules: str = "native", dtype: str = "float32") -> keras.Model:
        """A keras.Model taking (N, H, W, C) input; Keras' own initialisation.
        bn_rules 'torch': BatchNorm follows PyTorch's rules (TorchBatchNormalization).
        dtype: 'float64' builds a double-precision model (parity's reference),
        'mixed_bfloat16' one that computes in bfloat16."""
        if bn_rules not in BN_RULES:
            raise ValueError(f"bn_rules must be one of {BN_RULES}, not {bn_rules!r}")
        if dtype != keras.config.dtype_policy().name:
            with floatx(dtype):
                return self.build(spec, bn_rules=bn_rules, dtype=dtype)
        c, h, w = spec.input_shape
        inputs = keras.Input(shape=(h, w, c), name="input")
        x = _apply(spec.rows, inputs, bn_rules)
        # Keras names allow only [A-Za-z0-9_.\\/>-]: 'net[bn]' becomes 'net_bn_'
        return keras.Model(inputs, x, name=re.sub(r"[^A-Za-z0-9_.\\/>-]", "_", spec.name))

    @staticmethod
    def row_layers(model, row) -> list:
        """The Keras layers of one spec row: the row's own, and its '<row>_pad' / '<row>_act' helpers."""
        return [l for l in model.layers if l.name == row.name or l.name.startswith((row.name + "_", row.name + "."))]

    def param_counts(self, model, spec) -> list[tuple[int, int]]:
        """(trainable weights, non-trainable weights) per spec layer: for BatchNormalization
        the latter are the moving mean and variance."""
        return [
            (sum(_size(l.trainable_weights) for l in group), sum(_size(l.non_trainable_weights) for l in group))
            for group in (self.row_layers(model, row) for row in spec.rows)
        ]

    def layer_output_shapes(self, model, spec) -> list[tuple]:
        return [to_spec_layout(tuple(self.row_layers(model, row)[-1].output.shape[1:])) for row in spec.rows]

    def layer_outputs(self, model, spec, x) -> list:
        """Inference-mode output of every spec layer, in the spec's layout."""
        ends = [self.row_layers(model, row)[-1].output for row in spec.rows]
        probe = keras.Model(model.input, ends)
        outs = probe(np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1)), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]  # a one-layer spec: one tensor
        orders = _flat_orders(spec)
        nxt = [r.name for r in spec.rows[1:]] + [None]
        return [_to_neutral_output(keras.ops.convert_to_numpy(o), orders[n]) for o, n in zip(outs, nxt)]

    def predict(self, model, spec, x, batch_size: int = 1000):
        """Inference-mode outputs for (N, C, H, W) input, returned in the spec's layout."""
        x = np.ascontiguousarray(np.asarray(x, model.input.dtype).transpose(0, 2, 3, 1))
        out = np.concatenate([
            keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ])
        return _to_neutral_output(out, _flat_orders(spec)[None])

    # -- weights in the neutral form (mnistcnn.weights) -------------------------------------
    def layer_weights(self, layer) -> list:
        return layer.get_weights()

    def neutral_from_native(self, spec, per_layer: dict) -> dict:
        """Keras lists a layer's weights in the order of the kind's weight_shapes (kernel,
        bias; gamma, beta, moving mean, moving variance); each is translated by its layout."""
        orders = _flat_orders(spec)
        out = {}
        for r in spec.leaves:
            layouts = r.layer.weight_layouts
            for name, v in zip(r.layer.weight_shapes(r.input_shape), per_layer.get(r.name, [])):
                out[f"{r.name}.{name}"] = np.ascontiguousarray(_FROM_KERAS[layouts[name]](np.asarray(v),
                                                                                          orders.get(r.name)))
        return out

    def get_weights(self, model, spec) -> dict:
        return self.neutral_from_native(spec, {r.name: model.get_layer(r.name).get_weights()
                                               for r in _weighted_rows(spec)})

    def set_weights(self, model, spec, weights: dict) -> None:
        from .. import weights as W

        W.check(spec, weights)
        orders = _flat_orders(spec)
        for r in _weighted_rows(spec):
            layouts = r.layer.weight_layouts
            model.get_layer(r.name).set_weights([
                _TO_KERAS[layouts[name]](np.asarray(weights[f"{r.name}.{name}"]), orders.get(r.name))
                for name in r.layer.weight_shapes(r.input_shape)])

    def _trainable_gradients(self, model, spec, grads_of) -> dict:
        """The neutral form of the gradients ``grads_of(per-row lists of variables)`` gives."""
        rows = _weighted_rows(spec)
        grads = grads_of([model.get_layer(r.name).trainable_weights for r in rows])
        return self.neutral_from_native(spec, {r.name: [np.asarray(g) for g in gs] for r, gs in zip(rows, grads)})


# -- optimizers -----------------------------------------------------------------------
# Harmonized mode trains with PyTorch's update formulas; these subclasses of the stock
# Keras optimizers change only update_step (and decay weights in the gradient, coupled,
# as torch.optim does). Native mode uses the stock classes and Keras' own formulas:
# Adam's epsilon added to sqrt(v) without bias correction, SGD's v = mu*v - lr*g,
# RMSprop's sqrt(v + eps), decoupled weight decay.
class _Coupled:
    """coupled_decay: L2 weight decay added to the gradient (torch.optim's weight_decay);
    Keras' own weight_decay argument is decoupled and stays unused here."""

    def __init__(self, *args, coupled_decay: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.coupled_decay = coupled_decay

    def _decayed(self, gradient, variable):
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_decay:
            gradient = gradient + self.coupled_decay * variable
        return gradient


class TorchFormSGD(_Coupled, keras.optimizers.SGD):
    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = self._decayed(gradient, variable)
        if self.momentum == 0:
            self.assign_sub(variable, lr * g)
            return
        b = self.momentums[self._get_variable_index(variable)]
        self.assign(b, self.momentum * b + g)
        self.assign_sub(variable, lr * (g + self.momentum * b if self.nesterov else b))


class TorchFormAdam(_Coupled, keras.optimizers.Adam):
    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = self._decayed(gradient, variable)
        t = ops.cast(self.iterations + 1, variable.dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, (g - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.square(g) - v) * (1 - self.beta_2))
        denom = ops.sqrt(v) / ops.sqrt(1 - ops.power(self.beta_2, t)) + self.epsilon
        self.assign_sub(variable, lr / (1 - ops.power(self.beta_1, t)) * m / denom)


class TorchFormRMSprop(_Coupled, keras.optimizers.RMSprop):
    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = self._decayed(gradient, variable)
        v = self._velocities[self._get_variable_index(variable)]
        self.assign(v, self.rho * v + (1 - self.rho) * ops.square(g))
        step = g / (ops.sqrt(v) + self.epsilon)
        if self.momentum > 0:
            buf = self._momentums[self._get_variable_index(variable)]
            self.assign(buf, self.momentum * buf + step)
            step = buf
        self.assign_sub(variable, lr * step)


class TorchFormAdadelta(_Coupled, keras.optimizers.Adadelta):
    """Keras' Adadelta already computes PyTorch's formula; only decay is coupled here."""

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(self._decayed(gradient, variable), variable, learning_rate)


def _optimizer(opt):
    """A config.Optimizer as a Keras optimizer: PyTorch's formulas (the TorchForm
    subclasses) or Keras' own."""
    name, lr, wd = opt.name, opt.lr, opt.weight_decay
    kwargs = {
        "sgd": dict(momentum=opt.momentum, nesterov=opt.nesterov),
        "adam": dict(beta_1=opt.beta1, beta_2=opt.beta2, epsilon=opt.eps),
        "rmsprop": dict(rho=opt.rho, momentum=opt.momentum, epsilon=opt.eps),
        "adadelta": dict(rho=opt.rho, epsilon=opt.eps),
    }[name]
    if opt.formulas == "torch":
        cls = {"sgd": TorchFormSGD, "adam": TorchFormAdam, "rmsprop": TorchFormRMSprop,
               "adadelta": TorchFormAdadelta}[name]
        return cls(learning_rate=lr, coupled_decay=wd, **kwargs)
    stock = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
             "rmsprop": keras.optimizers.RMSprop, "adadelta": keras.optimizers.Adadelta}[name]
    return stock(learning_rate=lr, weight_decay=wd or None, **kwargs)




# -- training: what the TensorFlow and JAX trainers share --------------------------------
class KerasTrainer:
    """The model, optimizer, evaluation and checkpoints of a Keras run; each framework's
    module compiles its own training step (``train_epoch``) and ``logits``."""

    #: the backend whose model this trains (each subclass's)
    backend: KerasBackend

    def __init__(self, spec, optimizer, seed: int, weights: dict | None = None,
                 bn_rules: str = "torch", precision: str = "float32", device: str = "cpu"):
        keras.utils.set_random_seed(seed)
        self.spec, self.device = spec, device
        with self.placed():  # the variables live on the device
            self.model = self.backend.build(spec, bn_rules=bn_rules,
                                            dtype="mixed_bfloat16" if precision == "bfloat16" else "float32")
            if weights is not None:
                self.backend.set_weights(self.model, spec, weights)
            self.optimizer = _optimizer(optimizer)
            self.optimizer.build(self.model.trainable_variables)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self._seeded = [l for l in self.model.layers if getattr(l, "seed_generator", None)]

    def placed(self):
        """A context placing what is created and run in it on the run's device."""
        raise NotImplementedError

    def seed_dropout(self, rng_seed: int) -> None:
        """Dropout masks depend on (seed, epoch) only."""
        for i, layer in enumerate(self._seeded):
            layer.seed_generator.state.assign(np.array([rng_seed + i, 0]))

    def train_epoch(self, order, batch_size, lr, rng_seed, on_batch=None):
        with self.placed():
            self.seed_dropout(rng_seed)
            self.optimizer.learning_rate = lr
            return self._epoch(order, batch_size, on_batch)

    def _epoch(self, order, batch_size: int, on_batch) -> tuple[float, float]:
        """The framework's pass over the batches: (mean loss, accuracy)."""
        raise NotImplementedError

    def _logits(self, x: np.ndarray) -> np.ndarray:
        """float32 inference-mode outputs of a channels-last batch."""
        raise NotImplementedError

    def evaluate(self, x, y, batch_size=1000):
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        with self.placed():
            logits = np.concatenate([self._logits(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")(
            y.astype(np.int32), logits)) / len(x)
        preds = logits.argmax(1)
        return loss, float((preds == y).mean()), preds

    def get_weights(self) -> dict:
        return self.backend.get_weights(self.model, self.spec)

    def save(self, directory) -> dict:
        """Native checkpoint: the .keras model file and the optimizer's variables."""
        import io
        import tempfile
        from pathlib import Path

        from .._io import atomic_write_bytes

        directory = Path(directory)
        with tempfile.TemporaryDirectory() as tmp:  # keras writes by name: save, then move
            self.model.save(Path(tmp) / "model.keras")
            atomic_write_bytes(directory / "model.keras", (Path(tmp) / "model.keras").read_bytes())
        buf = io.BytesIO()
        np.savez(buf, *[keras.ops.convert_to_numpy(v) for v in self.optimizer.variables])
        atomic_write_bytes(directory / "optimizer.npz", buf.getvalue())
        return {"native": "model.keras", "optimizer": "optimizer.npz"}

    def restore(self, directory) -> None:
        from pathlib import Path

        saved = keras.models.load_model(Path(directory) / "model.keras", compile=False)
        self.model.set_weights(saved.get_weights())
        with np.load(Path(directory) / "optimizer.npz") as z:
            for i, v in enumerate(self.optimizer.variables):
                v.assign(z[f"arr_{i}"])

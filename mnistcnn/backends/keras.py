"""Keras 3 backend (TensorFlow underneath): a spec becomes a functional keras.Model.

Input is channels_last (N, H, W, C). Each spec layer becomes one Keras layer named as
the spec row ('conv2d_0'), plus helpers named '<row>_pad' / '<row>_act' where needed.
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import BackendUnavailableError  # noqa: E402
from ..spec import layers as L  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise BackendUnavailableError(
        f"mnistcnn's keras backend runs Keras on TensorFlow, but Keras was loaded with the "
        f"{keras.backend.backend()!r} backend. Set KERAS_BACKEND=tensorflow before importing keras."
    )


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


BUILDERS = {
    L.Conv2D: _conv,
    L.MaxPool2D: _pool(keras.layers.MaxPooling2D),
    L.AvgPool2D: _pool(keras.layers.AveragePooling2D),
    L.BatchNorm: lambda layer, row: [keras.layers.BatchNormalization(
        axis=-1, momentum=layer.momentum, epsilon=layer.epsilon, name=row.name)],
    L.Dropout: lambda layer, row: [keras.layers.Dropout(layer.rate, name=row.name)],
    L.SpatialDropout2D: lambda layer, row: [keras.layers.SpatialDropout2D(layer.rate, name=row.name)],
    L.Flatten: lambda layer, row: [keras.layers.Flatten(name=row.name)],
    L.Dense: lambda layer, row: [keras.layers.Dense(
        layer.units, activation=layer.activation, use_bias=layer.use_bias, name=row.name)],
    L.Activation: lambda layer, row: [_activation(layer, row.name)],
}


def build(spec) -> keras.Model:
    """A keras.Model taking (N, H, W, C) float32 input; Keras' own initialisation."""
    c, h, w = spec.input_shape
    inputs = x = keras.Input(shape=(h, w, c), name="input")
    for row in spec.rows:
        for layer in BUILDERS[type(row.layer)](row.layer, row):
            x = layer(x)
    return keras.Model(inputs, x, name=spec.name)


def _group(model, row):
    return [l for l in model.layers if l.name == row.name or l.name.startswith(row.name + "_")]


def _size(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def param_counts(model, spec) -> list[tuple[int, int]]:
    """(trainable weights, non-trainable weights) per spec layer: for BatchNormalization
    the latter are the moving mean and variance."""
    return [
        (sum(_size(l.trainable_weights) for l in group), sum(_size(l.non_trainable_weights) for l in group))
        for group in (_group(model, row) for row in spec.rows)
    ]


def to_spec_layout(shape: tuple) -> tuple:
    """(H, W, C) -> (C, H, W); flat shapes unchanged."""
    return (shape[-1],) + tuple(shape[:-1]) if len(shape) == 3 else tuple(shape)


def layer_output_shapes(model, spec) -> list[tuple]:
    return [to_spec_layout(tuple(_group(model, row)[-1].output.shape[1:])) for row in spec.rows]


def predict(model, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Inference-mode outputs for (N, C, H, W) input, returned in the spec's layout."""
    x = np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1))
    out = np.concatenate([
        keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
        for i in range(0, len(x), batch_size)
    ])
    return out.transpose(0, 3, 1, 2) if out.ndim == 4 else out

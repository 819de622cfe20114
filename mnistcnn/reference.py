"""A third, independent oracle: the inference-mode forward pass of every layer kind in
plain numpy, written from the definitions, on the neutral weights (mnistcnn.weights).

Layout is the spec's: (N, C, H, W) maps, (N, F) vectors, Flatten in (C, H, W) order.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special

from . import spec as S


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) view of every window of an already padded input."""
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    s = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, c, oh, ow, kh, kw), (s[0], s[1], s[2] * sh, s[3] * sw, s[2], s[3]), writeable=False)


def _pad(x, pads, value=0.0):
    (top, bottom), (left, right) = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def conv2d(x, kernel, bias=None, stride=(1, 1), pads=((0, 0), (0, 0))):
    """Cross-correlation, as every deep-learning framework computes 'convolution':
    out[n, o, i, j] = sum_{c, u, v} x[n, c, i*s + u, j*s + v] * kernel[o, c, u, v] + bias[o]."""
    win = _windows(_pad(x, pads), kernel.shape[2], kernel.shape[3], *stride)
    out = np.einsum("ncijuv,ocuv->noij", win, kernel, optimize=True)
    return out if bias is None else out + bias[None, :, None, None]


def max_pool(x, size, stride, pads):
    return _windows(_pad(x, pads, -np.inf), *size, *stride).max(axis=(4, 5))


def avg_pool(x, size, stride, pads):
    """Average over the real cells of each window (padded cells are not counted)."""
    total = _windows(_pad(x, pads), *size, *stride).sum(axis=(4, 5))
    count = _windows(_pad(np.ones((1, 1) + x.shape[2:]), pads), *size, *stride).sum(axis=(4, 5))
    return total / count


def activation(x, name: str, negative_slope=None, alpha=1.0, axis=1):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return special.expit(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        return special.softmax(x, axis=axis)
    if name == "log_softmax":
        return special.log_softmax(x, axis=axis)
    if name == "leaky_relu":
        return np.where(x >= 0, x, negative_slope * x)
    if name == "elu":
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    if name == "gelu":  # exact: x * Phi(x)
        return 0.5 * x * (1 + special.erf(x / np.sqrt(2)))
    raise ValueError(name)


def batchnorm(x, gamma, beta, mean, var, epsilon):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + epsilon) * gamma.reshape(shape) \
        + beta.reshape(shape)


def _with_activation(h, layer):
    return activation(h, layer.activation) if layer.activation else h


#: One numpy forward per layer kind: (layer, row, x, weights by kind) -> output. A test
#: asserts it covers spec.LAYER_KINDS; forward() refuses a kind missing here by name.
FORWARD: dict[type, Callable] = {
    S.Conv2D: lambda layer, row, h, w: _with_activation(
        conv2d(h, w["kernel"], w.get("bias"), layer.stride, layer.pads(row.input_shape)), layer),
    S.Dense: lambda layer, row, h, w: _with_activation(
        h @ w["kernel"].T + (w["bias"] if "bias" in w else 0), layer),
    S.MaxPool2D: lambda layer, row, h, w: max_pool(h, layer.pool_size, layer.stride,
                                                   layer.pads(row.input_shape)),
    S.AvgPool2D: lambda layer, row, h, w: avg_pool(h, layer.pool_size, layer.stride,
                                                   layer.pads(row.input_shape)),
    S.BatchNorm: lambda layer, row, h, w: batchnorm(
        h, w["gamma"], w["beta"], w["moving_mean"], w["moving_variance"], layer.epsilon),
    S.Flatten: lambda layer, row, h, w: h.reshape(len(h), -1),
    S.Activation: lambda layer, row, h, w: activation(h, layer.name, layer.negative_slope, layer.alpha),
    S.Dropout: lambda layer, row, h, w: h,  # identity at inference
    S.SpatialDropout2D: lambda layer, row, h, w: h,
    S.GlobalAvgPool2D: lambda layer, row, h, w: h.mean(axis=(2, 3)),
    S.GlobalMaxPool2D: lambda layer, row, h, w: h.max(axis=(2, 3)),
    S.Residual: lambda layer, row, h, w: sum(
        forward(spec, {k.partition(".")[2]: v for k, v in w.items() if k.startswith(part + ".")}, h)[-1]
        for part, spec in layer.parts(row.input_shape).items()) + (0 if layer.shortcut else h),
    S.HeightBatchNorm: lambda layer, row, h, w: batchnorm(
        h.swapaxes(1, 2), w["gamma"], w["beta"], w["moving_mean"], w["moving_variance"],
        layer.epsilon).swapaxes(1, 2),
}


def forward(spec, weights: dict, x: np.ndarray, upto: int | None = None) -> list[np.ndarray]:
    """Inference-mode output of every layer (float64), for input (N, C, H, W)."""
    from .weights import by_row

    params = by_row(spec, weights)
    outs, h = [], np.asarray(x, dtype=np.float64)
    for r in spec.rows[:upto]:
        if type(r.layer) not in FORWARD:
            raise NotImplementedError(
                f"mnistcnn.reference has no numpy forward for layer kind {r.kind} ({r.name}); "
                "add one to reference.FORWARD")
        w = {k: v.astype(np.float64) for k, v in params.get(r.name, {}).items()}
        h = FORWARD[type(r.layer)](r.layer, r, h, w)
        outs.append(h)
    return outs

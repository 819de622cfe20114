"""PyTorch backend: a spec becomes an nn.Sequential with one named child per spec layer."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..spec import layers as L

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
    "log_softmax": lambda: nn.LogSoftmax(dim=1),
    "elu": nn.ELU,
    "gelu": nn.GELU,  # exact (erf) form, as Keras' gelu(approximate=False)
}


def _activation(layer: L.Activation) -> nn.Module:
    if layer.name == "leaky_relu":
        return nn.LeakyReLU(layer.negative_slope)
    if layer.name == "elu":
        return nn.ELU(layer.alpha)
    return _ACTIVATIONS[layer.name]()


def _pad_arg(pads):
    """F.pad order (left, right, top, bottom) from ((top, bottom), (left, right))."""
    (top, bottom), (left, right) = pads
    return (left, right, top, bottom)


class _AvgPoolExcludePad(nn.Module):
    """Average pooling over zero-padded input that divides by the number of real cells
    (TensorFlow's 'same'); handles the asymmetric padding torch's AvgPool2d cannot."""

    def __init__(self, kernel, stride, pads):
        super().__init__()
        self.kernel, self.stride, self.pad = kernel, stride, _pad_arg(pads)

    def forward(self, x):
        ones = torch.ones_like(x[:1, :1])
        total = F.avg_pool2d(F.pad(x, self.pad), self.kernel, self.stride)
        share = F.avg_pool2d(F.pad(ones, self.pad), self.kernel, self.stride)
        return total / share


def _chain(parts) -> nn.Module:
    parts = [(k, m) for k, m in parts if m is not None]
    return parts[0][1] if len(parts) == 1 else nn.Sequential(OrderedDict(parts))


def _conv(layer: L.Conv2D, row) -> nn.Module:
    pads = layer.pads(row.input_shape)
    (top, bottom), (left, right) = pads
    symmetric = top == bottom and left == right
    conv = nn.Conv2d(row.input_shape[0], layer.filters, layer.kernel_size, layer.stride,
                     padding=(top, left) if symmetric else 0, bias=layer.use_bias)
    pad = None if symmetric else nn.ZeroPad2d(_pad_arg(pads))
    act = _activation(L.Activation(layer.activation)) if layer.activation else None
    return _chain([("pad", pad), ("op", conv), ("act", act)])


def _maxpool(layer: L.MaxPool2D, row) -> nn.Module:
    pads = layer.pads(row.input_shape)
    pool = nn.MaxPool2d(layer.pool_size, layer.stride)
    pad = nn.ConstantPad2d(_pad_arg(pads), float("-inf")) if any(sum(pads, ())) else None
    return _chain([("pad", pad), ("op", pool)])


def _avgpool(layer: L.AvgPool2D, row) -> nn.Module:
    pads = layer.pads(row.input_shape)
    if any(sum(pads, ())):
        return _AvgPoolExcludePad(layer.pool_size, layer.stride, pads)
    return nn.AvgPool2d(layer.pool_size, layer.stride)


def _batchnorm(layer: L.BatchNorm, row) -> nn.Module:
    cls = nn.BatchNorm2d if len(row.input_shape) == 3 else nn.BatchNorm1d
    return cls(row.input_shape[0], eps=layer.epsilon, momentum=1.0 - layer.momentum)


def _dense(layer: L.Dense, row) -> nn.Module:
    linear = nn.Linear(row.input_shape[0], layer.units, bias=layer.use_bias)
    act = _activation(L.Activation(layer.activation)) if layer.activation else None
    return _chain([("op", linear), ("act", act)])


#: One builder per layer kind (a test asserts this covers spec.LAYER_KINDS).
BUILDERS = {
    L.Conv2D: _conv,
    L.MaxPool2D: _maxpool,
    L.AvgPool2D: _avgpool,
    L.BatchNorm: _batchnorm,
    L.Dropout: lambda layer, row: nn.Dropout(layer.rate),
    L.SpatialDropout2D: lambda layer, row: nn.Dropout2d(layer.rate),
    L.Flatten: lambda layer, row: nn.Flatten(),
    L.Dense: _dense,
    L.Activation: lambda layer, row: _activation(layer),
}


def build(spec) -> nn.Sequential:
    """A torch model taking (N, C, H, W) float32 input; PyTorch's own initialisation."""
    return nn.Sequential(OrderedDict(
        (row.name, BUILDERS[type(row.layer)](row.layer, row)) for row in spec.rows
    ))


def param_counts(model: nn.Sequential, spec) -> list[tuple[int, int]]:
    """(trainable parameters, BatchNorm running statistics) per spec layer. The
    num_batches_tracked buffer is bookkeeping, not state of the function, and not counted."""
    counts = []
    for row in spec.rows:
        child = getattr(model, row.name)
        trainable = sum(p.numel() for p in child.parameters() if p.requires_grad)
        state = sum(b.numel() for n, b in child.named_buffers()
                    if n.rsplit(".", 1)[-1] in ("running_mean", "running_var"))
        counts.append((trainable, state))
    return counts


def layer_output_shapes(model: nn.Sequential, spec) -> list[tuple]:
    shapes = []
    x = torch.zeros((1,) + spec.input_shape)
    model.eval()
    with torch.no_grad():
        for row in spec.rows:
            x = getattr(model, row.name)(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Inference-mode outputs for (N, C, H, W) input, as a numpy array."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([
            model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], np.float32))).numpy()
            for i in range(0, len(x), batch_size)
        ])

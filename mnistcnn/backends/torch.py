"""PyTorch backend: a spec becomes an nn.Sequential with one named child per spec layer.
``BACKEND`` is its mnistcnn.backends.protocol.Backend."""
from __future__ import annotations

import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..spec import layers as L
from .protocol import BN_RULES, Backend, Kind, Unsupported, need

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
    "log_softmax": lambda: nn.LogSoftmax(dim=1),
    "elu": nn.ELU,
    "gelu": nn.GELU,  # exact (erf) form, as Keras' gelu(approximate=False)
}


def _activation(layer: L.Activation, fused: bool = False) -> nn.Module:
    """fused: the activation of a Conv2D or Dense. Its input is then always the op's fresh
    output, which the op's backward does not need, so ReLU runs in place (one less
    buffer per step; measured in docs/performance.md). A standalone Activation may
    receive the caller's input or a view of it, so it never does."""
    if layer.name == "relu" and fused:
        return nn.ReLU(inplace=True)
    if layer.name == "leaky_relu":
        assert layer.negative_slope is not None  # required for leaky_relu (spec.layers.Activation)
        return nn.LeakyReLU(layer.negative_slope)
    if layer.name == "elu":
        return nn.ELU(layer.alpha)
    return _ACTIVATIONS[layer.name]()  # type: ignore[operator]  # classes and factories alike


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


class _HeightBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the height axis (spec.HeightBatchNorm): BatchNorm2d(H) on the map
    with its channel and height axes swapped. Its weights are BatchNorm2d's own."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class _GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C): the mean of each channel."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class _GlobalMaxPool(nn.Module):
    """(N, C, H, W) -> (N, C): the maximum of each channel."""

    def forward(self, x):
        return x.amax(dim=(2, 3))


class _Residual(nn.Module):
    """body(x) + x, or body(x) + shortcut(x) (spec.Residual); each part an nn.Sequential
    named as the spec's inner rows."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


def _sequential(spec) -> nn.Sequential:
    return nn.Sequential(OrderedDict((row.name, KINDS[type(row.layer)].build(row.layer, row)) for row in spec.rows))


def _residual(layer: L.Residual, row) -> nn.Module:
    parts = layer.parts(row.input_shape)
    return _Residual(_sequential(parts["body"]), _sequential(parts["shortcut"]) if "shortcut" in parts else None)


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
    act = _activation(L.Activation(layer.activation), fused=True) if layer.activation else None
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
    act = _activation(L.Activation(layer.activation), fused=True) if layer.activation else None
    return _chain([("op", linear), ("act", act)])


# -- reading a user's modules and calls (mnistcnn.importers) ----------------------------
# A reader takes one traced call (importers' step: ``module``, or ``kind``, the
# function's name, and ``arg(i, name, default)``) and the input shape.
def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _read_conv(call, in_shape) -> list:
    m = call.module
    need("dilation", _pair(m.dilation) == (1, 1), m.dilation)
    need("groups", m.groups == 1, m.groups)
    need("padding_mode", m.padding_mode == "zeros", m.padding_mode)
    need("in_channels", m.in_channels == in_shape[0], f"{m.in_channels} (the input here has {in_shape[0]})")
    padding = m.padding if isinstance(m.padding, str) else _pair(m.padding)
    return [L.Conv2D(m.out_channels, _pair(m.kernel_size), stride=_pair(m.stride), padding=padding,
                     use_bias=m.bias is not None)]


def _read_dense(call, in_shape) -> list:
    m = call.module
    need("in_features", len(in_shape) == 1 and m.in_features == in_shape[0],
         f"{m.in_features} (the input here is {'x'.join(map(str, in_shape))})")
    return [L.Dense(m.out_features, use_bias=m.bias is not None)]


def _pool(cls, kernel, stride, padding, ceil, extra=()) -> list:
    need("padding", _pair(padding) == (0, 0), padding)
    need("ceil_mode", not ceil, ceil)
    for arg, ok, value in extra:
        need(arg, ok, value)
    return [cls(_pair(kernel), _pair(stride if stride else kernel))]  # None or [] (TorchScript): the kernel


def _read_maxpool(call, in_shape) -> list:
    m = call.module
    if m is not None:
        return _pool(L.MaxPool2D, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                     [("dilation", _pair(m.dilation) == (1, 1), m.dilation),
                      ("return_indices", not m.return_indices, m.return_indices)])
    dilation = call.arg(4, "dilation", 1)
    return _pool(L.MaxPool2D, call.arg(1, "kernel_size"), call.arg(2, "stride"), call.arg(3, "padding", 0),
                 call.arg(5, "ceil_mode", False), [("dilation", _pair(dilation) == (1, 1), dilation)])


def _read_avgpool(call, in_shape) -> list:
    m = call.module
    if isinstance(m, _AvgPoolExcludePad):  # mnistcnn's own: 'same'
        layer = L.AvgPool2D(m.kernel, m.stride, "same")
        need("padding", _pad_arg(layer.pads(in_shape)) == m.pad, m.pad)
        return [layer]
    if m is not None:
        return _pool(L.AvgPool2D, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                     [("divisor_override", m.divisor_override is None, m.divisor_override)])
    divisor = call.arg(6, "divisor_override")
    return _pool(L.AvgPool2D, call.arg(1, "kernel_size"), call.arg(2, "stride"), call.arg(3, "padding", 0),
                 call.arg(4, "ceil_mode", False), [("divisor_override", divisor is None, divisor)])


def _read_batchnorm(cls, axis: int):
    def read(call, in_shape) -> list:
        m = call.module
        need("affine", m.affine, m.affine)
        need("track_running_stats", m.track_running_stats, m.track_running_stats)
        need("momentum", m.momentum is not None, m.momentum)  # None: a cumulative average
        need("num_features", m.num_features == in_shape[axis], m.num_features)
        return [cls(momentum=1.0 - m.momentum, epsilon=m.eps)]  # PyTorch 0.1 = Keras 0.9
    return read


def _read_dropout(cls):
    def read(call, in_shape) -> list:
        if call.module is not None:
            return [cls(call.module.p)]
        p = float(call.arg(1, "p", 0.5))
        if call.arg(2, "training", True) is True:  # F.dropout's default: on in inference too
            raise Unsupported(
                f"F.{call.kind}(x, p={p:g}) without training=self.training stays on when the model is evaluated "
                "(F.dropout's default is training=True); the spec's dropout is off in inference. Write "
                f"F.{call.kind}(x, p={p:g}, training=self.training) or use nn.Dropout")
        return [cls(p)]
    return read


def _read_flatten(call, in_shape) -> list:
    """nn.Flatten, torch.flatten(x, 1), x.flatten(1), x.view(-1, n), x.view(x.size(0), -1), x.reshape(...)."""
    n = None
    if call.module is not None:
        m = call.module
        need("start_dim", m.start_dim == 1 and m.end_dim == -1, (m.start_dim, m.end_dim))
    elif call.kind == "flatten":
        start = call.arg(1, "start_dim", 0)
        need("start_dim", start == 1, start)  # 0 would flatten the batch too
    else:
        args = call.args
        shape = list(args[1:]) if len(args) > 2 or not isinstance(args[1], (tuple, list)) else list(args[1])
        if len(shape) == 4 and (shape[0] == -1 or call.is_tensor(shape[0])):
            # x.view(-1, 1, 28, 28) at the input: the image it already is; another shape is no layer of the spec
            need("shape", tuple(shape[1:]) == tuple(in_shape), f"{tuple(shape)} (the input here is "
                 f"{'x'.join(map(str, in_shape))}; the spec reshapes only by flattening a map)")
            return []
        need("shape", len(shape) == 2 and (shape[0] == -1 or call.is_tensor(shape[0])), tuple(shape))
        n = -1 if call.is_tensor(shape[0]) else shape[1]
    if len(in_shape) == 1:
        return []  # already flat (after a global pooling)
    size = math.prod(in_shape)
    need("view size", n in (None, -1, size), f"{n} (the map here has {size} = {'x'.join(map(str, in_shape))} "
         "values per image)")
    return [L.Flatten()]


#: module class name -> the activation function's name
_ACTIVATION_OF = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyReLU": "leaky_relu", "ELU": "elu",
                  "GELU": "gelu", "Softmax": "softmax", "LogSoftmax": "log_softmax"}


def _read_activation(call, in_shape) -> list:
    m, name = call.module, _ACTIVATION_OF.get(call.kind, call.kind)
    if name == "leaky_relu":
        return [L.Activation(name, negative_slope=m.negative_slope if m is not None
                             else float(call.arg(1, "negative_slope", 0.01)))]
    if name == "elu":
        return [L.Activation(name, alpha=m.alpha if m is not None else float(call.arg(1, "alpha", 1.0)))]
    if name == "gelu":
        approximate = m.approximate if m is not None else call.arg(1, "approximate", "none")
        need("approximate", approximate == "none", approximate)
    if name in ("softmax", "log_softmax"):
        dim = m.dim if m is not None else call.arg(1, "dim")
        need("dim", dim in (1, -1) and len(in_shape) == 1, dim)
    return [L.Activation(name)]


def _read_adaptive_pool(global_kind, window_kind):
    """AdaptiveAvgPool2d / AdaptiveMaxPool2d: to 1x1 the global pooling (a flatten after it is
    then a no-op); to a size that divides the map, a pooling of equal windows, which is
    what PyTorch's adaptive rule computes there; otherwise refused (unequal windows)."""
    def read(call, in_shape) -> list:
        m = call.module
        if m is None or isinstance(m, (_GlobalAvgPool, _GlobalMaxPool)):  # mnistcnn's own
            return [global_kind()]
        # nn.AdaptiveAvgPool2d / AdaptiveMaxPool2d, or their TorchScript modules (no isinstance)
        need("return_indices", not getattr(m, "return_indices", False), getattr(m, "return_indices", None))
        if len(in_shape) != 3:
            raise Unsupported(f"{type(m).__name__} on a flat input of {in_shape[0]} values")
        size = tuple(d if o is None else o for o, d in zip(_pair(m.output_size), in_shape[1:]))
        if size == (1, 1):
            return [global_kind()]
        h, w = in_shape[1:]
        if h % size[0] or w % size[1]:
            raise Unsupported(
                f"output_size={m.output_size!r} on a {h}x{w} map pools windows of unequal sizes (PyTorch's adaptive "
                f"rule), which no fixed pooling computes; use an output size that divides {h}x{w}, or "
                f"{window_kind.__name__.replace('2D', '2d')} with the window you mean")
        window = (h // size[0], w // size[1])
        return [] if window == (1, 1) else [window_kind(window)]
    return read


#: One entry per layer kind (a test asserts this covers spec.LAYER_KINDS): its builder,
#: the torch classes and function names it is, and its reader.
KINDS: dict[type, Kind] = {
    L.Conv2D: Kind(_conv, (nn.Conv2d,), _read_conv),
    L.MaxPool2D: Kind(_maxpool, (nn.MaxPool2d, "max_pool2d", "max_pool2d_with_indices"), _read_maxpool),
    L.AvgPool2D: Kind(_avgpool, (nn.AvgPool2d, _AvgPoolExcludePad, "avg_pool2d"), _read_avgpool),
    L.BatchNorm: Kind(_batchnorm, (nn.BatchNorm2d, nn.BatchNorm1d), _read_batchnorm(L.BatchNorm, 0)),
    L.Dropout: Kind(lambda layer, row: nn.Dropout(layer.rate), (nn.Dropout, "dropout"), _read_dropout(L.Dropout)),
    L.SpatialDropout2D: Kind(lambda layer, row: nn.Dropout2d(layer.rate),
                             (nn.Dropout2d, "dropout2d", "feature_dropout"), _read_dropout(L.SpatialDropout2D)),
    L.Flatten: Kind(lambda layer, row: nn.Flatten(), (nn.Flatten, "flatten", "view", "reshape"), _read_flatten),
    L.Dense: Kind(_dense, (nn.Linear,), _read_dense),
    L.Activation: Kind(lambda layer, row: _activation(layer),
                       (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Softmax, nn.LogSoftmax,
                        "relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "softmax", "log_softmax"),
                       _read_activation),
    L.GlobalAvgPool2D: Kind(lambda layer, row: _GlobalAvgPool(), (nn.AdaptiveAvgPool2d, _GlobalAvgPool),
                            _read_adaptive_pool(L.GlobalAvgPool2D, L.AvgPool2D)),
    L.GlobalMaxPool2D: Kind(lambda layer, row: _GlobalMaxPool(), (nn.AdaptiveMaxPool2d, _GlobalMaxPool),
                            _read_adaptive_pool(L.GlobalMaxPool2D, L.MaxPool2D)),
    L.Residual: Kind(_residual, (_Residual,), None),
    L.HeightBatchNorm: Kind(lambda layer, row: _HeightBatchNorm(row.input_shape[1], eps=layer.epsilon,
                                                                momentum=1.0 - layer.momentum),
                            (_HeightBatchNorm,), _read_batchnorm(L.HeightBatchNorm, 1)),
}


def _core(child: nn.Module) -> nn.Module:
    """The module holding a row's weights (a chain's 'op')."""
    core = child.op if isinstance(child, nn.Sequential) else child
    assert isinstance(core, nn.Module)
    return core


def _tensors(module: nn.Module) -> list:
    """A module's weights as PyTorch lists them: its parameters, then its floating-point
    buffers (BatchNorm's running statistics; num_batches_tracked counts, and is no
    weight). The neutral form lists them in the same order and layout."""
    return [*module.parameters(recurse=False), *(b for b in module.buffers(recurse=False) if b.is_floating_point())]


class TorchBackend(Backend):
    KINDS = KINDS
    #: PyTorch's own optimizer values (tests/test_backends.py reads the installed signatures)
    NATIVE_OPTIMIZER_DEFAULTS = {"adam": {"eps": 1e-8}, "rmsprop": {"rho": 0.99, "eps": 1e-8},
                                 "adadelta": {"rho": 0.9, "eps": 1e-6}, "sgd": {}}
    #: nn.BatchNorm2d's momentum=0.1, eps=1e-5 in the spec's (Keras) momentum convention
    NATIVE_BATCHNORM = L.BatchNorm.preset("torch")

    def build(self, spec, *, bn_rules: str = "native", dtype: str = "float32") -> nn.Sequential:
        """A torch model taking (N, C, H, W) input; PyTorch's own initialisation. PyTorch's
        BatchNorm rules are the 'torch' rules, so both ``bn_rules`` build the same model."""
        if bn_rules not in BN_RULES:
            raise ValueError(f"bn_rules must be one of {BN_RULES}, not {bn_rules!r}")
        return _sequential(spec).to(getattr(torch, dtype))

    def param_counts(self, model, spec) -> list[tuple[int, int]]:
        """(trainable parameters, BatchNorm running statistics) per spec layer."""
        counts = []
        for row in spec.rows:
            child = getattr(model, row.name)
            trainable = sum(p.numel() for p in child.parameters() if p.requires_grad)
            state = sum(b.numel() for b in child.buffers() if b.is_floating_point())
            counts.append((trainable, state))
        return counts

    def layer_outputs(self, model, spec, x) -> list:
        """Inference-mode output of every spec layer (already in the spec's layout)."""
        outs, h = [], torch.from_numpy(np.ascontiguousarray(x, np.float32))
        model.eval()
        with torch.no_grad():
            for row in spec.rows:
                h = getattr(model, row.name)(h)
                outs.append(h.numpy().copy())
        return outs

    def layer_output_shapes(self, model, spec) -> list[tuple]:
        return [o.shape[1:] for o in self.layer_outputs(model, spec, np.zeros((1,) + spec.input_shape))]

    def gradients(self, model, spec, x, y) -> tuple[float, dict]:
        """Training-mode cross-entropy (on logits) of one batch and its parameter gradients,
        in the neutral layout."""
        model.train()
        model.zero_grad(set_to_none=True)
        dtype = next(model.parameters()).dtype
        loss = F.cross_entropy(model(torch.from_numpy(np.ascontiguousarray(x)).to(dtype)),
                               torch.from_numpy(y.astype(np.int64)))
        loss.backward()
        grads = {r.name: [p.grad for p in _core(model.get_submodule(r.name)).parameters(recurse=False)]
                 for r in spec.leaves}
        return float(loss.detach()), {k: v.astype(np.float64) for k, v in self.neutral_from_native(spec, grads).items()}

    def predict(self, model, spec, x, batch_size: int = 1000):
        """Inference-mode outputs for (N, C, H, W) input, as a numpy array (the torch layout
        is the spec's)."""
        model.eval()
        dtype = next(model.parameters(), torch.empty(0)).dtype
        with torch.no_grad():
            return np.concatenate([
                model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(dtype)).numpy()
                for i in range(0, len(x), batch_size)
            ])

    # -- weights in the neutral form (mnistcnn.weights): torch's layout already is it ------
    def layer_weights(self, layer) -> list:
        return [t.detach().cpu().numpy().copy() for t in _tensors(layer)]

    def neutral_from_native(self, spec, per_layer: dict) -> dict:
        out: dict[str, np.ndarray] = {}
        for r in spec.leaves:
            names, arrays = list(r.layer.weight_shapes(r.input_shape)), per_layer.get(r.name, [])
            if len(arrays) > len(names):
                raise ValueError(f"{r.name}: {len(arrays)} torch tensors for the {len(names)} weights {names}")
            out.update((f"{r.name}.{n}", np.asarray(v.detach().cpu().numpy() if torch.is_tensor(v) else v))
                       for n, v in zip(names, arrays))
        return out

    def get_weights(self, model, spec) -> dict:
        """Neutral arrays: the torch layout already is the neutral one (C, H, W order)."""
        return self.neutral_from_native(spec, {r.name: self.layer_weights(_core(model.get_submodule(r.name)))
                                               for r in spec.leaves})

    def set_weights(self, model, spec, weights: dict) -> None:
        from .. import weights as W

        W.check(spec, weights)
        with torch.no_grad():
            for r in spec.leaves:
                tensors = _tensors(_core(model.get_submodule(r.name)))
                for name, tensor in zip(r.layer.weight_shapes(r.input_shape), tensors):
                    tensor.copy_(torch.from_numpy(np.asarray(weights[f"{r.name}.{name}"])))

    # -- the process ----------------------------------------------------------------------
    def _gpus(self) -> list[tuple[str, str]]:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [(f"cuda:{i}", torch.cuda.get_device_name(i)) for i in range(count)]

    def _build(self) -> str:
        return f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a build without CUDA")

    def _sees(self, count: int) -> str:
        return f"PyTorch sees {count} CUDA device(s) ({self._build()})"

    def _mps(self) -> bool | str:
        return torch.backends.mps.is_available() or (
            f"--device mps: PyTorch sees no Apple MPS device ({self._build()}, {sys.platform}). Use --device cpu, "
            "or auto.")

    def start_run(self, threads: int | None) -> None:
        """Deterministic algorithms and the thread count, for the whole process (on a GPU,
        cuBLAS needs a fixed workspace to be deterministic: CUBLAS_WORKSPACE_CONFIG, read
        when CUDA starts, set here unless the user has)."""
        if threads is not None:
            torch.set_num_threads(threads)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        # filling every new tensor with NaN is a debugging aid, not what makes the runs
        # repeatable (the tests check that they are), and it costs time every step
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]

    def environment(self) -> dict:
        return {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "torch_interop_threads": torch.get_num_interop_threads(),
                "deterministic": torch.are_deterministic_algorithms_enabled(),
                "mkldnn": torch.backends.mkldnn.is_available()}


# -- training -------------------------------------------------------------------------
def _optimizer(params, opt):
    """A stock torch.optim optimizer: PyTorch's formulas are both its native ones and the
    harmonized reference, so ``opt.formulas`` changes nothing here."""
    name, lr, wd = opt.name, opt.lr, opt.weight_decay
    # fused: one kernel per step instead of a dozen foreach passes (docs/performance.md);
    # PyTorch has no fused RMSprop or Adadelta
    if name == "sgd":
        return torch.optim.SGD(params, lr, momentum=opt.momentum, nesterov=opt.nesterov,
                               weight_decay=wd, fused=True)
    if name == "adam":
        return torch.optim.Adam(params, lr, betas=(opt.beta1, opt.beta2), eps=opt.eps,
                                weight_decay=wd, fused=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr, alpha=opt.rho, eps=opt.eps,
                                   momentum=opt.momentum, weight_decay=wd)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr, rho=opt.rho, eps=opt.eps, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


class Trainer:
    """The torch side of mnistcnn.train's protocol: batches arrive as index arrays."""

    def __init__(self, spec, optimizer, seed: int, weights: dict | None = None,
                 bn_rules: str = "torch", precision: str = "float32", device: str = "cpu"):
        torch.manual_seed(seed)
        self.spec = spec
        self.device = torch.device(device)
        # bfloat16: autocast (convolutions and matmuls in bfloat16, weights, optimizer
        # state and the loss in float32)
        self.autocast = torch.autocast(self.device.type, torch.bfloat16, enabled=precision == "bfloat16")
        # channels_last: oneDNN's preferred layout on CPU (its gain: docs/performance.md)
        self.model = BACKEND.build(spec, bn_rules=bn_rules)
        if weights is not None:
            BACKEND.set_weights(self.model, spec, weights)
        self.model = self.model.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.optimizer = _optimizer(self.model.parameters(), optimizer)

    def set_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = torch.from_numpy(x).to(self.device).contiguous(memory_format=torch.channels_last)
        self.y = torch.from_numpy(y.astype(np.int64)).to(self.device)

    def train_epoch(self, order: np.ndarray, batch_size: int, lr: float, rng_seed: int,
                    on_batch=None) -> tuple[float, float]:
        """One pass over the batches of ``order``; returns the mean training-mode batch
        loss (weighted by batch size) and the training accuracy."""
        torch.manual_seed(rng_seed)  # dropout masks depend on (seed, epoch) only
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        batches = torch.from_numpy(order).to(self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for start in range(0, len(order), batch_size):
            idx = batches[start:start + batch_size]
            xb, yb = self.x[idx].contiguous(memory_format=torch.channels_last), self.y[idx]
            with self.autocast:
                logits = self.model(xb).float()
            loss = F.cross_entropy(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                loss_sum.add_(loss, alpha=len(idx))
                correct.add_((logits.argmax(1) == yb).sum())
            if on_batch:
                on_batch(len(idx), loss.detach())
        return float(loss_sum) / len(order), int(correct) / len(order)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 1000):
        """(mean loss, accuracy, predicted labels) in inference mode, without gradients."""
        self.model.eval()
        loss_sum, parts = 0.0, []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = torch.from_numpy(x[start:start + batch_size]).to(self.device).contiguous(
                    memory_format=torch.channels_last)
                with self.autocast:
                    logits = self.model(xb).float()
                yb = torch.from_numpy(y[start:start + batch_size].astype(np.int64)).to(self.device)
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                parts.append(logits.argmax(1).cpu().numpy())
        preds = np.concatenate(parts)
        return loss_sum / len(x), float((preds == y).mean()), preds

    def get_weights(self) -> dict:
        return BACKEND.get_weights(self.model, self.spec)

    def save(self, directory) -> dict:
        """Native checkpoint (model and optimizer state_dicts), written atomically."""
        import io
        from pathlib import Path

        from .._io import atomic_write_bytes

        buf = io.BytesIO()
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}, buf)
        atomic_write_bytes(Path(directory) / "model.pt", buf.getvalue())
        return {"native": "model.pt"}

    def restore(self, directory) -> None:
        from pathlib import Path

        state = torch.load(Path(directory) / "model.pt", weights_only=True, map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


TorchBackend.Trainer = Trainer
BACKEND = TorchBackend()

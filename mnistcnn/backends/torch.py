"""PyTorch backend: a spec becomes an nn.Sequential with one named child per spec layer.
Implements mnistcnn.backends.protocol.Backend."""
from __future__ import annotations

import os
import sys
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..spec import layers as L
from .protocol import BN_RULES

#: PyTorch's own optimizer values (tests/test_backends.py reads the installed signatures)
NATIVE_OPTIMIZER_DEFAULTS = {"adam": {"eps": 1e-8}, "rmsprop": {"rho": 0.99, "eps": 1e-8},
                             "adadelta": {"rho": 0.9, "eps": 1e-6}, "sgd": {}}
#: nn.BatchNorm2d's momentum=0.1, eps=1e-5 in the spec's (Keras) momentum convention
NATIVE_BATCHNORM = L.BatchNorm.preset("torch")

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
    buffer per step; benchmarks/: 1.01-1.03x for seed000-cnn). A standalone Activation may
    receive the caller's input or a view of it, so it never does."""
    if layer.name == "relu" and fused:
        return nn.ReLU(inplace=True)
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


class _HeightBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the height axis (spec.HeightBatchNorm): BatchNorm2d(H) on the map
    with its channel and height axes swapped. Its weights are BatchNorm2d's own."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class _GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C): the mean of each channel."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


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
    L.GlobalAvgPool2D: lambda layer, row: _GlobalAvgPool(),
    L.HeightBatchNorm: lambda layer, row: _HeightBatchNorm(row.input_shape[1], eps=layer.epsilon,
                                                            momentum=1.0 - layer.momentum),
}


def build(spec, *, bn_rules: str = "native", dtype: str = "float32") -> nn.Sequential:
    """A torch model taking (N, C, H, W) input; PyTorch's own initialisation. PyTorch's
    BatchNorm rules are the 'torch' rules, so both ``bn_rules`` build the same model."""
    if bn_rules not in BN_RULES:
        raise ValueError(f"bn_rules must be one of {BN_RULES}, not {bn_rules!r}")
    model = nn.Sequential(OrderedDict(
        (row.name, BUILDERS[type(row.layer)](row.layer, row)) for row in spec.rows
    ))
    return model.to(getattr(torch, dtype))


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


def layer_outputs(model: nn.Sequential, spec, x: np.ndarray) -> list[np.ndarray]:
    """Inference-mode output of every spec layer (already in the spec's layout)."""
    outs, h = [], torch.from_numpy(np.ascontiguousarray(x, np.float32))
    model.eval()
    with torch.no_grad():
        for row in spec.rows:
            h = getattr(model, row.name)(h)
            outs.append(h.numpy().copy())
    return outs


def layer_output_shapes(model: nn.Sequential, spec) -> list[tuple]:
    return [o.shape[1:] for o in layer_outputs(model, spec, np.zeros((1,) + spec.input_shape))]


def gradients(model, spec, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    """Training-mode cross-entropy (on logits) of one batch and its parameter gradients,
    in the neutral layout."""
    from .. import weights as W

    model.train()
    model.zero_grad(set_to_none=True)
    dtype = next(model.parameters()).dtype
    loss = F.cross_entropy(model(torch.from_numpy(np.ascontiguousarray(x)).to(dtype)),
                           torch.from_numpy(y.astype(np.int64)))
    loss.backward()
    grads = {}
    for name in W.shapes(spec):
        row, kind = name.split(".")
        if kind in L.STATE_WEIGHTS:
            continue
        grads[name] = getattr(_core(model, row), _NEUTRAL[kind]).grad.double().numpy()
    return float(loss.detach()), grads


def predict(model: nn.Module, spec, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Inference-mode outputs for (N, C, H, W) input, as a numpy array (the torch layout
    is the spec's)."""
    model.eval()
    dtype = next(model.parameters(), torch.empty(0)).dtype
    with torch.no_grad():
        return np.concatenate([
            model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(dtype)).numpy()
            for i in range(0, len(x), batch_size)
        ])


# -- weights in the neutral form (mnistcnn.weights) -----------------------------------
_NEUTRAL = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
            "moving_mean": "running_mean", "moving_variance": "running_var"}


def _core(model, row_name: str) -> nn.Module:
    child = getattr(model, row_name)
    return child.op if isinstance(child, nn.Sequential) else child


def get_weights(model, spec) -> dict:
    """Neutral arrays: the torch layout already is the neutral one (C, H, W order)."""
    from .. import weights as W

    return {name: getattr(_core(model, name.split(".")[0]), _NEUTRAL[name.split(".")[1]])
            .detach().cpu().numpy().copy() for name in W.shapes(spec)}


def set_weights(model, spec, weights: dict) -> None:
    from .. import weights as W

    W.check(spec, weights)
    with torch.no_grad():
        for name, value in weights.items():
            row, kind = name.split(".")
            getattr(_core(model, row), _NEUTRAL[kind]).copy_(torch.from_numpy(np.asarray(value)))


# -- training -------------------------------------------------------------------------
def _optimizer(params, opt):
    """A stock torch.optim optimizer: PyTorch's formulas are both its native ones and the
    harmonized reference, so ``opt.formulas`` changes nothing here."""
    name, lr, wd = opt.name, opt.lr, opt.weight_decay
    # fused: one kernel per step instead of a dozen foreach passes (benchmarks/: 1.06x
    # for seed000-cnn); PyTorch has no fused RMSprop or Adadelta
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


def resolve_device(device: str) -> tuple[str, str]:
    from .. import runtime
    from ..errors import ConfigError

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = torch.backends.mps.is_available()
    if device == "auto":
        device = "cuda" if cuda else "mps" if mps else "cpu"
    kind, _, index = device.partition(":")
    build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a build without CUDA")
    if kind == "cuda":
        i = int(index or 0)
        if i >= cuda:
            raise ConfigError(f"--device {device}: PyTorch sees {cuda} CUDA device(s) ({build}). Use --device "
                              "cpu, or auto to take a GPU when there is one.")
        return f"cuda:{i}", torch.cuda.get_device_name(i)
    if kind == "mps":
        if not mps:
            raise ConfigError(f"--device mps: PyTorch sees no Apple MPS device ({build}, {sys.platform}). Use "
                              "--device cpu, or auto.")
        return "mps", "Apple MPS"
    return "cpu", runtime.cpu_name()


def start_run(threads: int | None) -> None:
    """Deterministic algorithms and the thread count, for the whole process (on a GPU,
    cuBLAS needs a fixed workspace to be deterministic: CUBLAS_WORKSPACE_CONFIG, read
    when CUDA starts, set here unless the user has)."""
    if threads is not None:
        torch.set_num_threads(threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    # filling every new tensor with NaN is a debugging aid, not what makes the runs
    # repeatable (the tests check that they are); it cost 3-4% of a seed000-cnn step
    torch.utils.deterministic.fill_uninitialized_memory = False


def environment() -> dict:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "mkldnn": torch.backends.mkldnn.is_available()}


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
        # channels_last: oneDNN's preferred layout on CPU (benchmarks/: 1.22x for seed000-cnn)
        self.model = build(spec, bn_rules=bn_rules)
        if weights is not None:
            set_weights(self.model, spec, weights)
        self.model = self.model.to(self.device, memory_format=torch.channels_last)
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
        order = torch.from_numpy(order).to(self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
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
        loss_sum, preds = 0.0, []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = torch.from_numpy(x[start:start + batch_size]).to(self.device).contiguous(
                    memory_format=torch.channels_last)
                with self.autocast:
                    logits = self.model(xb).float()
                yb = torch.from_numpy(y[start:start + batch_size].astype(np.int64)).to(self.device)
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                preds.append(logits.argmax(1).cpu().numpy())
        preds = np.concatenate(preds)
        return loss_sum / len(x), float((preds == y).mean()), preds

    def get_weights(self) -> dict:
        return get_weights(self.model, self.spec)

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

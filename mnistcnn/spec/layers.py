"""Framework-neutral layer kinds: frozen dataclasses that own every fact the rest of the
package asks of them. Pure Python: nothing here imports a framework or numpy.

The layer-kind contract (docs/architecture.md): each kind declares
  - ``output_shape(in_shape)`` and ``macs(in_shape)``;
  - ``weight_shapes(in_shape)``: its weights by neutral name and shape (channels first),
    from which the trainable and state counts follow (``STATE_WEIGHTS`` are state), and
    ``weight_layouts``: the layout of each (one of ``WEIGHT_LAYOUTS``), from which each
    backend's weight translation follows;
  - ``has_training_mode``: whether it behaves differently in training;
  - ``per_feature``: whether output feature i depends on input feature i alone, so that a
    permutation of flat features (Keras' H, W, C flatten order) passes through it;
  - ``flattens``: whether it flattens a map element by element, in an order that differs
    between frameworks ((C, H, W) in PyTorch, (H, W, C) in Keras).
Defining a public subclass of Layer registers it in LAYER_KINDS (and so in the spec's and
the package's exports). Each backend has one entry per kind (its builder, native classes
and importer: ``KINDS``), and mnistcnn.reference one numpy forward per kind;
tests/test_layers.py runs every kind of LAYER_KINDS through all of them.

Shapes are (C, H, W) for feature maps and (F,) for flat vectors, batch excluded.
Every argument is validated at construction ("Expected ... Received ..."); a layer
that cannot take the shape it is given raises SpecError from ``output_shape``, and
ModelSpec adds which layer of which spec it was.
"""
from __future__ import annotations

import math
from dataclasses import MISSING as _MISSING
from dataclasses import dataclass, field, fields
from typing import ClassVar

from ..errors import SpecError
from .shapes import window_1d

Shape = tuple  # (C, H, W) or (F,)
Padding = str | int | tuple

#: Activation names a Conv2D/Dense may carry inline (no parameters of their own).
INLINE_ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "gelu")
#: Every name the Activation layer accepts.
ACTIVATIONS = INLINE_ACTIVATIONS + ("leaky_relu",)

#: Weight names that are non-trainable state (BatchNorm running statistics).
STATE_WEIGHTS = ("moving_mean", "moving_variance")

#: The layouts of a neutral weight (``Layer.weight_layouts``); each backend translates
#: each layout to and from its own once:
#: a convolution kernel (out, in, kh, kw);
CONV_KERNEL = "conv_kernel"
#: a dense kernel (out, in), its inputs in the spec's (C, H, W) flatten order;
DENSE_KERNEL = "dense_kernel"
#: one value per output feature (a bias);
PER_OUTPUT = "per_output"
#: one value per input feature along the layer's axis (BatchNorm's scale, shift and
#: statistics): on a flat input, in the flatten order of the features it normalises.
PER_INPUT = "per_input"
WEIGHT_LAYOUTS = (CONV_KERNEL, DENSE_KERNEL, PER_OUTPUT, PER_INPUT)

#: BatchNorm (momentum, epsilon) of each framework's own layer, in the spec's convention.
BN_PRESETS = {
    "torch": {"momentum": 0.9, "epsilon": 1e-5},  # torch momentum=0.1 means keep 0.9
    "keras": {"momentum": 0.99, "epsilon": 1e-3},
}


def _invalid(cls: str, arg: str, expected: str, value) -> SpecError:
    return SpecError(
        f"Invalid value for argument `{arg}` of {cls}. Expected {expected}. "
        f"Received {arg}={value!r}.",
        arguments=(),  # a layer's argument, never a command-line flag (BatchNorm's momentum is not --momentum)
    )


def _pair(cls: str, arg: str, value, allow_zero: bool = False) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        pair = tuple(value)
    else:
        pair = (value, value)
    low = 0 if allow_zero else 1
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in pair):
        what = "non-negative" if allow_zero else "strictly positive"
        raise _invalid(cls, arg, f"a {what} integer or a pair of them", value)
    return pair


def _finite(cls: str, arg: str, value, expected: str, ok) -> None:
    """A real number (not a bool), finite and ``ok``: NaN and inf are refused here, not met
    later as a diverged loss."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise _invalid(cls, arg, expected, value)


def _positive_int(cls: str, arg: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _invalid(cls, arg, "a strictly positive integer", value)


def _activation(cls: str, value) -> None:
    if value is None or value in INLINE_ACTIVATIONS:
        return
    if value == "leaky_relu":
        raise SpecError(
            f"{cls}(activation='leaky_relu') hides the slope, which differs between "
            "frameworks (Keras 0.3, PyTorch 0.01). Use activation=None followed by "
            "Activation('leaky_relu', negative_slope=...)."
        )
    raise _invalid(cls, "activation", f"None or one of {list(INLINE_ACTIVATIONS)}", value)


def _fmt(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def _need_map(layer: Layer, in_shape: Shape) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise SpecError(
            f"{type(layer).__name__} needs a feature map (C, H, W) but receives a flat "
            f"vector of {in_shape[0]}; put it before Flatten()"
        )
    return in_shape


#: spellings users bring from Keras or PyTorch -> the spec's argument name
ALIASES = {"strides": "stride", "kernel": "kernel_size", "p": "rate", "out_features": "units", "eps": "epsilon"}


class _LayerType(type):
    """Constructs layers: takes the other frameworks' spellings of an argument (strides=,
    eps=, out_features=, p=) and turns a wrong call into a SpecError that shows the kind's
    arguments and, where one is known, the confusion behind it (``usage``)."""

    def __call__(cls, *args, **kwargs):
        names = {f.name for f in fields(cls)} if hasattr(cls, "__dataclass_fields__") else set()
        for alias, name in ALIASES.items():
            if alias in kwargs and alias not in names and name in names and name not in kwargs:
                kwargs[name] = kwargs.pop(alias)
        try:
            return super().__call__(*args, **kwargs)
        except TypeError as e:
            required = {f.name for f in fields(cls) if f.default is _MISSING and f.default_factory is _MISSING}
            signature = ", ".join(f.name if f.name in required else f"{f.name}=..." for f in fields(cls))
            raise SpecError(f"{cls.__name__}({signature}): {e}. {cls.usage}".strip()) from None


#: The closed set of layer kinds, by the name used in JSON and in error messages: every
#: public subclass of Layer, in the order they are defined.
LAYER_KINDS: dict[str, type[Layer]] = {}


class Layer(metaclass=_LayerType):
    """Base of every layer kind. Subclasses are frozen dataclasses; a public one (a name
    without a leading underscore) is a layer kind, registered in LAYER_KINDS."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            if cls.__name__ in LAYER_KINDS:
                raise TypeError(f"a layer kind named {cls.__name__} is already defined")
            LAYER_KINDS[cls.__name__] = cls

    #: what a wrong call to this kind most likely meant (shown with the error)
    usage: ClassVar[str] = ""

    #: Whether the layer changes behaviour between training and inference.
    has_training_mode: ClassVar[bool] = False
    #: Whether output feature i depends on input feature i alone (BatchNorm, dropout,
    #: activations): a permutation of flat features passes through unchanged.
    per_feature: ClassVar[bool] = False
    #: Whether the layer flattens a (C, H, W) map element by element (each framework in
    #: its own layout's order: the first Dense after it needs its rows permuted).
    flattens: ClassVar[bool] = False
    #: The layout (one of WEIGHT_LAYOUTS) of each weight ``weight_shapes`` may name.
    weight_layouts: ClassVar[dict[str, str]] = {}
    #: What a padded cell holds for a sliding-window kind with padding='same' (0 for a
    #: convolution, -inf for max pooling); None: padded cells are left out, or no padding.
    pad_value: ClassVar[float | None] = None

    def output_shape(self, in_shape: Shape) -> Shape:
        return in_shape

    def weight_shapes(self, in_shape: Shape) -> dict[str, tuple]:
        """Neutral name -> shape of every weight, in the order the frameworks list them:
        kernels (out, in, kh, kw) or (out, in); biases and per-channel vectors (C,)."""
        return {}

    def trainable_params(self, in_shape: Shape) -> int:
        return sum(math.prod(s) for n, s in self.weight_shapes(in_shape).items()
                   if n.rsplit(".", 1)[-1] not in STATE_WEIGHTS)

    def state_params(self, in_shape: Shape) -> int:
        """Non-trainable state that the model carries (BatchNorm running statistics)."""
        return sum(math.prod(s) for n, s in self.weight_shapes(in_shape).items()
                   if n.rsplit(".", 1)[-1] in STATE_WEIGHTS)

    def macs(self, in_shape: Shape) -> int:
        """Forward multiply-adds for one example (convolutions and dense products)."""
        return 0

    def parts(self, in_shape: Shape) -> dict:
        """A composite kind's inner chains by part name ('body', 'shortcut'), each a ModelSpec
        on this layer's input; {} for every other kind. Their rows are named by their path
        ('residual_3.body.conv2d_0'), and so are their weights."""
        return {}

    def to_dict(self) -> dict:
        d: dict = {"kind": type(self).__name__}
        for f in fields(self):  # type: ignore[arg-type]  # every kind is a dataclass
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d


@dataclass(frozen=True)
class Conv2D(Layer):
    """2-D convolution. padding: 'valid', 'same' (TensorFlow's placement) or explicit ints."""

    filters: int
    kernel_size: int | tuple = 3
    # keyword-only: Conv2D(1, 32, 3), PyTorch's (in, out, kernel) order, must not read as a stride
    stride: int | tuple = field(default=1, kw_only=True)
    padding: Padding = field(default="valid", kw_only=True)
    activation: str | None = field(default=None, kw_only=True)
    use_bias: bool = field(default=True, kw_only=True)
    usage: ClassVar[str] = ("Conv2D takes filters and kernel_size positionally, as Keras' Conv2D does, and the rest "
                            "by keyword; the input channels come from the previous layer, so PyTorch's "
                            "Conv2d(in_channels, out_channels, kernel_size) is Conv2D(out_channels, kernel_size).")

    def __post_init__(self):
        _positive_int("Conv2D", "filters", self.filters)
        object.__setattr__(self, "kernel_size", _pair("Conv2D", "kernel_size", self.kernel_size))
        object.__setattr__(self, "stride", _pair("Conv2D", "stride", self.stride))
        if self.padding not in ("valid", "same"):
            try:
                pad = _pair("Conv2D", "padding", self.padding, allow_zero=True)
            except SpecError:
                raise _invalid(
                    "Conv2D", "padding", "'valid', 'same' or non-negative int(s)", self.padding
                ) from None
            object.__setattr__(self, "padding", pad)
        _activation("Conv2D", self.activation)
        if not isinstance(self.use_bias, bool):
            raise _invalid("Conv2D", "use_bias", "True or False", self.use_bias)

    def pads(self, in_shape: Shape) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) zero padding for this input."""
        return _window(self, in_shape)[1]

    window_arg: ClassVar[str] = "kernel_size"  # the argument named in a too-small-input error
    weight_layouts: ClassVar[dict[str, str]] = {"kernel": CONV_KERNEL, "bias": PER_OUTPUT}
    pad_value: ClassVar[float | None] = 0.0

    @property
    def window(self) -> tuple[int, int]:
        return self.kernel_size  # type: ignore[return-value]  # a pair after __post_init__

    def output_shape(self, in_shape):
        return (self.filters,) + _window(self, in_shape)[0]

    def weight_shapes(self, in_shape):
        c = _need_map(self, in_shape)[0]
        return {"kernel": (self.filters, c) + self.kernel_size,
                **({"bias": (self.filters,)} if self.use_bias else {})}

    def macs(self, in_shape):
        c = in_shape[0]
        kh, kw = self.kernel_size
        _, h, w = self.output_shape(in_shape)
        return h * w * self.filters * kh * kw * c


def _window(layer, in_shape):
    """Output (H, W) and pads of a sliding-window layer, or SpecError if it cannot fit."""
    _, h, w = _need_map(layer, in_shape)
    kh, kw = layer.window
    sh, sw = layer.stride
    pad = layer.padding
    ph, pw = (pad, pad) if isinstance(pad, str) else pad
    oh, top, bottom = window_1d(h, kh, sh, ph)
    ow, left, right = window_1d(w, kw, sw, pw)
    if oh < 1 or ow < 1:
        what = layer.window_arg
        extra = "" if (top + bottom + left + right) else " (padding='valid')"
        raise SpecError(
            f"input is {h}x{w} but {what}={kh}x{kw}{extra} needs at least "
            f"{kh - top - bottom}x{kw - left - right}; use padding='same', a smaller "
            f"{what}, or fewer poolings before it"
        )
    return (oh, ow), ((top, bottom), (left, right))


@dataclass(frozen=True)
class _Pool(Layer):
    pool_size: int | tuple = 2
    stride: int | tuple | None = None  # None: the pool size, as in both frameworks
    padding: str = "valid"

    def __post_init__(self):
        name = type(self).__name__
        object.__setattr__(self, "pool_size", _pair(name, "pool_size", self.pool_size))
        stride = self.pool_size if self.stride is None else self.stride
        object.__setattr__(self, "stride", _pair(name, "stride", stride))
        if self.padding not in ("valid", "same"):
            raise _invalid(name, "padding", "'valid' or 'same'", self.padding)

    window_arg: ClassVar[str] = "pool_size"

    @property
    def window(self) -> tuple[int, int]:
        return self.pool_size  # type: ignore[return-value]  # a pair after __post_init__

    def pads(self, in_shape):
        return _window(self, in_shape)[1]

    def output_shape(self, in_shape):
        return (in_shape[0],) + _window(self, in_shape)[0]


@dataclass(frozen=True)
class MaxPool2D(_Pool):
    """Max pooling; 'same' pads with -inf (padded cells never win)."""

    pad_value: ClassVar[float | None] = -math.inf


@dataclass(frozen=True)
class AvgPool2D(_Pool):
    """Average pooling; with 'same', padded cells are excluded from the average
    (TensorFlow's rule; PyTorch's count_include_pad=True default is not used)."""


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation over the channel axis (C of a map, F of a vector).

    momentum follows the Keras convention: running = momentum * running + (1 - momentum)
    * batch (PyTorch's momentum argument is 1 - this). Both values are explicit; use
    ``BatchNorm.preset('torch')`` or ``BatchNorm.preset('keras')`` for the native defaults.
    """

    momentum: float
    epsilon: float
    has_training_mode: ClassVar[bool] = True
    per_feature: ClassVar[bool] = True
    weight_layouts: ClassVar[dict[str, str]] = dict.fromkeys(("gamma", "beta", "moving_mean", "moving_variance"),
                                                             PER_INPUT)
    usage: ClassVar[str] = ("BatchNorm needs momentum and epsilon, because the frameworks' defaults differ: "
                            "BatchNorm.preset('torch') is (0.9, 1e-5), BatchNorm.preset('keras') (0.99, 1e-3). "
                            "momentum is Keras' (the share of the running value kept): PyTorch's momentum=0.1 "
                            "is 0.9 here.")

    def __post_init__(self):
        _finite(type(self).__name__, "momentum", self.momentum, "a number in [0, 1)", lambda v: 0 <= v < 1)
        _finite(type(self).__name__, "epsilon", self.epsilon, "a finite, strictly positive number", lambda v: v > 0)

    @classmethod
    def preset(cls, framework: str) -> BatchNorm:
        if framework not in BN_PRESETS:
            raise _invalid("BatchNorm.preset", "framework", f"one of {list(BN_PRESETS)}", framework)
        return cls(**BN_PRESETS[framework])

    def weight_shapes(self, in_shape):
        c = (in_shape[0],)
        return {"gamma": c, "beta": c, "moving_mean": c, "moving_variance": c}


@dataclass(frozen=True)
class Dropout(Layer):
    rate: float
    has_training_mode: ClassVar[bool] = True
    per_feature: ClassVar[bool] = True

    def __post_init__(self):
        _finite(type(self).__name__, "rate", self.rate, "a number in [0, 1)", lambda v: 0 <= v < 1)


@dataclass(frozen=True)
class SpatialDropout2D(Dropout):
    """Drops whole channels (PyTorch Dropout2d, Keras SpatialDropout2D)."""

    def output_shape(self, in_shape):
        return _need_map(self, in_shape)


@dataclass(frozen=True)
class Flatten(Layer):
    """Flattens a (C, H, W) map to (C*H*W,). Backends keep their native element order."""

    flattens: ClassVar[bool] = True

    def output_shape(self, in_shape):
        return (math.prod(in_shape),)


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected layer; its input width is inferred from the previous layer."""

    units: int
    activation: str | None = None
    use_bias: bool = True
    weight_layouts: ClassVar[dict[str, str]] = {"kernel": DENSE_KERNEL, "bias": PER_OUTPUT}

    def __post_init__(self):
        _positive_int("Dense", "units", self.units)
        _activation("Dense", self.activation)
        if not isinstance(self.use_bias, bool):
            raise _invalid("Dense", "use_bias", "True or False", self.use_bias)

    def output_shape(self, in_shape):
        if len(in_shape) != 1:
            raise SpecError(
                f"Dense needs a flat input but receives a {_fmt(in_shape)} map (C x H x W); "
                "add Flatten() before it"
            )
        return (self.units,)

    def weight_shapes(self, in_shape):
        return {"kernel": (self.units, in_shape[0]),
                **({"bias": (self.units,)} if self.use_bias else {})}

    def macs(self, in_shape):
        return in_shape[0] * self.units


@dataclass(frozen=True)
class Activation(Layer):
    """An activation as its own layer. leaky_relu needs negative_slope (Keras 0.3 and
    PyTorch 0.01 differ, so the spec never leaves it implicit); elu takes alpha."""

    name: str
    negative_slope: float | None = None
    alpha: float = 1.0
    per_feature: ClassVar[bool] = True  # softmax mixes features, but permutes with them

    def __post_init__(self):
        if self.name not in ACTIVATIONS:
            raise _invalid("Activation", "name", f"one of {list(ACTIVATIONS)}", self.name)
        if self.name == "leaky_relu":
            _finite("Activation('leaky_relu')", "negative_slope", self.negative_slope,
                    "an explicit, finite, non-negative number (Keras default 0.3, PyTorch 0.01)", lambda v: v >= 0)
        elif self.negative_slope is not None:
            raise _invalid(
                f"Activation({self.name!r})", "negative_slope", "None (only leaky_relu has one)",
                self.negative_slope,
            )
        _finite("Activation", "alpha", self.alpha, "a finite, strictly positive number", lambda v: v > 0)


@dataclass(frozen=True)
class GlobalAvgPool2D(Layer):
    """The mean of each channel over its whole map: (C, H, W) -> (C,), in channel order
    in every framework (unlike Flatten, nothing to permute)."""

    def output_shape(self, in_shape):
        return (_need_map(self, in_shape)[0],)


@dataclass(frozen=True)
class GlobalMaxPool2D(Layer):
    """The maximum of each channel over its whole map: (C, H, W) -> (C,), in channel order."""

    def output_shape(self, in_shape):
        return (_need_map(self, in_shape)[0],)


@dataclass(frozen=True)
class HeightBatchNorm(BatchNorm):
    """Batch normalisation over the HEIGHT axis of a (C, H, W) map: one mean, variance,
    gamma and beta per image row, computed over the batch, the width and the channels.

    This is what Keras' ``BatchNormalization(axis=1)`` does on channels_last data, the
    mistake of report 004 (its 44 = 4 x 11 weights); it exists so that such a model can be
    counted, trained and compared as published. PyTorch has no such layer: the torch
    backend swaps the channel and height axes around a BatchNorm2d(H).
    """

    def weight_shapes(self, in_shape):
        h = (_need_map(self, in_shape)[1],)
        return {"gamma": h, "beta": h, "moving_mean": h, "moving_variance": h}


def _chain(cls: str, arg: str, value, allow_none: bool = False) -> tuple | None:
    if allow_none and (value is None or (isinstance(value, (list, tuple)) and not value)):
        return None
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, Layer) for v in value):
        raise _invalid(cls, arg, "a non-empty list of layers" + (" or None (the identity)" if allow_none else ""),
                       value)
    return tuple(value)


@dataclass(frozen=True)
class Residual(Layer):
    """A residual block: ``body`` (a list of layers) applied to the input, plus the input
    itself (``shortcut=None``) or a projection of it (``shortcut``: a list of layers, e.g.
    ``[Conv2D(32, 1, stride=2)]``), merged by addition. It takes a feature map, and the body
    and the shortcut must give the same shape. Its rows and weights are named by their path:
    ``residual_3.body.conv2d_0.kernel``. Mult-adds count the body's and the shortcut's
    products; the addition, like a bias, is not counted (Keras' and torchinfo's convention)."""

    body: tuple
    shortcut: tuple | None = None
    usage: ClassVar[str] = ("Residual(body=[layers], shortcut=None or [layers]): the output is body(x) + x, or "
                            "body(x) + shortcut(x) where the shapes differ.")

    def __post_init__(self):
        object.__setattr__(self, "body", _chain("Residual", "body", self.body))
        object.__setattr__(self, "shortcut", _chain("Residual", "shortcut", self.shortcut, allow_none=True))

    @property
    def has_training_mode(self) -> bool:  # type: ignore[override]
        return any(l.has_training_mode for l in self.body + (self.shortcut or ()))

    @property
    def weight_layouts(self) -> dict[str, str]:  # type: ignore[override]
        out: dict[str, str] = {}
        for part, layers in (("body", self.body), ("shortcut", self.shortcut or ())):
            for i, layer in enumerate(layers):
                out.update((f"{part}.{type(layer).__name__.lower()}_{i}.{n}", v)
                           for n, v in layer.weight_layouts.items())
        return out

    def parts(self, in_shape):
        from .model import ModelSpec

        _need_map(self, in_shape)
        specs = {}
        for part, layers in (("body", self.body), ("shortcut", self.shortcut)):
            if layers is not None:
                try:
                    specs[part] = ModelSpec(part, layers, in_shape)
                except SpecError as e:
                    raise SpecError(f"its {part}: {e}") from None
        return specs

    def output_shape(self, in_shape):
        parts = self.parts(in_shape)
        body = parts["body"].output_shape
        other = parts["shortcut"].output_shape if "shortcut" in parts else in_shape
        if body != other:
            what = "the shortcut" if "shortcut" in parts else "its input (the identity shortcut)"
            fix = ("change the shortcut so that it gives " + _fmt(body)) if "shortcut" in parts else (
                "give it a projection shortcut, e.g. shortcut=[Conv2D(" + str(body[0]) + ", 1" + (
                    f", stride={in_shape[1] // body[1]}" if len(body) == 3 and body[1] and in_shape[1] % body[1] == 0
                    and body[1] != in_shape[1] else "") + ")], or keep the body's shape")
            raise SpecError(f"Residual's body gives {_fmt(body)} but {what} is {_fmt(other)}: the two are added, "
                            f"so their shapes must agree; {fix}")
        return body

    def weight_shapes(self, in_shape):
        return {f"{part}.{r.name}.{n}": shape for part, spec in self.parts(in_shape).items()
                for r in spec.rows for n, shape in r.layer.weight_shapes(r.input_shape).items()}

    def macs(self, in_shape):
        return sum(spec.macs for spec in self.parts(in_shape).values())

    def to_dict(self) -> dict:
        return {"kind": "Residual", "body": [l.to_dict() for l in self.body],
                "shortcut": None if self.shortcut is None else [l.to_dict() for l in self.shortcut]}

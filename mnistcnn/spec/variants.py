"""Variants of a spec, as the reference studies vary them: with or without batch norm,
another activation, pooling, hidden width, kernel size or number of conv blocks.
Each returns a new ModelSpec (validated as usual); names record the change."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..errors import SpecError
from . import layers as S
from .model import ModelSpec


def _new(spec, layers, change: str) -> ModelSpec:
    return ModelSpec(f"{spec.name}[{change}]", layers, spec.input_shape)


def _hidden_indices(spec) -> set:
    """Conv2D and Dense layers other than the last weighted layer (the classifier)."""
    weighted = [i for i, l in enumerate(spec.layers) if isinstance(l, (S.Conv2D, S.Dense))]
    return set(weighted[:-1])


def without_batchnorm(spec) -> ModelSpec:
    """The spec without its BatchNorm layers (the spec itself if it has none)."""
    if not any(isinstance(l, S.BatchNorm) for l in spec.layers):
        return spec
    return _new(spec, [l for l in spec.layers if not isinstance(l, S.BatchNorm)], "no-bn")


def with_batchnorm(spec, bn: S.BatchNorm) -> ModelSpec:
    """BatchNorm ``bn`` after every hidden conv and dense layer, before its activation
    (the reference report's variant). A spec that already has BatchNorm is returned as is."""
    if any(isinstance(l, S.BatchNorm) for l in spec.layers):
        return spec
    hidden, layers = _hidden_indices(spec), []
    for i, layer in enumerate(spec.layers):
        if i in hidden:
            layers += [replace(layer, activation=None), bn]
            if layer.activation:
                layers.append(S.Activation(layer.activation))
        else:
            layers.append(layer)
    return _new(spec, layers, "bn")


def batchnorm_pair(spec, bn: S.BatchNorm) -> dict:
    """{'no-bn': spec without BatchNorm, 'bn': spec with BatchNorm ``bn``} for the BN
    comparison; {'as-is': spec} where there is no layer to put BatchNorm after (a lone
    classifier such as simple-fc): the pair would be the same model twice. A spec with
    composite layers (Residual) has no such pair: its BatchNorms belong to its blocks."""
    blocks = [r.name for r in spec.rows if r.layer.parts(r.input_shape)]
    if blocks:
        raise SpecError(f"The BatchNorm pair (without BatchNorm, and with it after each hidden layer) is defined for "
                        f"chains of layers; {spec.name!r} has BatchNorm inside its blocks ({', '.join(blocks)}). "
                        "Compare it as given (--no-bn, bn=False).")
    plain = without_batchnorm(spec)
    with_bn = with_batchnorm(plain, bn)
    if with_bn.layers == plain.layers:
        return {"as-is": spec}
    return {"no-bn": plain, "bn": with_bn}


def with_batchnorm_settings(spec, bn: S.BatchNorm) -> ModelSpec:
    """Every BatchNorm of the spec takes ``bn``'s momentum and epsilon (same name: the
    architecture, and each BatchNorm's kind, are unchanged)."""
    return ModelSpec(spec.name, [replace(l, momentum=bn.momentum, epsilon=bn.epsilon)
                                 if isinstance(l, S.BatchNorm) else l for l in spec.layers],
                     spec.input_shape)


def batchnorm_axis(spec, axis: str) -> ModelSpec:
    """axis 'height': every BatchNorm on a map normalises the height axis instead of the
    channels (Keras' BatchNormalization(axis=1) on channels_last data, report 004's
    mistake); 'channel': the spec as it is."""
    if axis == "channel":
        return spec
    if axis != "height":
        raise SpecError(f"Unknown batchnorm_axis {axis!r}. Valid: channel, height.")
    rows = spec.rows
    layers = [S.HeightBatchNorm(l.momentum, l.epsilon)
              if isinstance(l, S.BatchNorm) and len(rows[i].input_shape) == 3 else l
              for i, l in enumerate(spec.layers)]
    return _new(spec, layers, "batchnorm_axis=height")


def logits_head(spec) -> ModelSpec:
    """The spec without a trailing softmax / log_softmax (an Activation layer, or the
    activation of the last Conv2D/Dense): what a cross-entropy loss on logits trains."""
    layers = list(spec.layers)
    while layers and isinstance(layers[-1], S.Activation) and layers[-1].name in ("softmax", "log_softmax"):
        layers.pop()
    if layers and isinstance(layers[-1], (S.Conv2D, S.Dense)) and layers[-1].activation in ("softmax", "log_softmax"):
        layers[-1] = replace(layers[-1], activation=None)
    return ModelSpec(spec.name, layers, spec.input_shape)


def without_dropout(spec) -> ModelSpec:
    """The spec without Dropout/SpatialDropout2D (their masks come from each framework's
    own generator, so layer-by-layer comparisons leave them out)."""
    return ModelSpec(spec.name, [l for l in spec.layers if not isinstance(l, S.Dropout)],
                     spec.input_shape)


def set_activation(spec, name: str) -> ModelSpec:
    """Every ReLU (inline or an Activation layer) becomes ``name``."""
    if name not in S.ACTIVATIONS or name == "leaky_relu":
        raise SpecError(f"Unknown activation {name!r} for a sweep. Valid: relu, sigmoid, tanh, elu, gelu.")
    layers = []
    for layer in spec.layers:
        if isinstance(layer, (S.Conv2D, S.Dense)) and layer.activation == "relu":
            layer = replace(layer, activation=name)
        elif isinstance(layer, S.Activation) and layer.name == "relu":
            layer = S.Activation(name)
        layers.append(layer)
    return _new(spec, layers, f"activation={name}")


def set_pooling(spec, kind: str) -> ModelSpec:
    cls = {"max": S.MaxPool2D, "avg": S.AvgPool2D}.get(kind)
    if cls is None:
        raise SpecError(f"Unknown pooling {kind!r}. Valid: max, avg.")
    layers = [cls(l.pool_size, l.stride, l.padding) if isinstance(l, (S.MaxPool2D, S.AvgPool2D)) else l
              for l in spec.layers]
    return _new(spec, layers, f"pooling={kind}")


def set_hidden(spec, units: int) -> ModelSpec:
    """Every hidden Dense layer gets ``units``; the classifier keeps its width."""
    hidden = _hidden_indices(spec)
    layers = [replace(l, units=units) if i in hidden and isinstance(l, S.Dense) else l
              for i, l in enumerate(spec.layers)]
    return _new(spec, layers, f"hidden={units}")


def set_kernel(spec, size: int) -> ModelSpec:
    layers = [replace(l, kernel_size=size) if isinstance(l, S.Conv2D) else l for l in spec.layers]
    return _new(spec, layers, f"kernel={size}")


def conv_blocks(spec, n: int) -> ModelSpec:
    """Keep the first ``n`` conv blocks (a Conv2D and what follows it up to the next
    Conv2D or Flatten); the classifier after Flatten is unchanged."""
    flatten = next((i for i, l in enumerate(spec.layers) if isinstance(l, S.Flatten)), None)
    if flatten is None:
        raise SpecError(f"Spec '{spec.name}' has no Flatten, so no conv blocks to count.")
    starts = [i for i, l in enumerate(spec.layers[:flatten]) if isinstance(l, S.Conv2D)]
    if not 1 <= n <= len(starts):
        raise SpecError(f"Spec '{spec.name}' has {len(starts)} conv blocks; cannot keep {n}.")
    end = starts[n] if n < len(starts) else flatten
    return _new(spec, list(spec.layers[:end]) + list(spec.layers[flatten:]), f"conv_blocks={n}")


#: sweep axis -> function(spec, value). Other axes are TrainConfig fields.
SPEC_AXES: dict[str, Callable[[ModelSpec, Any], ModelSpec]] = {
    "activation": set_activation,
    "pooling": set_pooling,
    "hidden": set_hidden,
    "kernel": set_kernel,
    "conv_blocks": conv_blocks,
    "batchnorm_axis": batchnorm_axis,
}

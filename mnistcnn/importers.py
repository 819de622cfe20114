"""Bring your own model: the spec (and the weights) of a Keras model or a PyTorch module.

``from_keras(model_or_path)`` reads a keras.Sequential, or a functional model that is a
straight chain, layer by layer from its configs; ``from_torch(module, input_shape)``
traces a PyTorch module with torch.fx (nn.Sequential, or a forward that is a straight
chain of modules and functional calls such as F.relu, F.max_pool2d, torch.flatten or
x.view(-1, n)); ``from_torchscript(path)`` reads a TorchScript module's graph the same way.
With ``with_weights=True`` each returns (spec, neutral weights): ``mnistcnn.build(spec,
other_backend)`` holding them computes the same function as the original.

The import is exact or refused: anything the spec cannot represent (dilation, groups, a
padding mode other than zeros, BatchNorm without its scale or on a non-channel axis, a
branch in the graph, an unknown layer) raises ImportError naming the layer, its type and
the argument, and listing what is supported. Nothing is approximated.
"""
from __future__ import annotations

from pathlib import Path

from . import spec as S
from .errors import MnistCnnError


class ModelImportError(MnistCnnError, ValueError):
    """A model that the spec cannot represent exactly."""


SUPPORTED_KERAS = ("InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "BatchNormalization", "Dropout",
                   "SpatialDropout2D", "Flatten", "Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
                   "GlobalAveragePooling2D")
SUPPORTED_TORCH = ("Conv2d", "Linear", "BatchNorm2d", "BatchNorm1d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d(1)",
                   "Dropout", "Dropout2d", "Flatten", "Identity", "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid",
                   "Tanh", "Softmax", "LogSoftmax", "and the functional forms F.relu, F.max_pool2d, "
                   "F.avg_pool2d, F.dropout, F.dropout2d, F.log_softmax, F.softmax, F.leaky_relu, F.elu, F.gelu, "
                   "torch.relu, torch.sigmoid, torch.tanh, torch.flatten, x.view(-1, n), x.view(x.size(0), -1), "
                   "x.reshape, x.flatten")
#: activation names the spec takes as they are (Keras' names; 'linear' is none)
_ACTIVATIONS = {"linear": None, "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax",
                "log_softmax": "log_softmax", "elu": "elu", "gelu": "gelu"}


def _refuse(where: str, what: str, supported) -> ModelImportError:
    listed = supported if isinstance(supported, str) else ", ".join(supported)
    return ModelImportError(f"Cannot import {where}: {what}. The spec represents it only exactly or not at all. "
                            f"Supported: {listed}.")


# -- Keras ----------------------------------------------------------------------------
def from_keras(model_or_path, with_weights: bool = False):
    """The ModelSpec of a Keras model (a keras.Model or a .keras/.h5 file); with
    ``with_weights``, (spec, neutral weights)."""
    from .backends import get_backend

    kb = get_backend("keras")  # Keras with mnistcnn's environment, before loading a file
    import keras

    model = model_or_path
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if not path.is_file():
            raise ModelImportError(f"{path} is not a file: give a .keras file saved with model.save().")
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as e:  # a damaged or foreign file: name it
            raise ModelImportError(f"{path} is not a readable Keras model ({type(e).__name__}: "
                                   f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}).") from None
    name = _safe_name(getattr(model, "name", None) or "keras-model")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise _refuse(f"Keras model {name!r}", f"it has {len(model.inputs)} inputs and {len(model.outputs)} "
                      "outputs; the spec is one chain from one image to one output", "a straight chain")
    shape = tuple(model.inputs[0].shape[1:])
    layers, weighted = [], {}  # weighted: spec index -> the Keras layer holding its weights
    if len(shape) == 1 and shape[0] == 784:
        input_shape = (1, 28, 28)  # flattened MNIST images: the same order as a (1, 28, 28) map flattened
        layers.append(S.Flatten())
    elif len(shape) == 2:
        input_shape = (1, *shape)
    elif len(shape) == 3:
        input_shape = (shape[2], shape[0], shape[1])
    else:
        raise _refuse(f"Keras model {name!r}", f"its input shape {shape} is not an image (H, W), (H, W, C) or a "
                      "flattened 28x28 image", "channels_last images")
    previous = model.inputs[0]
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        where = f"layer {layer.name!r} ({kind}) of Keras model {name!r}"
        chain = isinstance(model, keras.Sequential) or (  # a Sequential is a chain by construction
            len(getattr(layer, "_inbound_nodes", [None])) <= 1 and layer.input is previous)
        if not chain:
            raise _refuse(where, "the model is not a straight chain (this layer does not take the previous "
                          "layer's output, or is used twice)", "Sequential models and straight functional chains")
        previous = layer.output
        current = S.ModelSpec(name, layers, input_shape).output_shape if layers else input_shape
        for spec_layer, holds_weights in _keras_layer(layer, where, current):
            if holds_weights:
                weighted[len(layers)] = layer
            layers.append(spec_layer)
    spec = _spec(name, layers, input_shape, f"Keras model {name!r}")
    if not with_weights:
        return spec
    per_layer = {spec.rows[i].name: layer.get_weights() for i, layer in weighted.items()}
    return spec, kb.neutral_from_keras(spec, per_layer)


def _keras_layer(layer, where: str, in_shape) -> list:
    """[(spec layer, holds this Keras layer's weights)] for one Keras layer."""
    kind, c = type(layer).__name__, layer.get_config()

    def need(arg, ok, value):
        if not ok:
            raise _refuse(where, f"{arg}={value!r}", SUPPORTED_KERAS)

    def activation(value):
        if isinstance(value, str) and value == "leaky_relu":  # keras.activations.leaky_relu: slope 0.2
            return None, [S.Activation("leaky_relu", negative_slope=0.2)]
        if not (isinstance(value, str) and value in _ACTIVATIONS):
            raise _refuse(where, f"activation={value!r}", [*_ACTIVATIONS, "leaky_relu"])
        return _ACTIVATIONS[value], []

    if c.get("data_format", "channels_last") != "channels_last":
        need("data_format", False, c["data_format"])
    if kind in ("Conv2D", "Dense"):
        for arg in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                    "bias_constraint", "lora_rank"):
            need(arg, not c.get(arg), c.get(arg))
    if kind == "Conv2D":
        need("dilation_rate", tuple(c["dilation_rate"]) == (1, 1), c["dilation_rate"])
        need("groups", c.get("groups", 1) == 1, c.get("groups"))
        act, extra = activation(c["activation"])
        return [(S.Conv2D(c["filters"], tuple(c["kernel_size"]), stride=tuple(c["strides"]), padding=c["padding"],
                          activation=act, use_bias=c["use_bias"]), True)] + [(a, False) for a in extra]
    if kind == "Dense":
        need("input rank", len(in_shape) == 1, f"a Dense on a {len(in_shape)}-D map (Keras applies it per pixel)")
        act, extra = activation(c["activation"])
        return [(S.Dense(c["units"], activation=act, use_bias=c["use_bias"]), True)] + [(a, False) for a in extra]
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        cls = S.MaxPool2D if kind == "MaxPooling2D" else S.AvgPool2D
        strides = c["strides"] if c["strides"] is not None else c["pool_size"]
        return [(cls(tuple(c["pool_size"]), tuple(strides), c["padding"]), False)]
    if kind == "BatchNormalization":
        axis = c["axis"][0] if isinstance(c["axis"], (list, tuple)) and len(c["axis"]) == 1 else c["axis"]
        rank = len(in_shape) + 1
        if axis not in (-1, rank - 1):
            raise _refuse(where, f"axis={c['axis']!r} normalises over a non-channel axis of its "
                          f"{'(H, W, C)' if rank == 4 else 'input'} (see `mnistcnn defaults <spec>`: the lint "
                          "explains this mistake of report 004; spec.HeightBatchNorm reproduces axis=1 on purpose)",
                          "BatchNormalization on the channel axis (axis=-1)")
        for arg in ("center", "scale"):
            need(arg, c[arg], c[arg])
        for arg in ("beta_regularizer", "gamma_regularizer", "renorm", "synchronized"):
            need(arg, not c.get(arg), c.get(arg))
        return [(S.BatchNorm(momentum=float(c["momentum"]), epsilon=float(c["epsilon"])), True)]
    if kind == "Dropout":
        need("noise_shape", c.get("noise_shape") is None, c.get("noise_shape"))
        return [(S.Dropout(float(c["rate"])), False)]
    if kind == "SpatialDropout2D":
        return [(S.SpatialDropout2D(float(c["rate"])), False)]
    if kind == "Flatten":
        return [] if len(in_shape) == 1 else [(S.Flatten(), False)]
    if kind == "Activation":
        act, extra = activation(c["activation"])
        return ([(S.Activation(act), False)] if act else []) + [(a, False) for a in extra]
    if kind == "ReLU":
        need("max_value", c.get("max_value") is None, c.get("max_value"))
        need("threshold", not c.get("threshold"), c.get("threshold"))
        slope = float(c.get("negative_slope") or 0.0)
        return [(S.Activation("leaky_relu", negative_slope=slope) if slope else S.Activation("relu"), False)]
    if kind == "LeakyReLU":
        return [(S.Activation("leaky_relu", negative_slope=float(c.get("negative_slope", c.get("alpha")))), False)]
    if kind == "ELU":
        return [(S.Activation("elu", alpha=float(c.get("alpha", 1.0))), False)]
    if kind == "Softmax":
        need("axis", c.get("axis", -1) in (-1, len(in_shape)), c.get("axis"))
        return [(S.Activation("softmax"), False)]
    if kind == "GlobalAveragePooling2D":
        need("keepdims", not c.get("keepdims"), c.get("keepdims"))
        return [(S.GlobalAvgPool2D(), False)]
    raise _refuse(where, f"the layer type {kind} has no spec equivalent", SUPPORTED_KERAS)


# -- PyTorch --------------------------------------------------------------------------
def from_torch(module, input_shape=(1, 28, 28), with_weights: bool = False, name: str | None = None):
    """The ModelSpec of a PyTorch module, traced with torch.fx; with ``with_weights``,
    (spec, neutral weights)."""
    import torch.fx

    from .backends import get_backend

    get_backend("torch")
    name = _safe_name(name or type(module).__name__)
    was_training = module.training
    module.eval()  # so that F.dropout(x, training=self.training) traces as False, and a bare F.dropout as True
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception as e:
        raise ModelImportError(f"Cannot trace {type(module).__name__} with torch.fx ({type(e).__name__}: "
                               f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}): its forward "
                               "must be a straight chain without data-dependent control flow.") from None
    finally:
        module.train(was_training)
    steps = []
    for node in graph.nodes:
        if node.op == "call_module":
            steps.append(_Step(node, module.get_submodule(node.target), node.target))
        elif node.op in ("call_function", "call_method"):
            steps.append(_Step(node, None, getattr(node.target, "__name__", str(node.target))))
        elif node.op == "output":
            steps.append(_Step(node, None, "output"))
        elif node.op == "get_attr":
            raise _refuse(f"{type(module).__name__}", f"its forward reads the tensor {node.target!r} directly",
                          "modules and functional calls on the input")
    return _from_steps(steps, tuple(input_shape), name, with_weights, f"PyTorch module {type(module).__name__}")


def from_torchscript(path, input_shape=(1, 28, 28), with_weights: bool = False):
    """The ModelSpec of a TorchScript file (torch.jit.save) whose forward is a straight
    chain: its graph's calls of submodules and aten operations, read like an fx trace."""
    import torch

    from .backends import get_backend

    get_backend("torch")
    path = Path(path)
    import warnings

    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in PyTorch 2.x; the user's file is not
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise ModelImportError(f"{path} is not a readable TorchScript file ({type(e).__name__}).") from None
    steps = _torchscript_steps(scripted)
    return _from_steps(steps, tuple(input_shape), _safe_name(path.stem), with_weights, f"TorchScript file {path}")


class _Step:
    """One operation of a traced forward: the node (its args), the module it calls (if
    any) and a readable target name."""

    def __init__(self, node, module, target: str, args=None, kwargs=None):
        self.node, self.module, self.target = node, module, target
        self.args = list(node.args) if args is None else args
        self.kwargs = dict(node.kwargs) if kwargs is None else kwargs


def _from_steps(steps, input_shape, name, with_weights, what):
    layers, weighted, value = [], {}, None
    size_nodes = set()
    for step in steps:
        node = step.node
        where = f"{step.target} ({_module_kind(step.module) if step.module is not None else 'call'}) of {what}"
        if step.target == "output":
            break
        tensor_args = [a for a in step.args if _is_node(a)]
        if step.target == "size":  # x.size(0) feeding a view(x.size(0), -1): allowed only there
            size_nodes.add(node)
            continue
        if value is not None and (not tensor_args or tensor_args[0] is not value):
            raise _refuse(where, "the forward is not a straight chain (this call does not take the previous "
                          "result)", "straight chains")
        if any(a is not tensor_args[0] and a not in size_nodes for a in tensor_args[1:]):
            raise _refuse(where, "it combines two tensors (a branch or a residual connection)", "straight chains")
        current = S.ModelSpec(name, layers, input_shape).output_shape if layers else input_shape
        for spec_layer, holds in _torch_step(step, where, current):
            if holds:
                weighted[len(layers)] = step.module
            layers.append(spec_layer)
        value = node
    spec = _spec(name, layers, input_shape, what)
    if not with_weights:
        return spec
    from .backends.torch import _NEUTRAL

    weights = {}
    for i, module in weighted.items():
        row = spec.rows[i]
        for kind in row.layer.weight_shapes(row.input_shape):
            weights[f"{row.name}.{kind}"] = getattr(module, _NEUTRAL[kind]).detach().cpu().numpy().copy()
    from . import weights as W

    W.check(spec, weights)
    return spec, weights


def _is_node(a) -> bool:
    """A tensor flowing through the forward: an fx Node, a TorchScript operation's result,
    or a TorchScript tensor value (not a flag such as self.training)."""
    if isinstance(a, _ScriptNode):
        return True
    if isinstance(a, _ScriptValue):
        return a.value.type().kind() == "TensorType"
    return type(a).__name__ == "Node"


def _arg(step, i, name, default=None):
    if len(step.args) > i:
        return step.args[i]
    return step.kwargs.get(name, default)


def _torch_step(step, where: str, in_shape) -> list:
    """[(spec layer, holds the module's weights)] for one traced operation."""
    import torch
    import torch.nn.functional as F

    m, t = step.module, step.target

    def need(arg, ok, value):
        if not ok:
            raise _refuse(where, f"{arg}={value!r}", SUPPORTED_TORCH)

    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    def pool(cls, kernel, stride, padding, ceil=False, extra=()):
        need("padding", pair(padding) == (0, 0), padding)
        need("ceil_mode", not ceil, ceil)
        for arg, ok, value in extra:
            need(arg, ok, value)
        return [(cls(pair(kernel), pair(stride if stride else kernel)), False)]  # None or [] (TorchScript): kernel

    def flatten_to(n=None):
        if len(in_shape) == 1:
            return []  # already flat (after a global pooling)
        size = in_shape[0] * in_shape[1] * in_shape[2]
        need("view size", n in (None, -1, size), f"{n} (the map here has {size} = {'x'.join(map(str, in_shape))} "
             "values per image)")
        return [(S.Flatten(), False)]

    if m is not None:
        kind = _module_kind(m)
        if kind == "Conv2d":
            need("dilation", pair(m.dilation) == (1, 1), m.dilation)
            need("groups", m.groups == 1, m.groups)
            need("padding_mode", m.padding_mode == "zeros", m.padding_mode)
            need("in_channels", m.in_channels == in_shape[0], f"{m.in_channels} (the input here has {in_shape[0]})")
            padding = m.padding if isinstance(m.padding, str) else pair(m.padding)
            return [(S.Conv2D(m.out_channels, pair(m.kernel_size), stride=pair(m.stride), padding=padding,
                              use_bias=m.bias is not None), True)]
        if kind == "Linear":
            need("in_features", len(in_shape) == 1 and m.in_features == in_shape[0],
                 f"{m.in_features} (the input here is {'x'.join(map(str, in_shape))})")
            return [(S.Dense(m.out_features, use_bias=m.bias is not None), True)]
        if kind in ("BatchNorm2d", "BatchNorm1d"):
            need("affine", m.affine, m.affine)
            need("track_running_stats", m.track_running_stats, m.track_running_stats)
            need("momentum", m.momentum is not None, m.momentum)  # None: a cumulative average
            need("num_features", m.num_features == in_shape[0], m.num_features)
            return [(S.BatchNorm(momentum=1.0 - m.momentum, epsilon=m.eps), True)]  # PyTorch 0.1 = Keras 0.9
        if kind == "MaxPool2d":
            return pool(S.MaxPool2D, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                        [("dilation", pair(m.dilation) == (1, 1), m.dilation),
                         ("return_indices", not m.return_indices, m.return_indices)])
        if kind == "AvgPool2d":
            return pool(S.AvgPool2D, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                        [("divisor_override", m.divisor_override is None, m.divisor_override)])
        if kind == "AdaptiveAvgPool2d":
            need("output_size", pair(m.output_size) == (1, 1), m.output_size)
            return [(S.GlobalAvgPool2D(), False)]  # a flatten after it is then a no-op
        if kind == "Dropout2d":
            return [(S.SpatialDropout2D(m.p), False)]
        if kind == "Dropout":
            return [(S.Dropout(m.p), False)]
        if kind == "Flatten":
            need("start_dim", m.start_dim == 1 and m.end_dim == -1, (m.start_dim, m.end_dim))
            return flatten_to()
        if kind == "Identity":
            return []
        simple = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}
        if kind in simple:
            return [(S.Activation(simple[kind]), False)]
        if kind == "LeakyReLU":
            return [(S.Activation("leaky_relu", negative_slope=m.negative_slope), False)]
        if kind == "ELU":
            return [(S.Activation("elu", alpha=m.alpha), False)]
        if kind == "GELU":
            need("approximate", m.approximate == "none", m.approximate)
            return [(S.Activation("gelu"), False)]
        if kind in ("Softmax", "LogSoftmax"):
            need("dim", m.dim in (1, -1) and len(in_shape) == 1, m.dim)
            return [(S.Activation("softmax" if kind == "Softmax" else "log_softmax"), False)]
        raise _refuse(where, f"the module type {kind} has no spec equivalent", SUPPORTED_TORCH)

    fn = step.node.target if not isinstance(step.node.target, str) else None
    name = t.split(".")[-1].lstrip("_")
    if fn in (F.relu, torch.relu) or name == "relu":
        return [(S.Activation("relu"), False)]
    if fn in (torch.sigmoid, F.sigmoid) or name == "sigmoid":
        return [(S.Activation("sigmoid"), False)]
    if fn in (torch.tanh, F.tanh) or name == "tanh":
        return [(S.Activation("tanh"), False)]
    if fn is F.leaky_relu or name == "leaky_relu":
        return [(S.Activation("leaky_relu", negative_slope=float(_arg(step, 1, "negative_slope", 0.01))), False)]
    if fn is F.elu or name == "elu":
        return [(S.Activation("elu", alpha=float(_arg(step, 1, "alpha", 1.0))), False)]
    if fn is F.gelu or name == "gelu":
        need("approximate", _arg(step, 1, "approximate", "none") == "none", _arg(step, 1, "approximate"))
        return [(S.Activation("gelu"), False)]
    if fn in (F.softmax, F.log_softmax) or name in ("softmax", "log_softmax"):
        dim = _arg(step, 1, "dim")
        need("dim", dim in (1, -1) and len(in_shape) == 1, dim)
        log = fn is F.log_softmax or name == "log_softmax"
        return [(S.Activation("log_softmax" if log else "softmax"), False)]
    if fn is F.max_pool2d or name in ("max_pool2d", "max_pool2d_with_indices"):
        return pool(S.MaxPool2D, _arg(step, 1, "kernel_size"), _arg(step, 2, "stride"), _arg(step, 3, "padding", 0),
                    _arg(step, 5, "ceil_mode", False), [("dilation", pair(_arg(step, 4, "dilation", 1)) == (1, 1),
                                                          _arg(step, 4, "dilation", 1))])
    if fn is F.avg_pool2d or name == "avg_pool2d":
        return pool(S.AvgPool2D, _arg(step, 1, "kernel_size"), _arg(step, 2, "stride"), _arg(step, 3, "padding", 0),
                    _arg(step, 4, "ceil_mode", False),
                    [("divisor_override", _arg(step, 6, "divisor_override") is None, _arg(step, 6, "divisor_override"))])
    if fn in (F.dropout, F.dropout2d) or name in ("dropout", "dropout2d", "feature_dropout"):
        p = float(_arg(step, 1, "p", 0.5))
        if _arg(step, 2, "training", True) is True:  # F.dropout's default: on in inference too
            raise _refuse(where, f"F.{name}(x, p={p:g}) without training=self.training stays on when the model "
                          "is evaluated (F.dropout's default is training=True); the spec's dropout is off in "
                          f"inference. Write F.{name}(x, p={p:g}, training=self.training) or use nn.Dropout",
                          SUPPORTED_TORCH)
        return [(S.SpatialDropout2D(p) if fn is F.dropout2d or name in ("dropout2d", "feature_dropout")
                 else S.Dropout(p), False)]
    if fn is torch.flatten or name == "flatten":
        start = _arg(step, 1, "start_dim", 0)
        need("start_dim", start == 1, start)  # 0 would flatten the batch too
        return flatten_to()
    if name in ("view", "reshape"):
        shape = [a for a in step.args[1:]] if len(step.args) > 2 or not isinstance(step.args[1], (tuple, list)) \
            else list(step.args[1])
        need("shape", len(shape) == 2 and (shape[0] == -1 or _is_node(shape[0])), tuple(shape))
        return flatten_to(-1 if _is_node(shape[0]) else shape[1])
    if name == "contiguous":
        return []
    raise _refuse(where, f"the call {t} has no spec equivalent", SUPPORTED_TORCH)


#: the torch.nn classes the importer knows, by name (a TorchScript module keeps only its
#: original_name and attributes; a user's subclass is read as the class it extends)
_TORCH_KINDS = ("Conv2d", "Linear", "BatchNorm2d", "BatchNorm1d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
                "Dropout2d", "Dropout", "Flatten", "Identity", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "GELU",
                "Softmax", "LogSoftmax")


def _module_kind(m) -> str:
    if hasattr(m, "original_name"):  # TorchScript
        return m.original_name
    return next((c.__name__ for c in type(m).__mro__ if c.__name__ in _TORCH_KINDS and
                 c.__module__.startswith("torch.nn")), type(m).__name__)


def _torchscript_steps(scripted) -> list:
    """A TorchScript module's forward as _Steps: prim::CallMethod of a submodule, and
    aten operations with their constant arguments."""
    graph = scripted.graph
    values = {}  # TorchScript value -> python constant (lists, ints, None ...)
    steps = []
    children = dict(scripted.named_children())
    attrs = {}  # value -> submodule reached through prim::GetAttr
    functions = {}  # value -> name of a function constant (prim::CallFunction)
    for n in graph.nodes():
        kind = n.kind()
        outs = list(n.outputs())
        if kind == "prim::Constant":
            if outs[0].type().kind() == "FunctionType":  # F.relu & co. as called functions
                functions[outs[0]] = n.s("name")
            else:
                values[outs[0]] = outs[0].toIValue()
        elif kind == "prim::ListConstruct":
            values[outs[0]] = [values.get(i, _ScriptValue(i)) for i in n.inputs()]
        elif kind == "prim::GetAttr":
            attrs[outs[0]] = children.get(n.s("name"))
        elif kind == "prim::CallMethod":
            ins = list(n.inputs())
            module = attrs.get(ins[0])
            steps.append(_Step(_ScriptNode(outs[0], ins[1:]), module, n.s("name"), args=[_ScriptValue(ins[1])],
                               kwargs={}))
        elif kind.startswith("aten::") or kind == "prim::CallFunction":
            ins = list(n.inputs())
            target = kind.split("::")[1]
            if kind == "prim::CallFunction":
                target, ins = functions.get(ins[0], "an unknown function"), ins[1:]
            args = [values.get(i, _ScriptValue(i)) for i in ins]
            steps.append(_Step(_ScriptNode(outs[0], args, target=target), None, target, args=args, kwargs={}))
    # rewire: a step's tensor args become the previous steps' nodes
    by_value = {}

    def wire(a):
        if isinstance(a, list):
            return [wire(x) for x in a]
        return by_value.get(a.value, a) if isinstance(a, _ScriptValue) else a

    for s in steps:
        s.args = [wire(a) for a in s.args]
        by_value[s.node.output] = s.node
    steps.append(_Step(_ScriptNode(None, [], target="output"), None, "output", args=[], kwargs={}))
    return steps


class _ScriptValue:
    def __init__(self, value):
        self.value = value


class _ScriptNode(_ScriptValue):
    """A TorchScript operation standing in for an fx Node."""

    def __init__(self, output, args, target="forward"):
        super().__init__(output)
        self.output, self.args, self.kwargs, self.target = output, args, {}, target


def _spec(name, layers, input_shape, what) -> S.ModelSpec:
    try:
        return S.ModelSpec(name, layers, input_shape)
    except S.SpecError as e:
        raise ModelImportError(f"{what} does not fit its input {input_shape}: {e}") from None


def _safe_name(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.:=+-]", "_", str(name)).lstrip(".") or "imported"


def load_model(path_or_name, input_shape=(1, 28, 28)):
    """What the command line takes as MODEL: a zoo name, a spec JSON, a .keras file, a
    TorchScript file (.pt/.pth that torch.jit.load reads), or 'package.module:Class' for a
    PyTorch module class built without arguments. Returns (spec, neutral weights or None)."""
    from . import spec as specs
    from . import zoo

    text = str(path_or_name)
    path = Path(text)
    if path.suffix == ".json" or (path.is_file() and path.suffix not in (".keras", ".h5", ".pt", ".pth", ".ts")):
        return specs.load(path), None
    if path.suffix in (".keras", ".h5"):
        return from_keras(path, with_weights=True)
    if path.suffix in (".pt", ".pth", ".ts"):
        return from_torchscript(path, input_shape, with_weights=True)
    if ":" in text and "=" not in text:  # module:Class (a zoo name's arguments have '=')
        return from_torch(torch_class(text)(), input_shape, with_weights=True, name=text.partition(":")[2])
    return zoo.get(text), None


def torch_class(text: str):
    """The class named by 'package.module:Class', or a ModelImportError saying how to name it."""
    import importlib

    module_name, _, cls_name = text.partition(":")
    try:
        return getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as e:
        raise ModelImportError(f"Cannot load the PyTorch class {text!r}: {e}. Give 'package.module:Class' "
                               "importable from here (PYTHONPATH).") from None

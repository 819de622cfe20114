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
branch in the graph, an unknown layer) raises ModelImportError naming the layer, its type
and the argument, and listing what is supported. Nothing is approximated.

Which native layer is which layer kind, and how its arguments read, is each backend's
(``Backend.KINDS``: one entry per kind, its native classes and its reader); this module
walks the model and puts the spec together.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import spec as S
from .errors import MnistCnnError


class ModelImportError(MnistCnnError, ValueError):
    """A model that the spec cannot represent exactly."""


def _names(backend, own: str) -> list:
    """The native classes (by name) and function names the kinds of ``backend`` read,
    mnistcnn's own classes (whose module is ``own``) left out."""
    return [c if isinstance(c, str) else c.__name__ for entry in backend.KINDS.values() if entry.read
            for c in entry.native if isinstance(c, str) or c.__module__ != own]


def supported_keras(backend) -> list:
    return ["InputLayer", *_names(backend, "mnistcnn.backends._keras3")]


def supported_torch(backend) -> str:
    names = _names(backend, "mnistcnn.backends.torch")
    return ", ".join([*(n for n in names if n[0].isupper()), "Identity",
                      "ZeroPad2d or ConstantPad2d before a layer it pads as padding='same' does",
                      "and the calls " + ", ".join(n for n in names if not n[0].isupper())])


def _refuse(where: str, what: str, supported) -> ModelImportError:
    listed = supported if isinstance(supported, str) else ", ".join(map(str, supported))
    return ModelImportError(f"Cannot import {where}: {what}. The spec represents it only exactly or not at all. "
                            f"Supported: {listed}.")


def _read(read, native, in_shape, where: str, supported) -> list:
    """The spec layers a backend's reader (Kind.read) makes of one native layer or call."""
    from .backends.protocol import Unsupported

    try:
        return read(native, in_shape)
    except Unsupported as e:
        raise _refuse(where, str(e), e.supported or supported) from None


def _with_weights(spec, backend, natives: list):
    """(spec, neutral weights) from the native layer behind each spec layer (None: none)."""
    from . import weights as W

    weights = backend.neutral_from_native(spec, {
        r.name: backend.layer_weights(native) for r, native in zip(spec.rows, natives)
        if native is not None and r.layer.weight_shapes(r.input_shape)})
    W.check(spec, weights)
    return spec, weights


# -- Keras ----------------------------------------------------------------------------
def from_keras(model_or_path, with_weights: bool = False):
    """The ModelSpec of a Keras model (a keras.Model or a .keras/.h5 file); with
    ``with_weights``, (spec, neutral weights)."""
    from .backends import get_backend, runs_here

    # Keras with mnistcnn's environment, before loading a file: on TensorFlow, or on JAX
    # in a process that holds Keras on JAX
    kb = get_backend(next((b for b in ("keras", "jax") if runs_here(b)), "keras"))
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
    layers: list[S.Layer] = []
    natives: list = []  # natives: the Keras layer behind each spec layer (its weights), or None
    if len(shape) == 1 and shape[0] == 784:
        input_shape = (1, 28, 28)  # flattened MNIST images: the same order as a (1, 28, 28) map flattened
        layers.append(S.Flatten())
        natives.append(None)
    elif len(shape) == 2:
        input_shape = (1, *shape)
    elif len(shape) == 3:
        input_shape = (shape[2], shape[0], shape[1])
    else:
        raise _refuse(f"Keras model {name!r}", f"its input shape {shape} is not an image (H, W), (H, W, C) or a "
                      "flattened 28x28 image", "channels_last images")
    readers = {cls: entry.read for entry in kb.KINDS.values() if entry.read for cls in entry.native}
    supported = supported_keras(kb)
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
        if type(layer) not in readers:
            raise _refuse(where, f"the layer type {kind} has no spec equivalent", supported)
        current = S.ModelSpec(name, layers, input_shape).output_shape if layers else input_shape
        read = _read(readers[type(layer)], layer, current, where, supported)
        layers += read
        natives += [layer] + [None] * (len(read) - 1)
    spec = _spec(name, layers, input_shape, f"Keras model {name!r}")
    return _with_weights(spec, kb, natives) if with_weights else spec


# -- PyTorch --------------------------------------------------------------------------
def _torch_kinds():
    """(the torch backend, its readers by native class name or function name, its
    module classes)."""
    from .backends import get_backend

    tb = get_backend("torch")
    readers = {c if isinstance(c, str) else c.__name__: entry.read
               for entry in tb.KINDS.values() if entry.read for c in entry.native}
    classes = {c for entry in tb.KINDS.values() for c in entry.native if isinstance(c, type)}
    return tb, readers, classes


def from_torch(module, input_shape=(1, 28, 28), with_weights: bool = False, name: str | None = None):
    """The ModelSpec of a PyTorch module, traced with torch.fx; with ``with_weights``,
    (spec, neutral weights)."""
    import torch.fx

    _, _, classes = _torch_kinds()

    class Tracer(torch.fx.Tracer):
        """torch.fx's tracer, taking mnistcnn's own modules (those a spec builds) whole."""

        def is_leaf_module(self, m, qualname) -> bool:
            return type(m) in classes or super().is_leaf_module(m, qualname)

    name = _safe_name(name or type(module).__name__)
    was_training = module.training
    module.eval()  # so that F.dropout(x, training=self.training) traces as False, and a bare F.dropout as True
    try:
        graph = Tracer().trace(module)
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
    any) and a readable target name. What a torch reader (Kind.read) takes: ``module``,
    ``kind`` (the module's class name, or the function's name), ``args`` and ``arg``."""

    def __init__(self, node, module, target: str, args=None, kwargs=None):
        self.node, self.module, self.target = node, module, target
        self.args = list(node.args) if args is None else args
        self.kwargs = dict(node.kwargs) if kwargs is None else kwargs
        self.kind = target.split(".")[-1].lstrip("_")

    def arg(self, i: int, name: str, default=None):
        if len(self.args) > i:
            return self.args[i]
        return self.kwargs.get(name, default)

    @staticmethod
    def is_tensor(a) -> bool:
        return _is_node(a)


#: torch.nn modules the importer takes that are no layer kind: what they do is nothing,
#: or the padding of the layer after them
_TORCH_PLUMBING = ("Identity", "ZeroPad2d", "ConstantPad2d")


def _from_steps(steps, input_shape, name, with_weights, what):
    tb, readers, classes = _torch_kinds()
    supported = supported_torch(tb)
    layers, natives, value, pad = [], [], None, None
    size_nodes = set()
    for step in steps:
        node = step.node
        if step.module is not None:
            step.kind = _module_kind(step.module, classes)
        where = f"{step.target} ({step.kind if step.module is not None else 'call'}) of {what}"
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
        value = node
        current = S.ModelSpec(name, layers, input_shape).output_shape if layers else input_shape
        if step.kind in ("Identity", "contiguous"):
            continue
        if step.kind in ("ZeroPad2d", "ConstantPad2d"):
            left, right, top, bottom = step.module.padding
            pad = (((top, bottom), (left, right)), float(step.module.value), current, where)
            continue
        if step.kind not in readers:
            what_it_is = f"module type {step.kind}" if step.module is not None else f"call {step.target}"
            raise _refuse(where, f"the {what_it_is} has no spec equivalent", supported)
        if pad is not None:
            read = _padded(readers[step.kind], step, pad, supported)
            pad = None
        else:
            read = _read(readers[step.kind], step, current, where, supported)
        layers += read
        natives += [step.module] + [None] * (len(read) - 1)
    if pad is not None:
        raise _refuse(pad[3], "nothing after it takes its padding", supported)
    spec = _spec(name, layers, input_shape, what)
    return _with_weights(spec, tb, natives) if with_weights else spec


def _padded(read, step, pad, supported) -> list:
    """The layers of a step after an explicit padding: its layer with padding='same', where
    that pads as the padding did (and with the same value)."""
    pads, value, before, where = pad
    padded = (before[0], before[1] + sum(pads[0]), before[2] + sum(pads[1]))
    layers = _read(read, step, padded, where, supported)
    first = layers[0] if layers else None
    same = None
    if first is not None and first.pad_value == value and first.pads(padded) == ((0, 0), (0, 0)):
        same = replace(first, padding="same")
    if same is None or same.pads(before) != pads:
        raise _refuse(where, f"a padding of {pads} with {value:g} before {type(first).__name__ if first else 'it'} "
                      "is not what padding='same' adds there", supported)
    return [same, *layers[1:]]


def _is_node(a) -> bool:
    """A tensor flowing through the forward: an fx Node, a TorchScript operation's result,
    or a TorchScript tensor value (not a flag such as self.training)."""
    if isinstance(a, _ScriptNode):
        return True
    if isinstance(a, _ScriptValue):
        return a.value.type().kind() == "TensorType"
    return type(a).__name__ == "Node"


def _module_kind(m, classes) -> str:
    """The name of the class the importer reads ``m`` as: a TorchScript module's
    original_name; otherwise the first of ``m``'s classes that a kind reads (a user's
    subclass is read as the class it extends), or the torch.nn plumbing it is."""
    if hasattr(m, "original_name"):  # TorchScript
        return m.original_name
    return next((c.__name__ for c in type(m).__mro__ if c in classes or (
        c.__name__ in _TORCH_PLUMBING and c.__module__.startswith("torch.nn"))), type(m).__name__)


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
    by_value: dict = {}

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

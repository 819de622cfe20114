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

import math
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
    """(spec, neutral weights) from the native layer behind each spec layer (None: none; a
    composite's: its inner layers' natives by their path, 'body.conv2d_0')."""
    from . import weights as W

    per_leaf = {}
    for r, native in zip(spec.rows, natives):
        for path, leaf in (native.items() if isinstance(native, dict) else [("", native)]):
            if leaf is not None:
                per_leaf[f"{r.name}.{path}" if path else r.name] = backend.layer_weights(leaf)
    weights = backend.neutral_from_native(spec, per_leaf)
    W.check(spec, weights)
    return spec, weights


class _Op:
    """One operation of a model's graph, framework aside: the key of its result, the keys
    of the tensors it takes (in order), whether it adds two tensors, and what the
    framework's reader takes (``item``)."""

    def __init__(self, out, ins: list, item, is_add: bool, where: str):
        self.out, self.ins, self.item, self.is_add, self.where = out, ins, item, is_add, where


#: what a graph that is no chain of layers and residual blocks is told
_BLOCKS = ("straight chains and residual blocks (one input, two branches that rejoin by adding them: "
           "x + f(x), or f(x) + g(x) with a projection g)")


def _walk(ops: list, entry, in_shape, read, name: str, layers=(), natives=()) -> tuple[list, list]:
    """The spec layers of ``ops`` (in graph order), a chain from the tensor ``entry``:
    (layers, the native behind each). ``read(op, shape)`` gives one op's (layers,
    natives). A tensor taken by two ops starts a residual block, which must end in the
    first addition that takes both branches with nothing else taking the block's tensors
    (single entry, single exit); each branch is read as a chain of its own. ``layers`` and
    ``natives``: what the chain begins with (a flat input's Flatten)."""
    users: dict = {}
    for i, op in enumerate(ops):
        for key in op.ins:
            users.setdefault(key, []).append(i)
    layers, natives = list(layers), list(natives)
    value, i = entry, 0
    while i < len(ops):
        op, shape = ops[i], _shape_after(name, layers, in_shape)
        taken_by = users.get(value, [])
        if taken_by == [i] and op.ins == [value]:
            got, nat = read(op, shape)
            layers += got
            natives += nat
            value, i = op.out, i + 1
            continue
        if len(taken_by) < 2 or i not in taken_by:
            raise _refuse(op.where, "the forward is not a straight chain (this operation does not take the "
                          "previous result alone, or a result is used twice)" if not op.is_add else
                          "it adds two tensors that are not the two branches of a residual block", _BLOCKS)
        end = next((m for m in range(i, len(ops)) if ops[m].is_add and max(taken_by) <= m
                    and all(u <= m for j in range(i, m) for u in users.get(ops[j].out, []))), None)
        if end is None:
            raise _refuse(op.where, "its input is also taken by another operation, and the branches do not rejoin "
                          "by an addition of the two (a branch, a concatenation or another merge)", _BLOCKS)
        branches = [_branch(ops, i, end, key, value) for key in ops[end].ins]
        inner = set(range(i, end))
        if len(ops[end].ins) != 2 or set().union(*branches) != inner or branches[0] & branches[1]:
            raise _refuse(ops[end].where, "the block from its input to this addition is not two separate "
                          "branches that each start from the block's input", _BLOCKS)
        parts = []
        for key, members in zip(ops[end].ins, branches):
            chain = [ops[j] for j in sorted(members)]
            got, nat = _walk(chain, value, shape, read, name) if chain else ([], [])
            if chain and chain[-1].out != key:
                raise _refuse(ops[end].where, "a branch of the block does not end where the addition takes it",
                              _BLOCKS)
            parts.append((got, nat))
        (body, body_natives), (short, short_natives) = sorted(parts, key=lambda p: -len(p[0]))  # the longer: body
        if not body:
            raise _refuse(ops[end].where, "it adds a tensor to itself", _BLOCKS)
        try:
            block = S.Residual(tuple(body), tuple(short) or None)
            block.output_shape(shape)
        except S.SpecError as e:
            raise _refuse(ops[end].where, str(e), _BLOCKS) from None
        native: dict = {}
        for part, nat in (("body", body_natives), ("shortcut", short_natives)):
            rows = block.parts(shape).get(part)
            for r, n in zip(rows.rows if rows else [], nat):
                if isinstance(n, dict):  # a block inside the block
                    native.update((f"{part}.{r.name}.{k}", v) for k, v in n.items())
                else:
                    native[f"{part}.{r.name}"] = n
        layers.append(block)
        natives.append(native)
        value, i = ops[end].out, end + 1
    return layers, natives


def _branch(ops: list, start: int, end: int, key, entry) -> set:
    """The indices of ops[start:end] that ``key`` depends on, back to ``entry``."""
    found: set = set()
    todo = [key]
    by_out = {ops[j].out: j for j in range(start, end)}
    while todo:
        k = todo.pop()
        if k == entry or k not in by_out or by_out[k] in found:
            continue
        found.add(by_out[k])
        todo += ops[by_out[k]].ins
    return found


def _shape_after(name: str, layers: list, in_shape) -> tuple:
    try:
        return S.ModelSpec(name, layers, in_shape).output_shape if layers else in_shape
    except S.SpecError as e:
        raise ModelImportError(f"Model {name!r} does not fit its input {in_shape}: {e}") from None


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
                                   f"{' '.join(str(e).split())}).") from None
    name = _safe_name(getattr(model, "name", None) or "keras-model")
    try:
        inputs = model.inputs
    except AttributeError:  # a subclassed keras.Model: its call() is Python, recorded as no graph
        raise _refuse(f"Keras model {name!r} ({type(model).__name__})", "it is a subclassed keras.Model, whose "
                      "call() is Python code that Keras records as no graph of layers, so the order and the "
                      "connections of its layers are unknown. Write the same layers as keras.Sequential([...]) or "
                      "with the functional API (keras.Input, then each layer called on the previous output) and "
                      "copy the weights over (set_weights)", "Sequential and functional models") from None
    if len(inputs) != 1 or len(model.outputs) != 1:
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

    def read(op, current) -> tuple[list, list]:
        layer = op.item
        if layer is None:  # a Reshape of the input to the image it is
            return [], []
        if type(layer).__name__ in _KERAS_INPUT_SCALING:
            raise _refuse(op.where, _KERAS_INPUT_SCALING[type(layer).__name__](layer), supported)
        if type(layer) not in readers:
            raise _refuse(op.where, f"the layer type {type(layer).__name__} has no spec equivalent", supported)
        got = _read(readers[type(layer)], layer, current, op.where, supported)
        return got, [layer] * bool(got) + [None] * (len(got) - 1)

    ops = _keras_ops(model, name, keras)
    if ops and type(ops[0].item).__name__ == "Reshape" and ops[0].ins == [_keras_key(model.inputs[0])]:
        target = tuple(ops[0].item.get_config()["target_shape"])
        if len(target) == 3 and target[2] == 1 and math.prod(target) == math.prod(shape):  # (784,) -> (28, 28, 1)
            input_shape, layers, natives = (1, target[0], target[1]), [], []
            ops[0].item = None
    layers, natives = _walk(ops, _keras_key(model.inputs[0]), input_shape, read, name, layers, natives)
    spec = _spec(name, layers, input_shape, f"Keras model {name!r}")
    return _with_weights(spec, kb, natives) if with_weights else spec


#: Keras preprocessing layers a model may begin with, and what to do instead: mnistcnn
#: feeds normalised images itself (--normalization)
_KERAS_INPUT_SCALING = {
    "Rescaling": lambda layer: (
        f"Rescaling(scale={layer.get_config()['scale']}, offset={layer.get_config()['offset']}) scales the raw "
        "pixels the model was given, and mnistcnn feeds images it has already normalised: drop Rescaling and train "
        "or evaluate with --normalization unit (pixels / 255, what Rescaling(1/255) does), or --normalization "
        "standard"),
    "Normalization": lambda layer: (
        "Normalization standardises the raw pixels with statistics it learned from the data (adapt), and mnistcnn "
        "feeds images it has already normalised: drop Normalization and use --normalization standard (MNIST's "
        "mean 0.1307 and standard deviation 0.3081)"),
}


def _keras_key(tensor):
    return id(tensor)


def _keras_ops(model, name: str, keras) -> list:
    """The model's layers as _Ops in graph order: a Sequential's as a chain, a functional
    model's from its graph (each layer called once), a nested Sequential's in its place."""
    ops: list = []
    if isinstance(model, keras.Sequential):
        previous = _keras_key(model.inputs[0])
        for layer in model.layers:
            for inner in (layer.layers if isinstance(layer, keras.Sequential) else [layer]):
                if type(inner).__name__ == "InputLayer":
                    continue
                where = f"layer {inner.name!r} ({type(inner).__name__}) of Keras model {name!r}"
                ops.append(_Op(object(), [previous], inner, False, where))
                previous = ops[-1].out
        return ops
    for layer in getattr(model, "operations", model.layers):
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        where = f"layer {layer.name!r} ({kind}) of Keras model {name!r}"
        nodes = [n for n in layer._inbound_nodes if n.operation is layer]
        if len(nodes) != 1:
            raise _refuse(where, f"it is called {len(nodes)} times (shared weights): the spec gives every layer "
                          "weights of its own, so importing it would untie them", "layers called once")
        ins = [_keras_key(t) for t in nodes[0].input_tensors]
        outs = nodes[0].output_tensors
        if isinstance(layer, keras.Sequential):  # a nested Sequential: its layers in its place
            previous = ins[0]
            for inner in layer.layers:
                w = f"layer {inner.name!r} ({type(inner).__name__}) of {layer.name!r} in Keras model {name!r}"
                ops.append(_Op(object(), [previous], inner, False, w))
                previous = ops[-1].out
            ops[-1].out = _keras_key(outs[0])
            continue
        ops.append(_Op(_keras_key(outs[0]), ins, layer, kind == "Add" and len(ins) == 2, where))
    return ops


# -- PyTorch --------------------------------------------------------------------------
def _torch_kinds():
    """(the torch backend, its readers by native class name or function name, its
    module classes)."""
    from .backends import get_backend

    tb = get_backend("torch")
    readers = {c if isinstance(c, str) else c.__name__: entry.read
               for entry in tb.KINDS.values() if entry.read for c in entry.native}
    classes = {c for entry in tb.KINDS.values() if entry.read for c in entry.native if isinstance(c, type)}
    return tb, readers, classes


def from_torch(module, input_shape=(1, 28, 28), with_weights: bool = False, name: str | None = None):
    """The ModelSpec of a PyTorch module, traced with torch.fx; with ``with_weights``,
    (spec, neutral weights)."""
    import torch.fx

    _, _, classes = _torch_kinds()
    if type(module).__name__ == "ExportedProgram":
        raise _exported_program(f"The model given ({type(module).__name__})")

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
    if not path.is_file():
        raise ModelImportError(f"{path} {_not_a_file(path)}: give a TorchScript file "
                               "(torch.jit.script(model).save(path)).")
    import warnings

    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in PyTorch 2.x; the user's file is not
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        saved = _torch_save_kind(path)
        if saved:
            raise ModelImportError(f"{path} is not a TorchScript file: it holds {saved}.") from None
        raise ModelImportError(f"{path} is not a readable TorchScript file ({type(e).__name__}).") from None
    steps = _torchscript_steps(scripted)
    try:
        return _from_steps(steps, tuple(input_shape), _safe_name(path.stem), with_weights, f"TorchScript file {path}")
    except AttributeError as e:  # a traced module keeps no layer arguments (Conv2d's dilation, stride...)
        raise ModelImportError(
            f"{path} is a traced TorchScript file (torch.jit.trace): its modules keep their weights but not their "
            f"arguments ({e.name or e}), so its layers cannot be read exactly. Save the model with "
            "torch.jit.script(model).save(path) instead, or its state_dict with --torch-class.") from None


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


#: how a traced forward adds two tensors: operator.add / iadd (x + y, x += y), torch.add, x.add(y), aten::add
_ADDS = ("add", "iadd", "add_")


def _key(a):
    """What identifies a tensor of a traced forward: the fx Node, or the TorchScript value."""
    return a.value if isinstance(a, _ScriptValue) else a


def _from_steps(steps, input_shape, name, with_weights, what):
    tb, readers, classes = _torch_kinds()
    supported = supported_torch(tb)
    meta: set = set()  # x.size(0), x.shape, x.shape[0]: sizes feeding a view(x.size(0), -1)
    ops, called = [], {}
    for step in steps:
        if step.target == "output":
            break
        if step.module is not None:
            step.kind = _module_kind(step.module, classes)
            called.setdefault(id(step.module), []).append(step.target)
        where = f"{step.target} ({step.kind if step.module is not None else 'call'}) of {what}"
        tensors = [_key(a) for a in step.args if _is_node(a)]
        if step.kind == "size" or (step.kind == "getattr" and step.arg(1, "name") == "shape") or (
                step.kind.strip("_") == "getitem" and tensors and tensors[0] in meta):
            meta.add(_key(step.node))
            continue
        ins = [t for t in tensors if t not in meta]
        add = step.kind in _ADDS and len(ins) == 2 and step.arg(2, "alpha", 1) == 1
        ops.append(_Op(_key(step.node), ins, (step, where), add, where))
    twice = next((targets for targets in called.values() if len(targets) > 1), None)
    if twice:
        raise _refuse(f"{twice[0]} of {what}", f"the module {twice[0]} is called {len(twice)} times, so its weights "
                      "are shared; the spec gives every layer weights of its own, so importing it would untie them "
                      "(a model with more parameters). Give each call a module of its own if that is what you "
                      "mean (copy.deepcopy)", "a module called once")
    if not ops:
        raise _refuse(what, "its forward has no operation on the input", supported)
    state: dict = {"pad": None, "first": True}

    def read(op, current) -> tuple[list, list]:
        step, where = op.item
        first, state["first"] = state["first"], False
        if op.is_add:
            raise _refuse(where, "it adds two tensors that are not the two branches of a residual block", _BLOCKS)
        if step.kind in ("Identity", "contiguous"):
            return [], []
        if step.kind in ("ZeroPad2d", "ConstantPad2d"):
            left, right, top, bottom = step.module.padding
            state["pad"] = (((top, bottom), (left, right)), float(step.module.value), current, where)
            return [], []
        if step.kind not in readers:
            what_it_is = f"module type {step.kind}" if step.module is not None else f"call {step.target}"
            if len(op.ins) > 1:
                what_it_is += " combines two tensors; it"
            raise _refuse(where, f"the {what_it_is} has no spec equivalent", supported)
        flat = []
        if (first and step.kind == "Linear" and len(current) == 3
                and step.module.in_features == math.prod(current)):
            flat, current = [S.Flatten()], (math.prod(current),)  # a forward taking the image flattened (784,)
        if state["pad"] is not None:
            got = _padded(readers[step.kind], step, state["pad"], supported)
            state["pad"] = None
        else:
            got = _read(readers[step.kind], step, current, where, supported)
        return flat + got, [None] * len(flat) + [step.module] * bool(got) + [None] * (len(got) - 1)

    entry = ops[0].ins[0] if ops[0].ins else None
    layers, natives = _walk(ops, entry, input_shape, read, name)
    if state["pad"] is not None:
        raise _refuse(state["pad"][3], "nothing after it takes its padding", supported)
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
            inner = _script_sequence(module) if getattr(module, "original_name", "") == "Sequential" else None
            if inner:  # an nn.Sequential inside: its modules in its place, one after the other
                previous: _ScriptValue = _ScriptValue(ins[1])
                for j, (target, child) in enumerate(inner):
                    node = _ScriptNode(outs[0] if j == len(inner) - 1 else object(), [previous], target=target)
                    steps.append(_Step(node, child, target, args=[previous], kwargs={}))
                    previous = node
                continue
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


def _script_sequence(module, prefix: str = "") -> list:
    """(name, module) of every module a scripted nn.Sequential calls, nested ones flattened."""
    out = []
    for child_name, child in module.named_children():
        if getattr(child, "original_name", "") == "Sequential":
            out += _script_sequence(child, f"{prefix}{child_name}.")
        else:
            out.append((f"{prefix}{child_name}", child))
    return out


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
    if path.suffix == ".pt2":
        raise _exported_program(path)
    if path.suffix == ".json" or (path.is_file() and path.suffix not in (".keras", ".h5", ".pt", ".pth", ".ts")):
        return specs.load(path), None
    if path.suffix in (".keras", ".h5"):
        return from_keras(path, with_weights=True)
    if path.suffix in (".pt", ".pth", ".ts"):
        return from_torchscript(path, input_shape, with_weights=True)
    if ":" in text and "=" not in text:  # module:Class (a zoo name's arguments have '=')
        return from_torch(torch_module(text), input_shape, with_weights=True, name=text.partition(":")[2])
    return zoo.get(text), None


def _exported_program(what) -> ModelImportError:
    return ModelImportError(
        f"{what} is a torch.export ExportedProgram (.pt2): it holds ATen operations with its weights lifted out of "
        "the modules, not the layers mnistcnn reads, so it is not imported. Give the nn.Module itself "
        "(from_torch(model), or 'package.module:Class' on the command line), its state_dict with --torch-class "
        "(torch.save(model.state_dict(), path)), or a TorchScript file (torch.jit.script(model).save(path)).")


def _torch_save_kind(path: Path) -> str | None:
    """What a file torch.save wrote holds, in words, or None where it is no such file: a
    whole pickled model or a state dict, told from the class names its pickle refers to
    (never unpickled)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            pickles = [n for n in names if n.endswith("data.pkl")]
            if not pickles or any("/code/" in n for n in names):  # TorchScript archives hold code/
                return None
            data = z.read(pickles[0])
    except (zipfile.BadZipFile, OSError):
        return None
    if b"torch.nn.modules" in data or b"__main__" in data:
        return ("a whole model saved with torch.save(model): a pickle of its Python classes, which mnistcnn never "
                "unpickles. Save its weights instead, torch.save(model.state_dict(), path), and give its class: "
                "`mnistcnn import weights.pth --torch-class package.module:Class`, or save it as TorchScript "
                "(torch.jit.script(model).save(path))")
    return ("weights saved with torch.save (a state dict) without the code of its model: give its class with "
            "--torch-class package.module:Class")


def _first_line(e: BaseException) -> str:
    """An exception from the user's code as one short line: its type and first line."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def torch_class(text: str):
    """The nn.Module subclass named by 'package.module:Class', or a ModelImportError naming
    what went wrong (the module is not found or fails on import, no such name, not a class)
    and how to name it."""
    import importlib
    import inspect

    import torch

    module_name, _, cls_name = text.partition(":")
    how = "Give 'package.module:Class', the module importable from here (on PYTHONPATH)"
    if not module_name or not cls_name or module_name.endswith(".py") or "/" in module_name:
        raise ModelImportError(f"Cannot load the PyTorch class {text!r}: name the module by its import name and "
                               "the class after a colon, e.g. models:Net for the class Net in models.py, with its "
                               "directory on PYTHONPATH.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelImportError(f"Cannot load the PyTorch class {text!r}: {e}. {how}.") from None
    except BaseException as e:  # the user's module fails as it is imported (SyntaxError too): name it
        if isinstance(e, KeyboardInterrupt):
            raise
        raise ModelImportError(f"Cannot load the PyTorch class {text!r}: importing the module {module_name!r} "
                               f"raised {_first_line(e)}. Fix the module (`python -c 'import {module_name}'` "
                               "shows the traceback).") from None
    if not hasattr(module, cls_name):
        raise ModelImportError(f"Cannot load the PyTorch class {text!r}: the module {module_name!r} has no "
                               f"attribute {cls_name!r}. {how}.")
    cls = getattr(module, cls_name)
    if inspect.isclass(cls) and not issubclass(cls, torch.nn.Module) or not callable(cls):
        what = "a class" if inspect.isclass(cls) else f"an object of type {type(cls).__name__}"
        raise ModelImportError(f"Cannot load the PyTorch class {text!r}: it is {what}, not a subclass of "
                               "torch.nn.Module (or a function that returns one). Name the model's class (mnistcnn "
                               "builds it without arguments).")
    return cls


def torch_module(text: str):
    """An instance of the class named by 'package.module:Class' (or what the function named
    so returns), built without arguments; a class that needs them, whose __init__ fails, or
    a function that returns no nn.Module is a ModelImportError naming it."""
    import torch

    cls = torch_class(text)
    try:
        module = cls()
    except BaseException as e:  # the user's __init__: whatever it raises is about their code
        if isinstance(e, KeyboardInterrupt):
            raise
        needs = [p.name for p in _required_parameters(cls)]
        fix = (f"it needs {', '.join(map(repr, needs))}: mnistcnn builds it without arguments, so give them "
               f"defaults, or name a subclass that passes them (class Mine({cls.__name__}): def __init__(self): "
               f"super().__init__(...)), or save the built model with torch.jit.script(model).save('model.pt') "
               "and give that file") if needs else "fix its __init__ (mnistcnn calls it without arguments)"
        raise ModelImportError(f"Cannot build the PyTorch class {text!r} as {cls.__name__}(): it raised "
                               f"{_first_line(e)}; {fix}.") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelImportError(f"{text!r} returned an object of type {type(module).__name__}, not a "
                               "torch.nn.Module: name the model's class, or a function that returns the model.")
    return module


def _not_a_file(path: Path) -> str:
    """What a path that is no regular file is, in words."""
    if not path.exists():
        return "does not exist"
    return "is a directory" if path.is_dir() else "is not a regular file (a device, a pipe or a socket)"


def _required_parameters(cls) -> list:
    import inspect

    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                                     p.KEYWORD_ONLY)]


def from_state_dict(path, class_text: str, input_shape=(1, 28, 28)):
    """(spec, neutral weights) of the class named by 'package.module:Class' holding the
    state dict saved in ``path`` (torch.save(model.state_dict(), path)); a file that is no
    state dict, or one whose names or shapes do not match the class, is a ModelImportError
    naming the file, the class and what differs."""
    import pickle

    import torch

    module = torch_module(class_text)
    path = Path(path)
    if not path.is_file():
        raise ModelImportError(f"{path} {_not_a_file(path)}: give the file that torch.save(model.state_dict(), "
                               "path) wrote.")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # neither torch.save's zip archive nor a pickle
        raise ModelImportError(f"{path} is not a PyTorch file ({'empty' if not head else 'not what torch.save writes'})"
                               ": give the file that torch.save(model.state_dict(), path) wrote.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refuses code: a whole model, or other objects
        raise ModelImportError(f"{path} is not a state dict: it holds pickled Python objects (a whole model "
                               "saved with torch.save(model)?), which mnistcnn never unpickles. Save "
                               "model.state_dict() instead, or the model as TorchScript "
                               "(torch.jit.script(model).save(path)).") from None
    except Exception as e:  # damaged, or another kind of file
        raise ModelImportError(f"{path} is not a readable PyTorch state dict ({_first_line(e)}): give the file "
                               "that torch.save(model.state_dict(), path) wrote.") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelImportError(f"{path} holds a {type(state).__name__}, not a state dict (names -> tensors): give "
                               "the file that torch.save(model.state_dict(), path) wrote.")
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (the class: {tuple(v.shape)})" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        found = "; ".join(f"{what}: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}" for what, names in
                          (("missing", missing), ("not in the class", unexpected), ("other shapes", wrong)) if names)
        raise ModelImportError(f"The state dict {path} does not match the class {class_text!r} ({found}). Give "
                               "the class it was saved from, built with the same arguments.")
    module.load_state_dict(state)
    return from_torch(module, input_shape, with_weights=True, name=class_text.partition(":")[2])

"""Specs to and from plain dicts and JSON, with a format version."""
from __future__ import annotations

import json

from ..errors import SpecError
from .layers import LAYER_KINDS
from .model import ModelSpec

FORMAT = "mnistcnn.spec"
VERSION = 1


def to_dict(spec: ModelSpec) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": spec.name,
        "input_shape": list(spec.input_shape),
        "layers": [layer.to_dict() for layer in spec.layers],
    }


def from_dict(data: dict) -> ModelSpec:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecError(f"Not a mnistcnn spec: expected a JSON object with \"format\": \"{FORMAT}\".")
    unknown = sorted(set(data) - {"format", "version", "name", "input_shape", "layers"})
    if unknown:
        raise SpecError(f"Spec '{data.get('name')}' has unknown field(s) {unknown}. Valid top-level "
                        "fields: format, version, name, input_shape, layers.")
    if data.get("version") != VERSION:
        raise SpecError(
            f"Spec format version {data.get('version')!r} is not supported; this mnistcnn "
            f"reads version {VERSION}. Upgrade mnistcnn or re-export the spec."
        )
    if not isinstance(data.get("layers"), list):
        raise SpecError(f"Spec '{data.get('name')}': \"layers\" must be a list of layer objects "
                        f"(each {{\"kind\": ..., arguments}}). Received {type(data.get('layers')).__name__}.")
    layers = []
    for i, d in enumerate(data["layers"]):
        if not isinstance(d, dict):
            raise SpecError(f"Layer {i} of spec '{data.get('name')}' is {d!r}, not an object like "
                            "{\"kind\": \"Dense\", \"units\": 10}.")
        layers.append(_layer(d, f"Layer {i}", f" of spec '{data.get('name')}'"))
    return ModelSpec(data.get("name"), layers, tuple(data.get("input_shape", (1, 28, 28))))  # type: ignore[arg-type]


def _layer(d: dict, where: str, of: str = ""):
    """One layer from its object; a composite's lists of layer objects (Residual's body and
    shortcut) become layers too. Errors say '{where} ({kind}){of}: ...'."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in LAYER_KINDS:
        raise SpecError(f"{where}{of}: unknown kind {kind!r}. Valid kinds: {', '.join(LAYER_KINDS)}.")
    for arg, value in d.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            d[arg] = [_layer(v, f"{where} ({kind}){of}, {arg}[{j}]") for j, v in enumerate(value)]
    try:
        return LAYER_KINDS[kind](**d)
    except (TypeError, SpecError) as e:
        raise SpecError(f"{where} ({kind}){of}: {e}", arguments=getattr(e, "arguments", None)) from None


def to_json(spec: ModelSpec, indent: int = 2) -> str:
    return json.dumps(to_dict(spec), indent=indent)


def from_json(text: str, source: str = "Spec") -> ModelSpec:
    try:
        data = json.loads(text)
        return from_dict(data)
    except json.JSONDecodeError as e:
        raise SpecError(f"{source} is not valid JSON: {e}. A spec file is what "
                        "mnistcnn.spec.save() or `mnistcnn import` writes.") from None
    except RecursionError:  # lists or objects nested deeper than Python's stack: refused, not a crash
        raise SpecError(f"{source} is nested too deeply to be read as a spec (lists or objects inside one "
                        "another, deeper than Python's recursion limit). A spec file is what mnistcnn.spec.save() "
                        "or `mnistcnn import` writes.") from None


def load(path) -> ModelSpec:
    """A spec from its JSON file; a file that cannot be read is a SpecError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise SpecError(f"Spec file {path} is not JSON text (it holds binary data).") from None
    except OSError as e:
        raise SpecError(f"Cannot read the spec file {path}: {e.strerror or e}.") from None
    return from_json(text, f"Spec file {path}")


def save(spec: ModelSpec, path) -> None:
    from .._io import atomic_write_text

    atomic_write_text(path, to_json(spec) + "\n")

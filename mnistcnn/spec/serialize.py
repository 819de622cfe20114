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
    layers = []
    for i, d in enumerate(data.get("layers", [])):
        d = dict(d)
        kind = d.pop("kind", None)
        if kind not in LAYER_KINDS:
            raise SpecError(
                f"Layer {i} of spec '{data.get('name')}': unknown kind {kind!r}. "
                f"Valid kinds: {', '.join(LAYER_KINDS)}."
            )
        try:
            layers.append(LAYER_KINDS[kind](**d))
        except TypeError as e:
            raise SpecError(f"Layer {i} ({kind}) of spec '{data.get('name')}': {e}") from None
    return ModelSpec(data.get("name"), layers, tuple(data.get("input_shape", (1, 28, 28))))


def to_json(spec: ModelSpec, indent: int = 2) -> str:
    return json.dumps(to_dict(spec), indent=indent)


def from_json(text: str) -> ModelSpec:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"Spec is not valid JSON: {e}") from None
    return from_dict(data)


def load(path) -> ModelSpec:
    with open(path, encoding="utf-8") as f:
        return from_json(f.read())


def save(spec: ModelSpec, path) -> None:
    from .._io import atomic_write_text

    atomic_write_text(path, to_json(spec) + "\n")

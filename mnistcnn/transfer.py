"""Weights between backends through the neutral form (spec + named numpy arrays).

The backends do the translation: kernel layouts ((out, in, kh, kw) vs (kh, kw, in, out);
(out, in) vs (in, out)), the Flatten order of the first Dense after it ((C, H, W) vs
(H, W, C)), and BatchNorm running statistics.
"""
from __future__ import annotations

from . import weights as W
from .backends import get_backend


def to_neutral(model, spec, backend: str) -> dict:
    return get_backend(backend).get_weights(model, spec)


def to_model(spec, weights: dict, backend: str):
    """A new native model of ``backend`` holding ``weights``."""
    b = get_backend(backend)
    model = b.build(spec)
    b.set_weights(model, spec, weights)
    return model


def convert(model, spec, source: str, target: str):
    """The same network in another framework (torch, keras, jax), both loaded in this
    process. Keras on TensorFlow and Keras on JAX cannot share one: save() in one and
    load() in the other (or mnistcnn.backends.call), through the neutral form."""
    return to_model(spec, to_neutral(model, spec, source), target)


def save(model, spec, backend: str, path) -> None:
    W.save(path, spec, to_neutral(model, spec, backend), {"from": backend})


def load(path, backend: str):
    """(spec, native model) from a neutral checkpoint, in any backend."""
    spec, weights, _ = W.load(path)
    return spec, to_model(spec, weights, backend)

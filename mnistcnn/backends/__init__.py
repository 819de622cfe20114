"""Backends: one module per framework, imported only when asked for.

Every backend module offers the same functions:
  build(spec) -> native model            (torch.nn.Module | keras.Model)
  param_counts(model, spec) -> [(trainable, state), ...]  one pair per spec layer
  layer_output_shapes(model, spec) -> [shape, ...]         spec layout (C, H, W) / (F,)
  predict(model, x) -> numpy array       x in (N, C, H, W); output in the spec's layout
"""
from __future__ import annotations

import importlib

from ..errors import BackendUnavailableError

#: backend name -> (module, the packages it needs, the pip extra that installs them)
BACKENDS = {
    "torch": ("mnistcnn.backends.torch", ("torch",), "torch"),
    "keras": ("mnistcnn.backends.keras", ("keras", "tensorflow"), "keras"),
}


def get_backend(name: str):
    if name not in BACKENDS:
        raise BackendUnavailableError(
            f"Unknown backend {name!r}. Valid backends: {', '.join(BACKENDS)}."
        )
    module, packages, extra = BACKENDS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in packages:
            raise BackendUnavailableError(
                f"Backend {name!r} needs the {' and '.join(repr(p) for p in packages)} "
                f"package{'s' if len(packages) > 1 else ''} (missing: {e.name!r}). "
                f"Install with: pip install 'mnistcnn[{extra}]'"
            ) from e
        raise

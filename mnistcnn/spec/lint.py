"""Known mistakes in a spec, in words (``mnistcnn defaults --arch X`` prints them).
The lint of a built Keras model (BatchNormalization on the height axis) and of labels is
in mnistcnn.defaults, beside the ledger."""
from __future__ import annotations

from . import layers as S


def lint(spec) -> list[str]:
    """Known mistakes in a spec."""
    warnings = []
    last = spec.layers[-1]
    head = last.name if isinstance(last, S.Activation) else getattr(last, "activation", None)
    if head in ("softmax", "log_softmax"):
        warnings.append(
            f"spec '{spec.name}' ends in {head}: a loss that expects logits (PyTorch CrossEntropyLoss, "
            f"Keras from_logits=True) would apply it twice. mnistcnn drops it and trains on logits; "
            f"in your own loop use the logits with CrossEntropyLoss, or log_softmax with NLLLoss.")
    return warnings + _chain(spec.rows)


def _chain(rows, where: str = "") -> list[str]:
    """What is wrong in a chain of rows, a composite's parts (Residual's body and shortcut)
    included, each named by its path."""
    warnings = []
    for a, b in zip(rows, rows[1:]):
        if isinstance(a.layer, S.Dropout) and isinstance(b.layer, S.BatchNorm):
            warnings.append(
                f"{where}layer {a.index} ({a.kind}) comes right before BatchNorm (layer {b.index}): dropout shifts "
                "the variance between training and inference, so BatchNorm's running statistics do not "
                "match at test time. Put dropout after BatchNorm.")
    for r in rows:
        for part, inner in r.layer.parts(r.input_shape).items():
            warnings += _chain(inner.rows, f"{where}{r.name}.{part}: ")
    return warnings

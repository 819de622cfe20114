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
    for i, (a, b) in enumerate(zip(spec.layers, spec.layers[1:])):
        if isinstance(a, S.Dropout) and isinstance(b, S.BatchNorm):
            warnings.append(
                f"layer {i} ({type(a).__name__}) comes right before BatchNorm (layer {i + 1}): dropout shifts "
                "the variance between training and inference, so BatchNorm's running statistics do not "
                "match at test time. Put dropout after BatchNorm.")
    return warnings

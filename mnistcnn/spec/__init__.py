"""The framework-neutral architecture spec (pure Python; imports no framework)."""
from .layers import (
    ACTIVATIONS, BN_PRESETS, LAYER_KINDS, STATE_WEIGHTS, Activation, AvgPool2D, BatchNorm,
    Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, HeightBatchNorm, Layer, MaxPool2D,
    SpatialDropout2D,
)
from .model import LayerInfo, ModelSpec
from .serialize import from_dict, from_json, load, save, to_dict, to_json
from .shapes import conv_output_size, same_padding

__all__ = [
    "ACTIVATIONS", "BN_PRESETS", "LAYER_KINDS", "Activation", "AvgPool2D", "BatchNorm", "Conv2D",
    "Dense", "Dropout", "Flatten", "GlobalAvgPool2D", "HeightBatchNorm", "Layer", "LayerInfo", "MaxPool2D", "ModelSpec",
    "STATE_WEIGHTS", "SpatialDropout2D", "conv_output_size", "from_dict", "from_json", "load", "same_padding",
    "save", "to_dict", "to_json",
]

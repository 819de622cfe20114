"""The framework-neutral architecture spec (pure Python; imports no framework).

Every layer kind is exported by its name: the star import brings each public class of
spec.layers, and ``__all__`` lists LAYER_KINDS, so a new kind needs no line here."""
from .layers import *  # noqa: F403 (the layer kinds of LAYER_KINDS)
from .layers import ACTIVATIONS, BN_PRESETS, LAYER_KINDS, STATE_WEIGHTS, WEIGHT_LAYOUTS, Layer
from .model import LayerInfo, ModelSpec
from .serialize import from_dict, from_json, load, save, to_dict, to_json
from .shapes import conv_output_size, same_padding

__all__ = [
    "ACTIVATIONS", "BN_PRESETS", "LAYER_KINDS", "Layer", "LayerInfo", "ModelSpec", "STATE_WEIGHTS", "WEIGHT_LAYOUTS",
    "conv_output_size", "from_dict", "from_json", "load", "same_padding", "save", "to_dict", "to_json",
    *LAYER_KINDS,
]

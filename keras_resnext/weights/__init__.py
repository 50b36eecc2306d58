"""Pretrained weights: the registry, checkpoint conversion and downloads.

    kr.weights.list_weights()                      # what exists, with licences
    kr.weights.load_torch_state_dict(model, sd)    # torchvision/timm layout -> Keras
    kr.weights.read_state_dict("x.safetensors")    # NumPy tensors, no unpickling
    kr.weights.eval_transform("resnext50_32x4d", "tv2_in1k")
"""

from keras_resnext.weights.checkpoint import read_state_dict
from keras_resnext.weights.download import fetch
from keras_resnext.weights.loading import load_weights
from keras_resnext.weights.preprocessing import eval_transform
from keras_resnext.weights.registry import format_table, is_pretrained, list_weights, tags_for
from keras_resnext.weights.torch_layout import expected_state_dict_shapes, load_torch_state_dict

__all__ = [
    "eval_transform",
    "expected_state_dict_shapes",
    "fetch",
    "format_table",
    "is_pretrained",
    "list_weights",
    "load_torch_state_dict",
    "load_weights",
    "read_state_dict",
    "tags_for",
]

"""Pretrained weights: the registry, checkpoint conversion and downloads."""

from keras_resnext.weights.loading import load_weights
from keras_resnext.weights.registry import is_pretrained, tags_for

__all__ = ["is_pretrained", "load_weights", "tags_for"]

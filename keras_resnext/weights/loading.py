"""Puts the weights named by `weights=` into a built model."""

import os

from keras_resnext.weights import registry
from keras_resnext.weights.checkpoint import read_state_dict
from keras_resnext.weights.download import fetch
from keras_resnext.weights.torch_layout import load_torch_state_dict

TORCH_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
KERAS_SUFFIXES = (".weights.h5", ".h5", ".keras")


def load_weights(model, weights, variant=None):
    """Loads `weights` ("imagenet", a registry tag, or a file path) into `model`.

    Pretrained tags are downloaded (once; then cached) and converted from the
    torchvision/timm layout. A `.safetensors`/`.pth`/`.bin` path is converted the
    same way; a Keras `.weights.h5` is loaded with `model.load_weights`.

    For pretrained tags the registry entry is attached as `model.pretrained_cfg`
    (timm's name) and returned; for files, None.
    """
    if registry.is_pretrained(variant, weights):
        entry = pretrained_entry(variant, weights)
        load_torch_state_dict(model, read_state_dict(fetch(entry)))
        attach_pretrained_cfg(model, entry)
        return entry
    path = os.fspath(weights)
    if path.endswith(TORCH_SUFFIXES):
        load_torch_state_dict(model, read_state_dict(path), allow_new_head=True)
    elif path.endswith(KERAS_SUFFIXES):
        model.load_weights(path)
    else:
        raise ValueError(
            f"Cannot tell the format of weights file {path!r}: expected a name ending in "
            f"{', '.join(TORCH_SUFFIXES + KERAS_SUFFIXES)}."
        )
    return None


def pretrained_entry(variant, weights):
    """The registry entry `weights` ("imagenet" or a tag) names for `variant`; a ValueError says what exists."""
    entry = registry.find(variant, weights)
    if entry is None:
        raise ValueError(_unavailable_message(variant, weights))
    return entry


def attach_pretrained_cfg(model, entry):
    """Records on `model` which pretrained weights it holds (variant, tag, eval size, crop, mean/std, licence)."""
    # A plain attribute set outside Keras' tracking: it is metadata, not state to save.
    object.__setattr__(model, "pretrained_cfg", dict(entry))


def _unavailable_message(variant, weights):
    if variant is None:
        return (
            f"weights={weights!r} needs the configuration of a named ResNeXt; this one has no "
            "pretrained weights. Pass weights=None or a file path."
        )
    tags = registry.tags_for(variant)
    if weights == "imagenet" and tags:
        return (
            f"{variant} has no permissively licensed ImageNet weights, so weights='imagenet' "
            f"is not set for it. Its weights ({', '.join(tags)}) are CC-BY-NC-4.0 "
            "(non-commercial); pass one of these tags explicitly to accept that licence."
        )
    if not tags:
        return f"No pretrained weights are available for {variant}; pass weights=None or a file path."
    return f"Unknown weights {weights!r} for {variant}; available tags: {', '.join(tags)}."

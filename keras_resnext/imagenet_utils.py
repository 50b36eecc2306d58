"""ImageNet input preprocessing and prediction decoding, offline."""

import functools
import json
from importlib import resources

import keras
import numpy as np

# torchvision's normalisation, used by every torchvision and timm ResNeXt checkpoint.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_input(x, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Scales RGB images in [0, 255] (uint8 or float) to torchvision's normalisation.

    Args:
        x: a channels-last image or batch of images (`(..., H, W, 3)`), as a
            NumPy array or a tensor, with values in [0, 255].
        mean, std: per-channel statistics in [0, 1]; the defaults are ImageNet's.

    Returns:
        float32 `(x / 255 - mean) / std`, a NumPy array for NumPy input, else a tensor.
    """
    shape = tuple(x.shape)
    if len(shape) < 3 or shape[-1] != 3:
        raise ValueError(
            "preprocess_input expects channels-last RGB images, (H, W, 3) or (N, H, W, 3); "
            f"received shape {shape}."
        )
    scale = np.float32(255.0) * np.asarray(std, "float32")
    offset = np.asarray(mean, "float32") / np.asarray(std, "float32")
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np.asarray(x, "float32") / scale - offset
    x = keras.ops.cast(x, "float32")
    return x / scale - offset


@functools.cache
def _class_index():
    with resources.files("keras_resnext").joinpath("imagenet_class_index.json").open() as f:
        return {int(k): tuple(v) for k, v in json.load(f).items()}


def imagenet_class_names():
    """The 1000 ImageNet-1k class names, in class-index order."""
    index = _class_index()
    return [index[i][1] for i in range(1000)]


def decode_predictions(preds, top=5):
    """Decodes ImageNet-1k predictions, like `keras.applications.*.decode_predictions`.

    Args:
        preds: `(N, 1000)` probabilities or logits.
        top: how many classes to return per image.

    Returns:
        One list per image of `(wordnet_id, class_name, score)` tuples, best first.
    """
    preds = keras.ops.convert_to_numpy(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects a batch of ImageNet-1k predictions, shape (samples, 1000); "
            f"received shape {preds.shape}."
        )
    index = _class_index()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(*index[i], float(row[i])) for i in best])
    return results

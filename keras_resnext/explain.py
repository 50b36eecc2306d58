"""Where the model looks: Grad-CAM heatmaps (Selvaraju et al., ICCV 2017) and the overlays people read.

    heatmaps = kr.explain.gradcam(model, images)            # (N, H, W) in [0, 1], each image's top class
    picture = kr.explain.overlay(raw_image, heatmaps[0])    # (H, W, 3) uint8: the heatmap over the image

Grad-CAM weighs each channel of a feature level by the mean gradient of the class's
score (the logit, before softmax) over that channel, sums, keeps the positive part and
upsamples to the input. The level is read from the model's own `pyramid_outputs`
(`"P5"`, the deepest, by default; `"P4"` gives maps twice as fine), never guessed
from layer names. Gradients are taken with the active backend (TensorFlow or JAX).
"""

import keras
import numpy as np
from keras import ops

from keras_resnext.config import CLASSIFIER
from keras_resnext.models import classifier_layer

__all__ = ["gradcam", "overlay"]


def gradcam(model, images, class_index=None, level=None):
    """Grad-CAM heatmaps of `model` for a batch of `images`.

    Args:
        model: a keras_resnext classifier (a named constructor, `kr.ResNeXt`, a model
            from `keras-resnext train`, `kr.inference_model(...)`), with its head.
        images: a batch `(N, H, W, C)`, preprocessed as the model's input.
        class_index: None (each image's top class), an int (one class for all) or a
            list of N ints.
        level: a key of `model.pyramid_outputs` such as `"P4"`; default the deepest.

    Returns:
        A float32 NumPy array `(N, H, W)` in [0, 1] (an image whose map is all zero
        stays zero); NaN for an image with a NaN or infinite pixel.
    """
    levels = getattr(model, "pyramid_outputs", None)
    head = classifier_layer(model) if levels else None
    if head is None:
        raise ValueError("gradcam needs a keras_resnext classifier: a model with `pyramid_outputs` and its "
                         f"'{CLASSIFIER}' layer (built with include_top=True); got {getattr(model, 'name', model)!r}.")
    level = _check_level(levels, level)
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(f"gradcam takes a batch of images (N, H, W, C); got an array of shape {images.shape}.")
    pixels = ops.convert_to_tensor(images)
    features = keras.Model(model.inputs[0], levels[level])(pixels, training=False)
    chosen = _check_classes(class_index, len(images), int(head.kernel.shape[-1]))
    rest = _rest_of_the_network(model, levels[level], head)

    def score(feature_map):
        """The chosen classes' logits, summed over the batch (each image's gradient is its own)."""
        logits = ops.cast(rest([feature_map, pixels]), "float32")
        # Top classes are picked inside the same pass; argmax has no gradient to disturb.
        classes = ops.argmax(logits, axis=1) if chosen is None else ops.convert_to_tensor(chosen)
        return ops.sum(ops.take_along_axis(logits, ops.cast(classes, "int32")[:, None], axis=1))

    grads = _gradient(score, features)
    feature_map = np.asarray(ops.convert_to_numpy(ops.cast(features, "float32")))
    weights = grads.mean(axis=(1, 2), keepdims=True)  # one weight per channel: the gradient's spatial mean
    cam = np.maximum((weights * feature_map).sum(axis=-1), 0.0)
    cam = ops.convert_to_numpy(ops.image.resize(cam[..., None], images.shape[1:3], interpolation="bilinear"))[..., 0]
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    cam = np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0)
    finite = np.isfinite(images).all(axis=(1, 2, 3))
    return np.where(finite[:, None, None], np.clip(cam, 0.0, 1.0), np.nan).astype("float32")


def _check_level(levels, level):
    if level is None:
        return max(levels, key=lambda key: int(key[1:]))  # P5 for the ImageNet models: the deepest
    if level not in levels:
        raise ValueError(f"Unknown feature level {level!r}; this model has {', '.join(sorted(levels))}.")
    return level


def _check_classes(class_index, n, classes):
    """`class_index` as N int32 class ids, or None for each image's top class."""
    if class_index is None:
        return None
    chosen = np.broadcast_to(np.asarray(class_index), (n,)) if np.ndim(class_index) == 0 else np.asarray(class_index)
    if chosen.shape != (n,) or not np.issubdtype(chosen.dtype, np.integer):
        raise ValueError(f"class_index must be None, an int or a list of {n} ints (one per image); "
                         f"got {class_index!r}.")
    if chosen.min() < 0 or chosen.max() >= classes:
        raise ValueError(f"class_index {class_index!r} is out of range: this model has {classes} classes "
                         f"(0..{classes - 1}).")
    return chosen.astype("int32")


def _rest_of_the_network(model, feature, head):
    """The layers from `feature` to the classifier's logits, as a model of `[feature, images]`.

    The NaN guard before the head also reads the images, hence the second input. The head's
    activation is left out: Grad-CAM explains the score before softmax.
    """
    feature_in = keras.Input(feature.shape[1:], dtype=feature.dtype)
    image_in = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    outputs = {id(feature): feature_in, id(model.inputs[0]): image_in}
    for layer in _layers_between(model, feature, head):
        args = layer.input if isinstance(layer.input, list) else [layer.input]
        inputs = [outputs[id(tensor)] for tensor in args]
        outputs[id(layer.output)] = layer(inputs if len(inputs) > 1 else inputs[0])
    pooled = outputs[id(head.input)]
    logits = ops.matmul(ops.cast(pooled, head.compute_dtype), ops.cast(head.kernel, head.compute_dtype))
    if head.bias is not None:
        logits = logits + ops.cast(head.bias, head.compute_dtype)
    return keras.Model([feature_in, image_in], logits)


def _layers_between(model, feature, head):
    """The layers of `model` after the one that outputs `feature`, up to (not including) `head`, in order."""
    start = next(i for i, layer in enumerate(model.layers) if layer.output is feature)
    return model.layers[start + 1:model.layers.index(head)]


def _gradient(score, x):
    """d score(x) / dx as a NumPy array, with the active backend's autodiff."""
    backend = keras.backend.backend()
    x = ops.convert_to_tensor(x)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            y = score(x)
        return np.asarray(ops.convert_to_numpy(ops.cast(tape.gradient(y, x), "float32")))
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(score)(x), dtype="float32")
    if backend == "torch":
        x = x.detach().requires_grad_(True)
        score(x).backward()
        return x.grad.float().cpu().numpy()
    raise ValueError(f"gradcam supports the tensorflow, jax and torch backends; the active one is {backend!r}.")


def overlay(image, heatmap, alpha=0.45, colormap="jet"):
    """`heatmap` (H, W) in [0, 1] drawn over `image` (H, W, 3) as a uint8 RGB picture.

    `image` is the picture as people see it: uint8, or floats in [0, 255] (or [0, 1]);
    a heatmap of another size is resized to the image. NaN shows as no colour.
    """
    import matplotlib

    image = np.asarray(image, dtype="float32")
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"overlay takes one image (H, W, 3) or (H, W, 1); got shape {image.shape}.")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.max(initial=0.0) <= 1.0:
        image = image * 255.0
    heatmap = np.asarray(heatmap, dtype="float32")
    if heatmap.shape != image.shape[:2]:
        heatmap = ops.convert_to_numpy(ops.image.resize(heatmap[..., None], image.shape[:2]))[..., 0]
    weight = alpha * np.isfinite(heatmap)[..., None]
    colours = matplotlib.colormaps[colormap](np.clip(np.nan_to_num(heatmap), 0.0, 1.0))[..., :3] * 255.0
    return np.clip((1 - weight) * image + weight * colours, 0, 255).astype("uint8")

"""The evaluation transform that goes with a set of pretrained weights."""

import keras

from keras_resnext.evaluation_crop import EvaluationCrop
from keras_resnext.weights import registry


def eval_transform(model, weights="imagenet"):
    """The eval preprocessing of a model's pretrained weights, as a Keras pipeline.

    torchvision/timm evaluate by resizing the shorter side to `size / crop_pct`,
    center-cropping `size` x `size` (`keras_resnext.evaluation_crop.EvaluationCrop`, the
    one crop the data pipeline and the keras-hub converter run too) and normalising with
    the weights' mean/std. The returned `keras.Sequential` does the same on channels-last
    RGB images with values in [0, 255], and can be mapped over a `tf.data.Dataset`.

    Args:
        model: a model built with pretrained weights (it carries them as
            `model.pretrained_cfg`; `weights` is then ignored), or a variant
            name such as `"resnext50_32x4d"`.
        weights: with a variant name, `"imagenet"` or a tag of `list_weights()`.
    """
    entry = getattr(model, "pretrained_cfg", None)
    if entry is None and isinstance(model, keras.Model):
        raise ValueError(
            f"Model {model.name!r} was not built with pretrained weights, so it has no eval transform; "
            "pass a variant name and tag, e.g. eval_transform('resnext50_32x4d', 'tv2_in1k')."
        )
    entry = entry or registry.find(model, weights)
    if entry is None:
        raise ValueError(
            f"No pretrained weights {weights!r} for {model!r}; known tags: "
            f"{', '.join(registry.tags_for(model)) or 'none'}."
        )
    mean = [255.0 * m for m in entry["mean"]]
    variance = [(255.0 * s) ** 2 for s in entry["std"]]
    return keras.Sequential(
        [
            EvaluationCrop(entry["test_input_size"], entry["test_crop_pct"], interpolation=entry["interpolation"]),
            keras.layers.Normalization(mean=mean, variance=variance),
        ],
        name=f"{entry['model']}_{entry['tag']}_eval_transform",
    )

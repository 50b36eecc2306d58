"""A model's fastest inference form: the same weights, computing at the precision this machine runs fastest.

    fast = kr.inference_model(kr.ResNeXt50(weights="imagenet"))   # precision="auto"

The copy computes under Keras' mixed policy of that precision (`mixed_bfloat16`,
`mixed_float16`): variables stay float32, so the weights are exactly the
original's, and the classifier computes in float32, as in mixed-precision
training. bfloat16 pays off on a CPU with AVX512-BF16 or AMX, where oneDNN runs
it natively (BENCHMARKS.md); elsewhere it is emulated and slower than float32,
so `"auto"` keeps float32 there.

`precision="int8"` is asked for, never picked by `"auto"`: it needs calibration images and
returns an `Int8Predictor` (LiteRT's int8 kernels behind Keras' `predict`, see
`keras_resnext.int8`), not a Keras model.
"""

import warnings

import keras

from keras_resnext import devices, int8
from keras_resnext.config import CLASSIFIER, INFERENCE_PRECISIONS, PREPROCESSING, check_choice


def resolve_precision(precision="auto"):
    """The precision `"auto"` stands for here (`devices.inference_precision`, where the package's precision rules
    live): bfloat16 on a CPU with native bf16 or a TPU, float16 on a GPU, else float32. Asking for bfloat16 on a
    CPU without native bf16 works, with a warning that it is slow."""
    check_choice("precision", precision, INFERENCE_PRECISIONS)
    if precision == "auto":
        return devices.inference_precision()[0]
    if precision == "bfloat16" and devices.accelerator() is None and not devices.cpu_has_native_bf16():
        warnings.warn("This CPU has no native bfloat16 (AVX512-BF16 or AMX): bfloat16 inference is emulated "
                      "and slower than float32 here.", stacklevel=3)
    return precision


def inference_model(model, precision="auto", calibration_data=None, engine="auto"):
    """A new functional model with `model`'s weights that computes in `precision`; its classifier in float32.

    Args:
        model: a functional Keras model, such as any keras_resnext model.
        precision: `"auto"` (see `resolve_precision`), `"float32"`, `"bfloat16"`, `"float16"`
            or `"int8"`.
        calibration_data: with `"int8"` only, images preprocessed as the model's input (an
            array `(N, H, W, C)`, an iterable of batches or a dataset of `(images, labels)`):
            a few hundred training images.
        engine: with `"int8"` only, the int8 engine: `"auto"` (the fastest measured on this
            kind of CPU), `"litert"` or `"openvino"`; see `keras_resnext.int8.Int8Predictor`.

    Returns:
        The copy (inference only: its BatchNorms use their moving statistics, as in `predict`);
        for `"int8"`, a `keras_resnext.int8.Int8Predictor` (`predict` and `__call__`, no `fit`).
    """
    precision = resolve_precision(precision)
    if precision == "int8":
        if calibration_data is None:
            raise ValueError("inference_model(precision='int8') needs calibration_data: a few hundred images "
                             "preprocessed as the model's input, e.g. from its training set (an array "
                             "(N, H, W, C), an iterable of batches or a dataset of (images, labels)).")
        return int8.Int8Predictor(model, calibration_data, engine=engine)
    if calibration_data is not None:
        raise ValueError(f"calibration_data is for precision='int8' only; precision is {precision!r}.")
    if engine != "auto":
        raise ValueError(f"engine is for precision='int8' only; precision is {precision!r}.")
    config = model.get_config() if hasattr(model, "get_config") else {}
    if "layers" not in config:
        raise ValueError(f"inference_model needs a functional model (as keras_resnext builds); got {type(model).__name__}.")
    policy = "float32" if precision == "float32" else f"mixed_{precision}"
    for layer in config["layers"]:
        if layer["class_name"] != "InputLayer":  # every layer takes the policy; the ends stay float32
            layer["config"]["dtype"] = "float32" if layer["config"]["name"] in (CLASSIFIER, PREPROCESSING) else policy
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)  # what the blocks' inner layers, made in their constructors, take
    try:
        copy = model.__class__.from_config(config)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    if hasattr(model, "pretrained_cfg"):
        object.__setattr__(copy, "pretrained_cfg", model.pretrained_cfg)
    return copy

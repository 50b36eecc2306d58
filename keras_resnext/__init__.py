"""keras-resnext: ResNeXt (Xie et al., CVPR 2017) for Keras 3."""

from keras_resnext import startup

startup.before_tensorflow()  # first: oneDNN must be settled before Keras imports TensorFlow

# Every class a saved model can name (layers, the model, the optimizer and its schedules) is registered
# here, so `keras.models.load_model` needs no other import (keras-hub's classes: `keras_resnext.hub`).
# The command line imports what a command needs once its arguments are read, so that `--help` and usage
# errors answer before TensorFlow loads (6 s on 2 cores): there, these names load on first use.
if not startup.running_the_cli():
    from keras_resnext import (  # noqa: E402
        config, devices, explain, flops, folders, grouped_conv, inference, layers, models, optimizers, weights,
    )
    from keras_resnext.imagenet_utils import decode_predictions, preprocess_input  # noqa: E402
    from keras_resnext.inference import inference_model  # noqa: E402
    from keras_resnext.models import (  # noqa: E402
        ResNeXt,
        ResNeXt29_8x64d,
        ResNeXt29_16x64d,
        ResNeXt50,
        ResNeXt101,
        ResNeXt101_32x8d,
        ResNeXt101_32x16d,
        ResNeXt101_32x32d,
        ResNeXt101_64x4d,
    )

__version__ = "0.1.0"

# Imported on first use (kr.data, kr.tuning, ...): they pull in TensorFlow or keras-tuner,
# which a user of the models alone on JAX or torch need not pay for (hub: the optional keras-hub).
_LAZY_MODULES = ("augment", "color_augmentation", "cost", "data", "distribute", "ema", "evaluation_crop", "export",
                 "fitting", "hub", "jobs", "recipes", "search_report", "service", "training", "tuning")

__all__ = [
    "ResNeXt",
    "ResNeXt29_8x64d",
    "ResNeXt29_16x64d",
    "ResNeXt50",
    "ResNeXt101",
    "ResNeXt101_32x8d",
    "ResNeXt101_32x16d",
    "ResNeXt101_32x32d",
    "ResNeXt101_64x4d",
    "config",
    "decode_predictions",
    "devices",
    "explain",
    "flops",
    "folders",
    "grouped_conv",
    "inference",
    "inference_model",
    "layers",
    "models",
    "optimizers",
    "preprocess_input",
    "weights",
    *_LAZY_MODULES,
]


# Where the public functions live; the public classes (the constructors) live in models.
_FUNCTIONS = {"decode_predictions": "imagenet_utils", "preprocess_input": "imagenet_utils",
              "inference_model": "inference"}


def __getattr__(name):
    import importlib

    if name in _LAZY_MODULES or (name in __all__ and name.islower() and name not in _FUNCTIONS):
        return importlib.import_module(f"keras_resnext.{name}")
    if name in __all__:  # in the command line's process, which skipped the imports above
        return getattr(importlib.import_module(f"keras_resnext.{_FUNCTIONS.get(name, 'models')}"), name)
    raise AttributeError(f"module 'keras_resnext' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_MODULES))

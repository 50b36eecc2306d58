"""What a run trains and tests on: its data, its model, and their defaults."""

import dataclasses
import datetime
import os
import warnings

import keras

from keras_resnext import data, models, training
from keras_resnext.config import SMALL_IMAGE_DATASETS, eval_split, positive_int
from keras_resnext.weights import registry as weights_registry


DEFAULT_EPOCHS = {"digits": 20, "cifar10": 300, "cifar100": 300}




def build_model(name, classes, image_size, weights=None, include_preprocessing=False):
    """The model `name` (see `models.constructor_for`) for `classes` classes of `image_size` images.

    Pretrained weights with another class count keep their backbone and get a new
    head for `classes` (one warning says so). `include_preprocessing` is the
    constructors' (`keras_resnext.ResNeXt`).
    """
    constructor = models.constructor_for(name)
    input_shape = (image_size, image_size, 3)
    if weights is not None and classes != 1000:
        warnings.warn(f"Fine-tuning: the pretrained classifier is replaced by a new {classes}-class head.",
                      stacklevel=2)
        return training.finetune_model(constructor, classes, weights=weights, input_shape=input_shape,
                                       freeze_backbone=False, include_preprocessing=include_preprocessing)
    return constructor(weights=weights, classes=classes, input_shape=input_shape,
                       include_preprocessing=include_preprocessing)


def eval_crop(model, weights):
    """The evaluation crop of pretrained `weights` (their registry `test_crop_pct`), else ImageNet's 0.875."""
    variant = getattr(models.constructor_for(model), "variant", None)
    entry = weights_registry.find(variant, weights)
    return entry["test_crop_pct"] if entry else 0.875


def _default_output(model, dataset):
    stamp = f"{datetime.datetime.now():%Y%m%d-%H%M%S}"
    return os.path.join("runs", f"{stamp}-{model}-{_safe(dataset)}")


def _safe(dataset):
    """A data set name as part of a file name (`folder:/a/b` -> `folder__a_b`)."""
    return dataset.replace(":", "_").replace("/", "_")


def _image_size(image_size, model, dataset):
    """The training image side: as given, else the data set's for the default model and small images, else 224."""
    if image_size is None and not (model in (None, "default") or dataset in SMALL_IMAGE_DATASETS):
        return 224
    return image_size


def _checked_arguments(dataset, epochs, batch_size):
    """`(epochs, batch_size)` of a run, checked (epochs by default the data set's); a ValueError for bad ones."""
    epochs = DEFAULT_EPOCHS.get(dataset, 90) if epochs is None else positive_int("epochs", epochs)
    return epochs, positive_int("batch_size", batch_size)


def _recipe_data_options(recipe, dataset, model, weights):
    """What the recipe asks of the data (`Recipe.data_options`), the evaluation crop by default that of the
    model's pretrained weights, or ImageNet's 0.875."""
    options = recipe.data_options(dataset, weights)
    return dict(options, crop_pct=options["crop_pct"] or eval_crop(model, weights))


def _build_for_run(strat, model, info, weights, any_size=False):
    """The run's model, built under its strategy, taking the uint8 batches `train` feeds it (a quarter of the
    bytes to move) and normalising them on its device with the data set's mean and std; `any_size`: images of
    any size (it trains at another size than it is evaluated at)."""
    with strat.scope():
        return build_model(model, info.num_classes, None if any_size else info.image_size, weights,
                           include_preprocessing=(info.mean, info.std))


def _fitting_batches(dataset, batch_size, data_options):
    """`_train_and_test_data` with the batch lowered to the training set's size if it is smaller (to a
    multiple of the recipe's augmentation repeats).

    Training drops the last partial batch, so a set smaller than a batch would train on nothing.
    """
    repeats = data_options.get("augment_repeats", 1)
    if batch_size % repeats:
        raise ValueError(f"The torchvision recipe puts each image {repeats} times in a batch (its repeated "
                         f"augmentation): the batch size must be a multiple of {repeats}; received {batch_size}.")
    train_ds, test_ds, info = _train_and_test_data(dataset, batch_size, **data_options)
    if 0 < info.num_examples < batch_size:
        lowered = max(info.num_examples // repeats * repeats, repeats)
        print(f"keras-resnext: {info.num_examples} training images, fewer than a batch of {batch_size}; "
              f"training with batches of {lowered}.")
        batch_size = lowered
        train_ds, test_ds, info = _train_and_test_data(dataset, batch_size, **data_options)
    return train_ds, test_ds, info, batch_size


def _train_and_test_data(dataset, batch_size, image_size, seed, data_dir, download, one_hot=False, val_split=0.2,
                         strict=False, crop_pct=0.875, dtype="float32", data_service=None, augmentation="paper",
                         train_size=None, augment_repeats=1):
    """The training and evaluation pipelines of `dataset` (the first through `data_service`, if given, and at
    `train_size` if given), and its `DatasetInfo` (the evaluation's image size)."""
    common = dict(batch_size=batch_size, data_dir=data_dir, download=download, image_size=image_size,
                  cache=dataset == "digits", val_split=val_split, split_seed=seed, strict=strict, crop_pct=crop_pct,
                  dtype=dtype)
    train_ds, info = data.load_dataset(dataset, "train", seed=seed, data_service=data_service,
                                       augmentation=augmentation, augment_repeats=augment_repeats,
                                       **dict(common, image_size=train_size or image_size))
    if info.details:
        counts = info.details["counts"]["train"]
        print("keras-resnext: training images per class: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    test_ds, evaluation = data.load_dataset(dataset, eval_split(dataset), **common)
    info = dataclasses.replace(info, image_size=evaluation.image_size)
    if one_hot:  # label smoothing needs one-hot targets
        def encode(x, y):
            return x, keras.ops.one_hot(y, info.num_classes)

        train_ds, test_ds = train_ds.map(encode), test_ds.map(encode)
    return train_ds, test_ds, info


def _class_weights(info, class_weight):
    """`{label: weight}` for `fit`: None, or "balanced" (n / (classes * n_c), scikit-learn's rule)."""
    if class_weight is None:
        return None
    if class_weight != "balanced":
        raise ValueError(f"`class_weight` must be None or 'balanced'; received {class_weight!r}.")
    if not info.details:
        raise ValueError("class_weight='balanced' needs per-class counts: an image folder (folder:<root>).")
    counts = list(info.details["counts"]["train"].values())
    return {label: sum(counts) / (len(counts) * n) for label, n in enumerate(counts) if n}


def input_dtype(model):
    """`load_dataset`'s dtype for `model`'s input: raw uint8 pixels if it normalises them itself, else float32."""
    return "uint8" if models.includes_preprocessing(model) else "float32"


def model_input(model, image, mean, std):
    """`image`, float RGB pixels in [0, 255], as `model` takes it: as they are if it normalises them, or normalised."""
    return image if models.includes_preprocessing(model) else (image - mean) / std

"""What `train` is given besides the model and the recipe: the data it trains on, and how the run is kept.

`train(model, dataset, recipe=..., run=...)` takes three groups, each with one home: the recipe
(`keras_resnext.recipes`: optimizer, loss, augmentation), the data (`TrainingData`) and the run
(`RunOptions`). A name stands for a group with its defaults: `dataset="digits"`,
`recipe="paper"`, `run="runs/first"` (the run folder).
"""

import dataclasses
import warnings

from keras_resnext.config import check_fraction


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The data a run trains and tests on.

    - `name`: `"digits"`, `"cifar10"`, `"folder:<root>"` or a tfds name.
    - `image_size`: the training side; by default the data set's for the default model and small
      images, else 224.
    - `val_split`: for a folder without a test split, the stratified fraction held out (the same on
      every rerun).
    - `strict`: refuse files that do not decode instead of skipping them.
    - `class_weight`: `"balanced"` weighs the loss by inverse class frequency (folders).
    - `data_dir`, `download`: where tfds data sets live, and whether to fetch them.
    - `service`: `"grpc://host:port"` runs the training pipeline on a tf.data service's workers
      (`keras_resnext.service`); evaluation stays here.
    """

    name: str = "digits"
    image_size: int | None = None
    val_split: float = 0.2
    strict: bool = False
    class_weight: str | None = None
    data_dir: str | None = None
    download: bool = False
    service: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"A data set is named by a string (digits, cifar10, folder:<root> or a tfds name); "
                             f"received {self.name!r}.")
        check_fraction("val_split", self.val_split)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run is kept: where, with which seed and strategy, at which precision, how loudly.

    - `output`: the run folder (by default `runs/<time>-<model>-<data set>`); `overwrite` trains
      a completed run folder again instead of reporting it.
    - `seed`: seeds the weights, the data's order and augmentation, and a folder's split.
    - `strategy`: `keras_resnext.distribute.make_strategy`'s name (`"auto"`, `"mirrored"`,
      `"multiworker"`, `"tpu"`, `"one"`).
    - `precision`: a Keras dtype policy, or `"auto"`, the fastest here
      (`keras_resnext.devices.training_precision`).
    - `verbose`: Keras `fit`'s.
    """

    output: str | None = None
    overwrite: bool = False
    seed: int = 0
    strategy: str = "auto"
    precision: str = "auto"
    verbose: str | int = "auto"


# train's keywords before they were grouped: each one's group and its name there.
_FORMER_KEYWORDS = {
    "image_size": ("dataset", "image_size"), "val_split": ("dataset", "val_split"), "strict": ("dataset", "strict"),
    "class_weight": ("dataset", "class_weight"), "data_dir": ("dataset", "data_dir"),
    "download": ("dataset", "download"), "data_service": ("dataset", "service"),
    "output": ("run", "output"), "overwrite": ("run", "overwrite"), "seed": ("run", "seed"),
    "strategy": ("run", "strategy"), "precision": ("run", "precision"), "verbose": ("run", "verbose"),
    "schedule": ("recipe", "schedule"), "label_smoothing": ("recipe", "label_smoothing"),
    "optimizer": ("recipe", "optimizer"),
}


def grouped(dataset, run, former):
    """`(TrainingData, RunOptions, recipe settings)` from `train`'s `dataset` and `run` (names or objects) and the
    keywords it took before they were grouped (`former`: accepted, with a DeprecationWarning, for one release)."""
    if unknown := sorted(set(former) - set(_FORMER_KEYWORDS)):
        raise TypeError(f"train() got unexpected keyword arguments: {', '.join(unknown)}.")
    moved = {"dataset": {}, "run": {}, "recipe": {}}
    for keyword, value in former.items():
        group, name = _FORMER_KEYWORDS[keyword]
        moved[group][name] = value
    if former:
        warnings.warn("train(" + ", ".join(former) + "=...) is deprecated: these keywords now belong to "
                      "dataset=TrainingData(...), run=RunOptions(...) or the recipe.", DeprecationWarning,
                      stacklevel=3)
    data = _as(TrainingData, dataset, "name", moved["dataset"], "dataset")
    return data, _as(RunOptions, run, "output", moved["run"], "run"), moved["recipe"]


def _as(kind, value, field, settings, argument):
    """`value` (a `kind`, a string for its `field`, or None) as a `kind`, with `settings` applied."""
    if value is None:
        value = kind()
    elif isinstance(value, str):
        value = kind(**{field: value})
    elif not isinstance(value, kind):
        raise ValueError(f"`{argument}` must be a {kind.__name__} or a string; received {value!r}.")
    return dataclasses.replace(value, **settings) if settings else value

"""Training recipes as objects: one object says everything a run trains with.

A recipe is built once, from its name and settings (`named`) or by a user
(`PaperRecipe(schedule="cosine")`, `TorchvisionRecipe(mixup_alpha=0.8)`, or a subclass
of `Recipe`). It alone says what the optimizer, the loss, the per-image augmentation
(and where the paper's colour augmentation runs), the batch mixing, the repeated
augmentation and the EMA are. `train` and `tune` consume it: the data pipeline takes
`data_options`, `keras_resnext.fitting.fit` takes `for_data`'s callable, and
metrics.json records the `training.RecipeData.settings` of the same build. No other
module asks for a recipe's name.
"""

import dataclasses
import functools

from keras_resnext import devices, training
from keras_resnext.config import (COLOR_PLACES, OPTIMIZERS, RECIPES, SMALL_IMAGE_DATASETS, check_choice,
                                  check_fraction)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What every recipe says besides its optimizer and loss (`build`).

    Attributes:
        augmentation: `load_dataset`'s per-image augmentation (`"paper"`, `"crop_flip"`,
            `"torchvision"`).
        augment_repeats: copies of each image per batch (repeated augmentation).
    """

    name = "custom"
    augmentation: str = "crop_flip"
    augment_repeats: int = 1

    @property
    def one_hot_labels(self):
        """Whether the loss takes one-hot labels (label smoothing, mixed batches)."""
        return False

    def data_options(self, dataset, weights=None):
        """What the data pipeline takes from the recipe: `load_dataset`'s `augmentation` and `augment_repeats`,
        the training side (`train_size`, None: the evaluation's) and the evaluation crop (`crop_pct`, None: that
        of the model's weights)."""
        return {"augmentation": self.augmentation, "augment_repeats": self.augment_repeats, "train_size": None,
                "crop_pct": None}

    def build(self, steps_per_epoch, epochs, batch_size, image_size, num_examples, dataset=None):
        """`(optimizer, loss, training.RecipeData)` for a run of `epochs` epochs of `steps_per_epoch` steps on
        `dataset` (`num_examples` training images of `image_size` pixels)."""
        raise NotImplementedError(f"{type(self).__name__} must define build().")

    def for_data(self, image_size, num_examples, dataset=None):
        """The recipe for `fitting.fit`, `recipe(steps_per_epoch, epochs=..., batch_size=...)`, on `dataset`'s
        `num_examples` training images of `image_size` pixels."""
        return functools.partial(self.build, image_size=image_size, num_examples=max(num_examples, 1),
                                 dataset=dataset)


@dataclasses.dataclass(frozen=True)
class PaperRecipe(Recipe):
    """The paper's: `training.imagenet_recipe` from 128 px up, `training.cifar_recipe` below, with fb.resnet.torch's
    colour jitter and PCA lighting after the crop and flip of ImageNet-style images.

    Attributes:
        schedule: `"step"` (the paper's) or `"cosine"`.
        label_smoothing: 0, the paper's.
        optimizer: `"paper"`, the paper's step, or `"decoupled"` (see `training.sgd`).
        color: where the colour augmentation runs: `"host"`, in the tf.data pipeline;
            `"device"`, in the training step (`keras_resnext.color_augmentation`), after
            the uint8 batch has crossed; `"auto"`, the device when it is an accelerator
            (the host then feeds at crop-and-flip speed), else the host.
    """

    name = "paper"
    augmentation: str = "paper"
    schedule: str = "step"
    label_smoothing: float = 0.0
    optimizer: str = "paper"
    color: str = "auto"

    def __post_init__(self):
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("color", self.color, COLOR_PLACES)
        check_fraction("label_smoothing", self.label_smoothing, allow_zero=True)
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"`schedule` must be 'step' or 'cosine'; received {self.schedule!r}.")

    @property
    def one_hot_labels(self):
        return bool(self.label_smoothing)

    def color_place(self, dataset):
        """Where the colour augmentation of `dataset` runs: `"host"`, `"device"`, or None: small images (digits,
        CIFAR) take the paper's pad-and-crop alone, and `augmentation="crop_flip"` has none."""
        if dataset in SMALL_IMAGE_DATASETS or self.augmentation != "paper":
            return None
        if self.color != "auto":
            return self.color
        return "device" if devices.accelerator() else "host"  # on a CPU alone, host and device are one

    def data_options(self, dataset, weights=None):
        options = super().data_options(dataset, weights)
        if self.color_place(dataset) == "device":
            options["augmentation"] = "crop_flip"  # the colour comes in the training step
        return options

    def build(self, steps_per_epoch, epochs, batch_size, image_size, num_examples, dataset=None):
        imagenet = image_size >= 128
        make = training.imagenet_recipe if imagenet else training.cifar_recipe
        optimizer, loss = make(steps_per_epoch, epochs=epochs, batch_size=batch_size, schedule=self.schedule,
                               label_smoothing=self.label_smoothing, optimizer=self.optimizer)
        settings = {"name": "paper", "optimizer": self.optimizer, "schedule": self.schedule, "base_lr": 0.1,
                    "per_batch": 256 if imagenet else 128, "weight_decay": 1e-4 if imagenet else 5e-4,
                    "momentum": 0.9, "label_smoothing": self.label_smoothing, "augmentation": self.augmentation,
                    "color_augmentation": self.color_place(dataset)}
        return optimizer, loss, training.RecipeData(self.augmentation, 0.0, 0.0, None, settings,
                                                    color_on_device=settings["color_augmentation"] == "device")


@dataclasses.dataclass(frozen=True)
class TorchvisionRecipe(Recipe):
    """The recipe behind torchvision's v2 weights (`training.torchvision_recipe`, whose arguments these are).

    From scratch on `imagenet2012` it trains at 176 px and evaluates at 224 after a
    resize to 232, its references' values.
    """

    name = "torchvision"
    augmentation: str = "torchvision"
    augment_repeats: int = training.TORCHVISION_AUGMENT_REPEATS
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 1.0
    base_lr: float = 0.5
    weight_decay: float = 2e-5
    ema_decay: float = 0.99998
    ema_steps: int = 32
    warmup_epochs: int = None

    def __post_init__(self):
        check_fraction("label_smoothing", self.label_smoothing, allow_zero=True)

    @property
    def one_hot_labels(self):
        return True

    def data_options(self, dataset, weights=None):
        options = super().data_options(dataset, weights)
        if dataset == "imagenet2012" and weights is None:
            options.update(train_size=176, crop_pct=224 / 232)
        return options

    def build(self, steps_per_epoch, epochs, batch_size, image_size, num_examples, dataset=None):
        return training.torchvision_recipe(
            steps_per_epoch, epochs=epochs, batch_size=batch_size, num_examples=num_examples, base_lr=self.base_lr,
            warmup_epochs=self.warmup_epochs, weight_decay=self.weight_decay, label_smoothing=self.label_smoothing,
            mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha, ema_decay=self.ema_decay,
            ema_steps=self.ema_steps, augment_repeats=self.augment_repeats)


def named(name, schedule="step", label_smoothing=0.0, optimizer="paper", color="auto"):
    """The recipe `name` (`train --recipe`) with the command line's settings: `"paper"` takes them all;
    `"torchvision"` takes `label_smoothing` (0 means its own 0.1) and refuses the rest."""
    if check_choice("recipe", name, RECIPES) == "paper":
        return PaperRecipe(schedule=schedule, label_smoothing=label_smoothing, optimizer=optimizer, color=color)
    if schedule != "step" or optimizer != "paper" or color != "auto":
        raise ValueError("--schedule, --optimizer and --color are the paper recipe's; torchvision's recipe has its "
                         "own (cosine with warmup, SGD without nesterov, no colour jitter).")
    return TorchvisionRecipe(label_smoothing=label_smoothing or 0.1)


def resolve(recipe, **settings):
    """`recipe` as an object: a `Recipe` as it is (with no `settings` besides their defaults: they belong to the
    object), or a name built by `named` with `settings`."""
    if isinstance(recipe, Recipe):
        defaults = {"schedule": "step", "label_smoothing": 0.0, "optimizer": "paper", "color": "auto"}
        if changed := sorted(k for k, v in settings.items() if v != defaults[k]):
            raise ValueError(f"{', '.join(changed)} belong to the recipe object: set them on "
                             f"{type(recipe).__name__}(...), not beside it.")
        return recipe
    return named(recipe, **settings)

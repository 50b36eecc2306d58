"""The paper's training recipes for `model.fit`, fine-tuning and precision helpers.

ImageNet (Xie et al. 2017, Sec. 4): SGD, momentum 0.9, batch 256 with lr 0.1
(linearly scaled with the batch), weight decay 1e-4, lr divided by 10 three times
(or cosine), here with an optional linear warmup. CIFAR (Sec. 5.1 of the paper):
batch 128, lr 0.1, weight decay 5e-4, momentum 0.9, 300 epochs, lr / 10 at
epochs 150 and 225.

The recipes step as the paper's code does (`optimizer="paper"`, the default):
`TorchSGD`, Torch7's and PyTorch's SGD with nesterov momentum and weight decay
added to the gradient of every parameter, the lr dropping at the reference's
steps (`MultiStepDecay`). `optimizer="decoupled"` is the common modern choice
instead: Keras' SGD, weight decay decoupled from the momentum (`w -= lr * wd * w`)
and on conv/dense kernels only, not BatchNorm's gamma and beta or biases.
"""

import csv
import dataclasses
import itertools
import json
import os

import keras

from keras_resnext import devices, distribute, files, models, run_folder
from keras_resnext import ema as ema_lib
from keras_resnext.config import OPTIMIZERS, check_choice, check_fraction
from keras_resnext.layers import TorchBatchNormalization
from keras_resnext.models import ResNeXtModel, classifier
from keras_resnext.optimizers import EpochWarmupCosine, MultiStepDecay, TorchSGD, WarmupSchedule

NO_DECAY = ["gamma", "beta", "bias"]
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "bfloat16", "float16")


def sgd(learning_rate, weight_decay, momentum=0.9, nesterov=None, optimizer="paper"):
    """The recipes' SGD: the paper's step (`TorchSGD`), or Keras' SGD with decoupled decay.

    Args:
        learning_rate: a float or a `LearningRateSchedule`.
        weight_decay: the paper's 1e-4 (ImageNet) or 5e-4 (CIFAR).
        nesterov: defaults to the choice's own: on for "paper" (as the paper's
            code), off for "decoupled".
        optimizer: `"paper"`: PyTorch's and Torch7's SGD, weight decay added to
            the gradient of every parameter. `"decoupled"`: Keras' SGD, weight decay
            `w -= lr * wd * w` outside the momentum, on kernels only (not BatchNorm
            or biases).
    """
    if check_choice("optimizer", optimizer, OPTIMIZERS) == "paper":
        return TorchSGD(learning_rate, momentum=momentum, nesterov=True if nesterov is None else nesterov,
                        weight_decay=weight_decay)
    decoupled = keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=bool(nesterov),
                                     weight_decay=weight_decay)
    decoupled.exclude_from_weight_decay(var_names=NO_DECAY)
    return decoupled


def imagenet_recipe(
    steps_per_epoch,
    epochs=100,
    batch_size=256,
    schedule="step",
    warmup_epochs=0,
    base_lr=0.1,
    weight_decay=1e-4,
    label_smoothing=0.0,
    optimizer="paper",
):
    """The paper's ImageNet optimizer and loss: `(optimizer, loss)` for `model.compile`.

    Args:
        steps_per_epoch: optimizer steps per epoch (images / global batch).
        epochs: total epochs (the paper: 100, lr / 10 at 30, 60, 90 for "step").
        batch_size: global batch; the lr is `base_lr * batch_size / 256`.
        schedule: `"step"` (/ 10 at 30%, 60%, 90% of training) or `"cosine"`.
        warmup_epochs: linear warmup, as for large batches (Goyal et al.).
        label_smoothing: 0.1 is the common modern setting; 0 is the paper's.
        optimizer: `"paper"` (the paper's step) or `"decoupled"`, see `sgd`.
    """
    peak = base_lr * batch_size / 256
    return _recipe(steps_per_epoch, epochs, peak, schedule, (0.3, 0.6, 0.9), warmup_epochs, weight_decay,
                   label_smoothing, optimizer)


def cifar_recipe(
    steps_per_epoch,
    epochs=300,
    batch_size=128,
    base_lr=0.1,
    weight_decay=5e-4,
    label_smoothing=0.0,
    schedule="step",
    warmup_epochs=0,
    optimizer="paper",
):
    """The paper's CIFAR optimizer and loss: lr 0.1 per 128 images, / 10 at 50% and 75% (see `imagenet_recipe`)."""
    peak = base_lr * batch_size / 128
    return _recipe(steps_per_epoch, epochs, peak, schedule, (0.5, 0.75), warmup_epochs, weight_decay,
                   label_smoothing, optimizer)


def _recipe(steps_per_epoch, epochs, peak, schedule, drops, warmup_epochs, weight_decay, label_smoothing,
            optimizer):
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"steps_per_epoch and epochs must be positive; got {steps_per_epoch}, {epochs}.")
    warmup = int(warmup_epochs * steps_per_epoch)
    total = epochs * steps_per_epoch - warmup
    if schedule == "step":
        lr = MultiStepDecay(peak, [int(f * epochs * steps_per_epoch) - warmup for f in drops])
    elif schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(peak, max(total, 1))
    else:
        raise ValueError(f"`schedule` must be 'step' or 'cosine'; received {schedule!r}.")
    if warmup:
        lr = WarmupSchedule(lr, warmup, peak)
    label_smoothing = check_fraction("label_smoothing", label_smoothing, allow_zero=True)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing) if label_smoothing else (
        keras.losses.SparseCategoricalCrossentropy()
    )
    return sgd(lr, weight_decay, optimizer=optimizer), loss


# torchvision's --ra-reps with --ra-sampler, as its v2 ResNet/ResNeXt weights were trained.
TORCHVISION_AUGMENT_REPEATS = 4


@dataclasses.dataclass
class RecipeData:
    """What a recipe (`torchvision_recipe`, a `keras_resnext.recipes.Recipe`) asks of the data and of `fit` besides
    its optimizer and loss.

    Attributes:
        augmentation: `load_dataset`'s per-image augmentation (`"torchvision"`:
            TrivialAugmentWide and random erasing after the crop and flip).
        mixup_alpha, cutmix_alpha: the batch-level MixUp and CutMix (`mix`).
        ema: the `keras_resnext.ema.ExponentialMovingAverage` callback for `fit`; once
            `fit` is done, `ema.apply()` puts the average in the model, as the recipe
            evaluates and ships it.
        settings: the recipe's values, as `train` records them in metrics.json.
        augment_repeats: `load_dataset`'s repeated augmentation (torchvision's
            `--ra-sampler --ra-reps 4`): every image of a batch that many times, each copy
            augmented anew; an epoch is then `1 / augment_repeats` of a pass.
        color_on_device: the paper's colour augmentation runs in the training step
            (`keras_resnext.color_augmentation`), not in the data pipeline.
    """

    augmentation: str
    mixup_alpha: float
    cutmix_alpha: float
    ema: object
    settings: dict
    augment_repeats: int = 1
    color_on_device: bool = False

    @property
    def mixes(self):
        """Whether the recipe mixes batches (MixUp or CutMix) at all."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def mix(self, dataset, num_classes, seed=None):
        """`dataset`'s batches with one-hot labels, each MixUp or CutMix (`kr.augment.mix_batch`), seeded per batch."""
        return mix_batches(dataset, num_classes, seed, self.mixup_alpha, self.cutmix_alpha)


def mix_batches(dataset, num_classes, seed=None, mixup_alpha=0.2, cutmix_alpha=1.0):
    """torchvision's batch-level MixUp or CutMix over a dataset of `(images, int labels)` batches; images float32."""
    import tensorflow as tf

    from keras_resnext import augment

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def mix(batch, batch_seed):
        images, labels = batch
        labels = labels if len(labels.shape) == 2 else tf.one_hot(labels, num_classes)
        return augment.mix_batch(tf.cast(images, tf.float32), labels, batch_seed, mixup_alpha, cutmix_alpha)

    return tf.data.Dataset.zip((dataset, seeds)).map(mix, num_parallel_calls=tf.data.AUTOTUNE)


def torchvision_recipe(steps_per_epoch, epochs=600, batch_size=1024, num_examples=ema_lib.IMAGENET_TRAIN_IMAGES,
                       base_lr=0.5, warmup_epochs=None, weight_decay=2e-5, label_smoothing=0.1, mixup_alpha=0.2,
                       cutmix_alpha=1.0, ema_decay=0.99998, ema_steps=32, augment_repeats=TORCHVISION_AUGMENT_REPEATS):
    """The recipe behind torchvision's v2 ResNet/ResNeXt weights (81.2% top-1 for ResNeXt-50 32x4d):
    `(optimizer, loss, data)`.

    torchvision's references/classification: SGD momentum 0.9 (no nesterov), lr 0.5 per
    1,024 images (linearly scaled with `batch_size`), 5 linear warmup epochs from 1% then
    cosine to 0 (`keras_resnext.optimizers.EpochWarmupCosine`, stepped per epoch), weight
    decay 2e-5 added to the gradient of every variable but BatchNorm's, label smoothing 0.1,
    MixUp 0.2 or CutMix 1.0 per batch, TrivialAugmentWide and random erasing 0.1 per image,
    each image 4 times per batch (repeated augmentation), an EMA of the weights every 32
    steps (decay 0.99998, adjusted), 600 epochs. `data` is a `RecipeData`.

    Args:
        steps_per_epoch, epochs, batch_size: of the run (`batch_size` the global batch).
        num_examples: the training images; the EMA's decay adjustment scales with them
            (torchvision's formula takes ImageNet's 1,281,167 as given).
        warmup_epochs: default 5 of ImageNet's 600, the same fraction otherwise (at least one).
        augment_repeats: the copies of each image per batch that the data must be loaded
            with (`load_dataset(..., augment_repeats=data.augment_repeats)`); 1 turns it off.
    """
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"steps_per_epoch and epochs must be positive; got {steps_per_epoch}, {epochs}.")
    warmup_epochs = min(max(round(5 * epochs / 600), 1), epochs - 1) if warmup_epochs is None else warmup_epochs
    peak = base_lr * batch_size / 1024
    lr = EpochWarmupCosine(peak, steps_per_epoch, epochs, warmup_epochs=warmup_epochs)
    optimizer = TorchSGD(lr, momentum=0.9, nesterov=False, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])  # torchvision's norm_weight_decay 0
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=check_fraction("label_smoothing", label_smoothing,
                                                                               allow_zero=True))
    decay = ema_lib.adjusted_decay(ema_decay, batch_size, ema_steps, epochs, num_examples)
    settings = dict(name="torchvision", base_lr=base_lr, per_batch=1024, lr=peak, momentum=0.9, nesterov=False,
                    schedule="cosine", warmup_epochs=warmup_epochs, warmup_factor=0.01, weight_decay=weight_decay,
                    norm_weight_decay=0.0, label_smoothing=label_smoothing, mixup_alpha=mixup_alpha,
                    cutmix_alpha=cutmix_alpha, augmentation="trivial_augment_wide", random_erasing=0.1,
                    ema_decay=ema_decay, ema_steps=ema_steps, ema_decay_adjusted=decay, epochs=epochs,
                    augment_repeats=augment_repeats)
    ema = ema_lib.ExponentialMovingAverage(decay, ema_steps, warmup_epochs=warmup_epochs)
    return optimizer, loss, RecipeData("torchvision", mixup_alpha, cutmix_alpha, ema, settings, augment_repeats)


def set_precision(policy="auto"):
    """Sets the global Keras dtype policy and returns its name.

    `"auto"`: the fastest here (`keras_resnext.devices.training_precision`):
    `mixed_float16` on a GPU, `mixed_bfloat16` on a TPU and on a CPU with native
    bfloat16 (AVX-512 BF16 or AMX), `float32` on other CPUs. These models' heads
    stay float32 under mixed precision (see `ResNeXt`).
    """
    if policy == "auto":
        policy = devices.training_precision()[0]
    if policy not in PRECISIONS:
        raise ValueError(f"Unknown precision {policy!r}; expected auto, float32, mixed_float16 or mixed_bfloat16.")
    keras.config.set_dtype_policy(policy)
    return policy


def set_backbone_trainable(model, trainable):
    """Freezes (or unfreezes) every layer but the classifier (`predictions`).

    A frozen BatchNorm runs in inference mode (Keras' rule for `trainable=False`),
    so fine-tuning a small head does not disturb the pretrained statistics.
    Recompile the model after calling this. (`models.freeze(model, frozen=not trainable)`.)
    """
    return models.freeze(model, frozen=not trainable)


def finetune_model(constructor, classes, weights="imagenet", input_shape=None, freeze_backbone=True,
                   classifier_activation="softmax", include_preprocessing=False):
    """A pretrained backbone from `constructor` with a new `classes`-way head.

    `constructor` is e.g. `keras_resnext.ResNeXt50`; `weights` a tag or path;
    `include_preprocessing` as in `keras_resnext.ResNeXt`.
    """
    backbone = constructor(include_top=False, weights=weights, input_shape=input_shape, pooling="avg",
                           include_preprocessing=include_preprocessing)
    outputs = classifier(classes, backbone.output.shape[-1], classifier_activation)(backbone.output)
    model = ResNeXtModel(backbone.inputs, outputs, name=f"{backbone.name}_finetune")
    return set_backbone_trainable(model, not freeze_backbone)


def recompute_batchnorm_statistics(model, dataset, max_batches=200):
    """Sets every trainable BatchNorm's moving mean and variance to their average over `dataset`'s batches.

    "Precise BN" (Wu & Johnson, 2021): the moving statistics are an exponential
    average taken while the weights still moved, so a short run ends with statistics
    of weights it no longer has. Averaged over up to `max_batches` training batches
    of the final weights, they match the network that is evaluated. Nothing but the
    moving statistics changes. `dataset` yields `(images, labels)` or images.
    Returns the number of batches used.
    """
    norms = [layer for layer in model._flatten_layers(include_self=False)  # every nested layer
             if isinstance(layer, TorchBatchNormalization) and layer.trainable]
    momentums = [norm.momentum for norm in norms]
    seen = 0
    try:
        for seen, batch in enumerate(itertools.islice(dataset, max_batches), start=1):
            for norm in norms:  # moving = (1 - 1/k) moving + batch / k: the mean of the k batches so far
                norm.momentum = 1 - 1 / seen
            model(batch[0] if isinstance(batch, (tuple, list)) else batch, training=True)
    finally:
        for norm, momentum in zip(norms, momentums):
            norm.momentum = momentum
    return seen


def default_callbacks(output_dir, backup=True, tensorboard=True, backup_dir="backup", ema=None, write=True):
    """The log (`log.csv`), a backup to resume from after a kill, TerminateOnNaN and TensorBoard.

    The backup lives in `output_dir/backup_dir` and outlives `fit`: the caller
    deletes it once the run's results are written, so a kill in between still resumes.
    An `ema` (`keras_resnext.ema.ExponentialMovingAverage`) is saved with the backup.
    Not `write`: a process that trains with another that writes `output_dir` (JAX
    across processes) only resumes from its backup, and writes nothing.
    """
    callbacks = [EpochLog(os.path.join(output_dir, "log.csv")), keras.callbacks.TerminateOnNaN()]
    if backup:  # after the log: an epoch counts as done (backed up) only once its row is written
        callbacks.insert(1, AtomicBackupAndRestore(os.path.join(output_dir, backup_dir), write=write))
    if ema is not None:  # before the backup: its file is written before the backup names the epoch done
        ema.backup_dir, ema.writes = (os.path.join(output_dir, backup_dir) if backup else None), write
        callbacks.insert(1, ema)
    if not write:
        callbacks.pop(0)
    if tensorboard and write:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard"), write_graph=False))
    return callbacks


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore with a backup that a kill at any instant cannot break.

    Keras overwrites `latest.weights.h5` in place, so a kill during the write leaves a
    file no rerun can read. Here each epoch's weights (with the optimizer state) go
    to a new file, and one atomic replace of `training_metadata.json`, which names
    that file, switches the backup to it. A diverged epoch (NaN in its logs) is not
    backed up. The backup is kept when `fit` ends. Not `write`: it only restores (a
    process of a JAX run spanning processes whose process 0 writes the backup).
    """

    def __init__(self, backup_dir, write=True):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        if self.write and not any(run_folder.non_finite(v) for v in (logs or {}).values()):
            super().on_epoch_end(epoch, logs)

    def _save_model(self):
        name = f"epoch{self._current_epoch:05d}.weights.h5"
        with files.atomic_path(os.path.join(self.backup_dir, name)) as tmp, distribute.this_process_only():
            self.model.save_weights(tmp)
        files.write_json(self._training_metadata_path,
                         {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name,
                          "optimizer": _optimizer_name(self.model.optimizer)})
        for old in os.listdir(self.backup_dir):  # older backups, and temporaries a kill left behind
            if old != name and old.endswith(".weights.h5"):
                os.remove(os.path.join(self.backup_dir, old))

    def _load_model(self):
        if not os.path.exists(self._training_metadata_path):
            return
        with open(self._training_metadata_path) as f:
            metadata = json.load(f)
        _check_backup_optimizer(self.backup_dir, metadata.get("optimizer"), self.model.optimizer)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        # Backups of Keras' own callback name no file: theirs is latest.weights.h5.
        self.model.load_weights(os.path.join(self.backup_dir, metadata.get("weights", "latest.weights.h5")))
        self.model._initial_epoch = metadata["epoch"]


def _optimizer_name(optimizer):
    return None if optimizer is None else keras.saving.get_registered_name(type(optimizer))


def _check_backup_optimizer(backup_dir, recorded, optimizer):
    """Refuses a backup whose optimizer state is another optimizer's: its slots would load, silently wrong.

    Keras' weights file keeps optimizer variables by position, not by name. A backup
    from before the optimizer was recorded holds Keras' SGD velocity (`lr * g`
    accumulated), which `TorchSGD`'s buffer of gradients cannot resume from.
    """
    current = _optimizer_name(optimizer)
    if recorded == current or (recorded is None and not isinstance(optimizer, TorchSGD)):
        return
    written = f"optimizer {recorded}" if recorded else "Keras' SGD (an older keras-resnext)"
    raise ValueError(f"{backup_dir} holds the state of {written}, not of this run's {current}: its momentum "
                     "cannot resume here. Resume with the optimizer the run started with (`train --optimizer "
                     "decoupled` for Keras' SGD), or start the run afresh with --overwrite.")


class EpochLog(keras.callbacks.Callback):
    """`log.csv`, one row per finished epoch, rewritten atomically after each.

    A resumed run drops the rows of the epochs it trains again, so the log holds
    one series however often the run was killed.
    """

    def __init__(self, path):
        super().__init__()
        self.path, self._rows = path, None

    def on_epoch_begin(self, epoch, logs=None):
        if self._rows is None:
            self._rows = [row for row in read_log(self.path) if int(row["epoch"]) < epoch]

    def on_epoch_end(self, epoch, logs=None):
        self._rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        columns = ["epoch", *sorted({key for row in self._rows for key in row} - {"epoch"})]
        files.write_csv(self.path, self._rows, columns)


def read_log(path):
    """The rows of a `log.csv` (none if there is no file yet)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))

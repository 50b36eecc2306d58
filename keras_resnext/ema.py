"""An exponential moving average of a model's weights, as torchvision's reference training keeps it.

`references/classification` keeps `ExponentialMovingAverage`, an `AveragedModel` over the
parameters and the buffers (BatchNorm's running statistics too), updated after every
`ema_steps`-th step of an epoch (`i % 32 == 0`), copied rather than averaged during the
warmup epochs, with a decay adjusted for the batch and the epochs. Keras' optimizer EMA
(`use_ema`) averages the trainable variables alone, at every step: another average.
"""

import json
import os

import keras
import numpy as np

from keras_resnext import files

# torchvision leaves the data set's size out of its decay adjustment ("a constant for a given data set"): it is
# ImageNet's. Made explicit, the average spans the same fraction of training on any data set.
IMAGENET_TRAIN_IMAGES = 1_281_167


def adjusted_decay(decay, global_batch, ema_steps, epochs, examples=IMAGENET_TRAIN_IMAGES):
    """torchvision's adjustment `1 - min(1, (1 - decay) * batch * ema_steps / epochs)`, scaled to `examples`."""
    alpha = (1.0 - decay) * global_batch * ema_steps / epochs * IMAGENET_TRAIN_IMAGES / examples
    return 1.0 - min(1.0, alpha)


class ExponentialMovingAverage(keras.callbacks.Callback):
    """`ema = decay * ema + (1 - decay) * w` over every variable of the model, every `ema_steps` steps.

    The first update copies the weights, and so does every update in the first
    `warmup_epochs` epochs (torchvision resets its average there). `apply(model)`
    writes the average into the model, BatchNorm statistics included, for evaluation,
    saving and export. With `backup_dir` (the run's backup) the average is saved at
    every epoch's end, named by the number of epochs done, and restored on resume with
    the weights of that epoch.
    """

    def __init__(self, decay, ema_steps=32, warmup_epochs=0, backup_dir=None):
        super().__init__()
        self.decay, self.ema_steps, self.warmup_epochs = float(decay), int(ema_steps), int(warmup_epochs)
        self.backup_dir, self.average, self.updates, self._epoch = backup_dir, None, 0, 0
        self.writes = True  # False: restored from the backup, never saved to it (another process saves it)

    def on_train_begin(self, logs=None):
        done = self._backed_up_epochs()
        path = self._path(done) if done else None
        if path and os.path.exists(path):
            with np.load(path) as saved:
                self.average = [saved[f"v{i}"] for i in range(len(self.model.variables))]
                self.updates = int(saved["updates"])

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.ema_steps:
            return
        weights = [keras.ops.convert_to_numpy(v) for v in self.model.variables]
        if self.average is None or self.updates == 0:
            self.average = [w.astype("float32", copy=True) for w in weights]
        else:
            self.average = [self.decay * a + (1.0 - self.decay) * w for a, w in zip(self.average, weights)]
        self.updates = 0 if self._epoch < self.warmup_epochs else self.updates + 1

    def on_epoch_end(self, epoch, logs=None):
        if self.backup_dir is None or self.average is None or not self.writes:
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        with files.atomic_path(self._path(epoch + 1)) as tmp, open(tmp, "wb") as f:
            np.savez(f, updates=self.updates, **{f"v{i}": a for i, a in enumerate(self.average)})
        for old in os.listdir(self.backup_dir):  # the one before stays until the backup has moved past it
            if old.startswith("ema-epoch") and old not in (os.path.basename(self._path(epoch + 1)),
                                                           os.path.basename(self._path(epoch))):
                os.remove(os.path.join(self.backup_dir, old))

    def apply(self, model=None):
        """Writes the average into `model` (the one trained by default); nothing before the first update."""
        model = model or self.model
        if self.average is not None:
            for variable, value in zip(model.variables, self.average):
                variable.assign(value.astype(variable.dtype))

    def _path(self, epochs_done):
        return os.path.join(self.backup_dir, f"ema-epoch{epochs_done:05d}.npz")

    def _backed_up_epochs(self):
        """The epochs the run's backup holds (its training_metadata.json), or 0."""
        if self.backup_dir is None:
            return 0
        try:
            with open(os.path.join(self.backup_dir, "training_metadata.json")) as f:
                return int(json.load(f).get("epoch", 0))
        except (OSError, ValueError):
            return 0

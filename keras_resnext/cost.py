"""A model's measured cost on the device it runs on: what MACs cannot say.

At equal MACs, models differ in real speed (a grouped 3x3 conv moves more memory per
multiply-add than a dense one), so a search reports each candidate's speed measured
here, the way `benchmarks/speed.py` measures: the compiled call warmed up first
(tracing, first-call costs), then the median of several timed calls. Training speed is
timed on the real training steps (`StepTimer`): tracing a training step only to time it
costs more than a short search's training (1.3-1.6 s a small candidate on 2 cores).
"""

import statistics
import time

import keras
import numpy as np

from keras_resnext import models


def measure(model, batch_size, rounds=5, seed=0):
    """`{latency_ms, infer_images_per_second}` of `model` here, at its dtype policy's precision.

    `latency_ms` is one image's, `infer_images_per_second` a batch of `batch_size`'s,
    each the median of `rounds` compiled calls (`predict_on_batch`) after two warm-up
    calls. The training step's speed is measured on real training (`StepTimer`).
    """
    rng = np.random.default_rng(seed)
    shape = tuple(model.inputs[0].shape[1:])
    # Tensors of the dtype a data set feeds this model (raw uint8 pixels to one that normalises them): the
    # compiled function that evaluated it then serves these calls, with no second one traced.
    dtype = "uint8" if models.includes_preprocessing(model) else "float32"
    images = keras.ops.convert_to_tensor(rng.integers(0, 256, (batch_size, *shape)), dtype)
    latency = _median_seconds(lambda: model.predict_on_batch(images[:1]), rounds)
    infer = _median_seconds(lambda: model.predict_on_batch(images), rounds)
    return {"latency_ms": round(latency * 1000, 3), "infer_images_per_second": round(batch_size / infer, 1)}


class StepTimer(keras.callbacks.Callback):
    """Times `fit`'s training steps: `images_per_second()` is `batch_size` (set it before `fit` if not given)
    over the median step after `skip`.

    The steps are the real ones, the compiled step and its input included, so the
    figure costs nothing to measure; the first steps (tracing, warming up) are skipped.
    A step is the time from one step's start to the next's: only the start is hooked,
    since a callback that hooks a step's end stops Keras from handing its other
    callbacks to a thread, and the loop would then wait for each step's logs.
    """

    def __init__(self, batch_size=None, skip=2):
        super().__init__()
        self.batch_size, self.skip, self.starts = batch_size, skip, []

    def on_train_batch_begin(self, batch, logs=None):
        self.starts.append(time.perf_counter())

    def on_epoch_begin(self, epoch, logs=None):
        self.starts.append(None)  # an epoch's end (validation, callbacks) is no step

    def images_per_second(self):
        """None when fewer steps than `skip + 2` ran."""
        steps = [b - a for a, b in zip(self.starts, self.starts[1:]) if a is not None and b is not None]
        timed = steps[self.skip:]
        return round(self.batch_size / statistics.median(timed), 1) if timed else None


def _median_seconds(call, rounds, warmup=2):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

"""One process of a JAX run spanning processes: `--strategy multiworker`'s distribution, checked step by step.

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \
    KERAS_DISTRIBUTION_JOB_ADDRESSES=127.0.0.1:PORT KERAS_DISTRIBUTION_NUM_PROCESSES=2 \
    KERAS_DISTRIBUTION_PROCESS_ID=I python tests/multiprocess_step.py

Each process joins through `distribute.make_strategy("multiworker")` (Keras' variables, gloo
collectives), feeds its own half of one global batch to a small ResNeXt under the distribution,
and computes the same step on the whole batch alone, outside it. Prints one JSON line: the
devices and processes seen, both losses, the largest difference of the weights after the step
(one SGD step: equal weights are equal gradients), a checksum of the weights to compare across
processes, and the examples of one epoch of a tf.data pipeline that Keras gives this process.
"""

import json

import keras
import numpy as np

import keras_resnext as kr
from keras_resnext import distribute

GLOBAL_BATCH = 16


def model():
    keras.utils.set_random_seed(1)
    net = kr.ResNeXt((1, 1), 4, 4, classes=3, input_shape=(32, 32, 3), classifier_activation=None)
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return net


def main():
    strategy = distribute.make_strategy("multiworker")  # first: it starts JAX's runtime across the processes
    import jax
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(GLOBAL_BATCH, 32, 32, 3)).astype("float32"), rng.integers(0, 3, GLOBAL_BATCH)
    index, half = jax.process_index(), GLOBAL_BATCH // jax.process_count()
    with strategy.scope():
        parallel = model()
        parallel_loss = float(parallel.train_on_batch(x[index * half:(index + 1) * half],
                                                      y[index * half:(index + 1) * half]))
        examples = tf.data.Dataset.range(64).batch(16, drop_remainder=True)
        mine = sorted(int(i) for batch in strategy.distribution.distribute_dataset(examples) for i in batch)
    with distribute.this_process_only():
        single = model()
        single_loss = float(single.train_on_batch(x, y))
        weights = [np.asarray(v.value) for v in parallel.weights]
    print(json.dumps({
        "process": index, "processes": jax.process_count(), "devices": strategy.num_replicas_in_sync,
        "described": distribute.describe(strategy), "losses": [single_loss, parallel_loss],
        "weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), weights)),
        "checksum": float(sum(np.abs(w).astype("float64").sum() for w in weights)),
        "examples": mine,
    }), flush=True)


if __name__ == "__main__":
    main()

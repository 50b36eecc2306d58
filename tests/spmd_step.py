"""One training step of a small ResNeXt under Keras' DataParallel on JAX, and what XLA compiled for it.

    XLA_FLAGS="--xla_force_host_platform_device_count=8 --xla_dump_to=DIR" KERAS_BACKEND=jax \
        python tests/spmd_step.py DIR

Prints one JSON line: the first step's loss on the same global batch on one device, under
DataParallel with the grouped convolutions on the local shards, and left to XLA's partitioner;
the relative differences of their gradients (read from one SGD step's update, `||g - g_ref|| /
||g_ref||` over all trainable weights); whether the replicas agree; and, from the optimized HLO
of the compiled, partitioned train step, the all-gathers and the batch size of every convolution
that computes activations (forward or input gradient: a window of the layers' own 1x1 or 3x3; a
weight gradient's window spans the activations and reduces the batch away).
"""

import glob
import json
import re
import sys

import jax
import keras
import numpy as np

import keras_resnext as kr
from keras_resnext import grouped_conv

GLOBAL_BATCH = 64
CONVOLUTION = re.compile(r"= \w+\[([\d,]+)\][^\n]*? convolution\([^\n]*?window=\{size=(\d+)x(\d+)[^\n]*?"
                         r"dim_labels=\w+_\w+->(\w+)")


def model():
    keras.utils.set_random_seed(1)
    net = kr.ResNeXt((1, 1, 1), 8, 4, stem="cifar", classes=10, input_shape=(32, 32, 3), classifier_activation=None,
                     conv_implementation="native")
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return net


def activation_convolution_batches(hlo):
    """The batch size of each convolution in `hlo` whose window is a layer's own (1x1 or 3x3)."""
    batches = []
    for shape, height, width, output_labels in CONVOLUTION.findall(hlo):
        if int(height) <= 3 and int(width) <= 3:
            batches.append(int(shape.split(",")[output_labels.index("b")]))
    return batches


def one_step(x, y, distributed, local=True):
    """`(loss, gradients, net)` of one SGD step of `model()`, on one device or under DataParallel over all, with
    the grouped convolutions kept on the local shards (`local`) or left to XLA's partitioner."""
    grouped_conv.KEEP_GROUPED_CONVS_LOCAL = local
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()) if distributed else None)
    start = [v.numpy() for v in model().trainable_variables]
    net = model()
    loss = float(net.train_on_batch(x, y))
    keras.distribution.set_distribution(None)
    grouped_conv.KEEP_GROUPED_CONVS_LOCAL = True
    return loss, [(w0 - v.numpy()) / 0.1 for w0, v in zip(start, net.trainable_variables)], net


def relative_difference(a, b):
    """`||a - b|| / ||b||` over lists of arrays."""
    return float(np.sqrt(sum(np.sum((x - y) ** 2) for x, y in zip(a, b))) / np.sqrt(sum(np.sum(y ** 2) for y in b)))


def main(dump):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(GLOBAL_BATCH, 32, 32, 3)).astype("float32"), rng.integers(0, 10, GLOBAL_BATCH)
    single_loss, single, _ = one_step(x, y, distributed=False)
    gathered_loss, gathered, _ = one_step(x, y, distributed=True, local=False)
    before = set(glob.glob(f"{dump}/*"))
    local_loss, local, net = one_step(x, y, distributed=True)
    hlo = "\n".join(open(f).read() for f in set(glob.glob(f"{dump}/*train*after_optimizations.txt")) - before)
    print(json.dumps({
        "devices": len(jax.devices()),
        "losses": {"single": single_loss, "local": local_loss, "gathered": gathered_loss},
        "gradients_against_single_device": relative_difference(local, single),
        "gradients_against_xla_partitioner": relative_difference(local, gathered),
        "replicas_identical": all(np.array_equal(v.value.addressable_shards[0].data, shard.data)
                                  for v in net.variables for shard in v.value.addressable_shards),
        "all_gathers": hlo.count(" all-gather(") + hlo.count(" all-gather-start("),
        "convolution_batches": sorted(set(activation_convolution_batches(hlo))),
        "grouped_convolutions": hlo.count("feature_group_count=8"),
    }))


if __name__ == "__main__":
    main(sys.argv[1])

"""Per-device work of a data-parallel ResNeXt training step on JAX, from the compiled program.

For 1, 2, 4 and 8 devices (fake CPU devices: the program XLA compiles for them is the one it
would compile for GPUs, partitioning included), compiles the gradient step of a small ResNeXt
(depths (1, 1, 1), C=8, d=8, CIFAR stem, the native grouped conv) on a global batch of 128
under Keras' `DataParallel`, and prints each device's FLOPs from XLA's cost analysis
(`compiled.cost_analysis()`) and the collectives in the optimized HLO; once with the grouped
convolutions on the local shards (the package's default) and once left to XLA's partitioner.
Per-device FLOPs should fall as 1/N.

    python benchmarks/spmd_scaling.py

No wall clock: the figures are the compiled program's, the same on any CPU.
"""

import os
import re

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import keras_resnext as kr  # noqa: E402
from keras_resnext import grouped_conv  # noqa: E402

GLOBAL_BATCH = 128
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")


def compiled_step(devices, local):
    """The compiled gradient step over `devices` (one: no distribution) and its optimized HLO text."""
    grouped_conv.KEEP_GROUPED_CONVS_LOCAL = local
    distribution = keras.distribution.DataParallel(devices=devices) if len(devices) > 1 else None
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(0)
    net = kr.ResNeXt((1, 1, 1), 8, 8, stem="cifar", classes=10, input_shape=(32, 32, 3),
                     classifier_activation=None, conv_implementation="native")
    trainable = [v.value for v in net.trainable_variables]
    non_trainable = [v.value for v in net.non_trainable_variables]

    def loss(trainable, non_trainable, x, y):
        logits, _ = net.stateless_call(trainable, non_trainable, x, training=True)
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(GLOBAL_BATCH, 32, 32, 3)).astype("float32"), rng.integers(0, 10, GLOBAL_BATCH)
    if distribution is not None:
        mesh = jax.sharding.Mesh(distribution.device_mesh.devices, distribution.device_mesh.axis_names)
        x = jax.device_put(x, NamedSharding(mesh, PartitionSpec("batch")))
        y = jax.device_put(y, NamedSharding(mesh, PartitionSpec("batch")))
    compiled = jax.jit(jax.value_and_grad(loss)).lower(trainable, non_trainable, x, y).compile()
    keras.distribution.set_distribution(None)
    grouped_conv.KEEP_GROUPED_CONVS_LOCAL = True
    return compiled, compiled.as_text()


def flops(compiled):
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis["flops"])


def main():
    devices = jax.devices()
    print(f"JAX {jax.__version__}, {len(devices)} {devices[0].platform} devices; global batch {GLOBAL_BATCH}")
    print(f"{'devices':>7}  {'grouped convs':<14} {'GFLOPs/device':>13} {'x 1/N':>6}  collectives")
    base = None
    for local in (True, False):
        for n in (1, 2, 4, 8):
            compiled, hlo = compiled_step(devices[:n], local)
            per_device = flops(compiled)
            base = per_device if n == 1 else base
            counts = {name: len(re.findall(rf" {name}(?:-start)?\(", hlo)) for name in COLLECTIVES}
            shown = ", ".join(f"{name} {count}" for name, count in counts.items() if count) or "none"
            print(f"{n:>7}  {'local shard' if local else 'XLA gathers':<14} {per_device / 1e9:>13.3f} "
                  f"{per_device * n / base:>6.2f}  {shown}")


if __name__ == "__main__":
    main()

"""tf.distribute strategies by name, and a narrow fix that lets Keras `fit` run multi-worker.

Keras 3 (up to at least 3.15) fails in `fit` under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585), at two points of its TensorFlow trainer:

1. `_maybe_symbolic_build` all-reduces ("MEAN") the first *data batch* across
   workers just to get example shapes; a collective over integer labels (and
   over batches of different sizes) breaks.
2. `reduce_per_replica(..., "mean")` reduces the scalar metrics with
   `strategy.reduce("MEAN", v, axis=0)`; a scalar has no axis 0.

`patch_keras_for_multi_worker()` replaces exactly those two behaviours: the
build takes the first local replica's batch (only shapes matter there) and
scalars are reduced with `axis=None`. It is applied when `make_strategy` builds
a multi-worker strategy, only on Keras versions known to need it, and it changes
nothing for other strategies.
"""

import json
import os

import keras

from keras_resnext import devices
from keras_resnext.config import STRATEGIES

# Keras 3 releases patched: up to 3.15, the newest seen here to need it. A newer Keras
# gets the stock trainer; tests/test_distribute.py's multi-worker test shows whether it still fails.
_BROKEN_KERAS = ((3, 0), (3, 15))


def _keras_version():
    major, minor = keras.__version__.split(".")[:2]
    return int(major), int(minor)


def keras_needs_multi_worker_patch(version=None):
    version = version or _keras_version()
    return _BROKEN_KERAS[0] <= version <= _BROKEN_KERAS[1]


def patch_keras_for_multi_worker():
    """Applies the two-point fix described in the module docstring (idempotent)."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_keras_resnext_patched", False) or not keras_needs_multi_worker_patch():
        return False
    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=0 if v.shape.rank else None), values
            )
        return original_reduce(values, strategy, reduction)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v,
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer._keras_resnext_patched = True
    return True


def tf_config():
    """The parsed `TF_CONFIG` (an empty dict when unset)."""
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def task():
    """`(task type, index)` from `TF_CONFIG`; `("worker", 0)` when not multi-worker."""
    spec = tf_config().get("task", {})
    return spec.get("type", "worker"), int(spec.get("index", 0))


def is_chief():
    """Whether this process writes the run's files: the chief, or worker 0 of a chief-less cluster."""
    kind, index = task()
    has_chief = "chief" in tf_config().get("cluster", {})
    return kind == "chief" or (not has_chief and kind == "worker" and index == 0)


def make_strategy(name="auto"):
    """A `tf.distribute.Strategy` by name.

    - `"auto"`: a TPU if one is configured, several GPUs mirrored, else the default.
    - `"one"`: `OneDeviceStrategy` on the first GPU, or the CPU.
    - `"mirrored"`: `MirroredStrategy` over the local GPUs (or CPU devices).
    - `"multiworker"`: `MultiWorkerMirroredStrategy`, configured by `TF_CONFIG`.
    - `"tpu"`: `TPUStrategy` from `TPUClusterResolver`.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}.")
    if name == "auto":
        name = _auto_strategy()
        if name is None:
            return tf.distribute.get_strategy()
    if name == "one":
        gpus = devices.tf_gpus()
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        names = [d.name for d in devices.tf_gpus() or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(names)
    if name == "multiworker":
        patch_keras_for_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _auto_strategy():
    """The strategy `"auto"` stands for here, or None for TensorFlow's default."""
    if os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return "tpu"
    if len(tf_config().get("cluster", {}).get("worker", [])) > 1:
        return "multiworker"
    if len(devices.tf_gpus()) > 1:
        return "mirrored"
    return None

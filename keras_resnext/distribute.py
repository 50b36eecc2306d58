"""Data-parallel training by name: tf.distribute strategies on TensorFlow, keras.distribution on JAX.

On TensorFlow `make_strategy` returns a `tf.distribute.Strategy`. On JAX a tf.distribute
strategy would do nothing for the model (it trains on one device), so there it returns
a `JaxDataParallel`: Keras' `DataParallel` over the host's devices, with the two things
`train` asks of a strategy (`scope()`, `num_replicas_in_sync`). Its BatchNorm statistics
are those of the global batch (one SPMD program), where TensorFlow's replicas keep their own.

A narrow fix that lets Keras `fit` run multi-worker on TensorFlow:

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

import contextlib
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


class JaxDataParallel:
    """Keras' `DataParallel` over `devices` (JAX), as `train` uses a tf.distribute strategy; None: one device.

    `scope()` holds the distribution while variables are made and `fit` runs (Keras
    reads it then to replicate the weights and split each batch across the devices).
    """

    def __init__(self, devices=None):
        self.distribution = keras.distribution.DataParallel(devices=devices) if devices else None
        self.num_replicas_in_sync = len(devices) if devices else 1

    def scope(self):
        return self.distribution.scope() if self.distribution else contextlib.nullcontext()

    def describe(self):
        """What metrics.json records of it."""
        if self.distribution is None:
            return {"engine": "keras.distribution", "class": None, "devices": 1}
        return {"engine": "keras.distribution", "class": type(self.distribution).__name__,
                "devices": [str(d) for d in self.distribution.device_mesh.devices.flatten()]}


def describe(strategy):
    """`{"engine", "class", "devices"}`: the distribution a run trained under, for metrics.json."""
    if isinstance(strategy, JaxDataParallel):
        return strategy.describe()
    return {"engine": "tf.distribute", "class": type(strategy).__name__, "devices": strategy.num_replicas_in_sync}


def run_scope(strategy):
    """What a whole run (building, fitting, saving) runs under: a JAX distribution's scope; tf.distribute needs none."""
    return strategy.scope() if isinstance(strategy, JaxDataParallel) else contextlib.nullcontext()


def make_strategy(name="auto"):
    """A `tf.distribute.Strategy` by name, or on JAX a `JaxDataParallel`.

    - `"auto"`: a TPU if one is configured, several GPUs mirrored, else the default
      (JAX: `DataParallel` over the devices when there are several).
    - `"one"`: `OneDeviceStrategy` on the first GPU, or the CPU (JAX: one device).
    - `"mirrored"`: `MirroredStrategy` over the local GPUs (or CPU devices) (JAX:
      `DataParallel` over the local devices).
    - `"multiworker"`: `MultiWorkerMirroredStrategy`, configured by `TF_CONFIG`
      (TensorFlow only).
    - `"tpu"`: `TPUStrategy` from `TPUClusterResolver` (JAX: `DataParallel` over the
      TPU cores JAX sees).
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}.")
    if keras.backend.backend() == "jax":
        return _jax_strategy(name)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"Strategies are made for the TensorFlow and JAX backends; the backend is "
                         f"{keras.backend.backend()!r}.")
    import tensorflow as tf

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


def _jax_strategy(name):
    """`make_strategy` on JAX: keras.distribution's DataParallel, or a one-line error for what it cannot do."""
    import jax

    local = jax.local_devices()
    if name == "multiworker":
        raise ValueError("--strategy multiworker needs the TensorFlow backend (TF_CONFIG's workers); on JAX, "
                         "'mirrored' trains data-parallel over this host's devices.")
    if name == "tpu" and jax.default_backend() != "tpu":
        raise ValueError(f"--strategy tpu: JAX sees no TPU here (its devices: {jax.default_backend()}).")
    if name == "one" or (name == "auto" and len(local) == 1):
        return JaxDataParallel()
    return JaxDataParallel(local)


def _auto_strategy():
    """The strategy `"auto"` stands for here, or None for TensorFlow's default."""
    if os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return "tpu"
    if len(tf_config().get("cluster", {}).get("worker", [])) > 1:
        return "multiworker"
    if len(devices.tf_gpus()) > 1:
        return "mirrored"
    return None

"""Data-parallel training by name: tf.distribute strategies on TensorFlow, keras.distribution on JAX.

On TensorFlow `make_strategy` returns a `tf.distribute.Strategy`. On JAX a tf.distribute
strategy would do nothing for the model (it trains on one device), so there it returns
a `JaxDataParallel`: Keras' `DataParallel` over the host's devices (or, for
`"multiworker"`, every process's devices), with the two things `train` asks of a strategy
(`scope()`, `num_replicas_in_sync`). Its BatchNorm statistics are those of the global batch
(one SPMD program), where TensorFlow's replicas keep their own.

Across processes JAX is configured the ecosystem's way, by Keras' own variables
(`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES`,
`KERAS_DISTRIBUTION_PROCESS_ID`), as TensorFlow's side reads `TF_CONFIG`.

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


JAX_CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                         "KERAS_DISTRIBUTION_PROCESS_ID")


def jax_cluster():
    """`(coordinator address, number of processes, this process's id)` from Keras' distribution variables.

    A ValueError names what is missing or inconsistent: `--strategy multiworker` on JAX
    needs all three, the addresses being the coordinator's `host:port` (process 0) or
    every process's, comma-separated, in process order.
    """
    values = {name: os.environ.get(name, "").strip() for name in JAX_CLUSTER_VARIABLES}
    if missing := [name for name, value in values.items() if not value]:
        raise ValueError(f"--strategy multiworker on JAX needs {', '.join(JAX_CLUSTER_VARIABLES)}; "
                         f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set.")
    addresses, count, index = values.values()
    if not count.isdigit() or int(count) < 1 or not index.isdigit() or int(index) >= int(count):
        raise ValueError(f"KERAS_DISTRIBUTION_NUM_PROCESSES must be a positive integer and "
                         f"KERAS_DISTRIBUTION_PROCESS_ID one of 0 to that number - 1; received {count!r} and {index!r}.")
    hosts = addresses.split(",")
    if len(hosts) not in (1, int(count)) or not all(h.rpartition(":")[2].isdigit() and h.rpartition(":")[0]
                                                     for h in hosts):
        raise ValueError(f"KERAS_DISTRIBUTION_JOB_ADDRESSES must be the coordinator's host:port, or all "
                         f"{count} processes' comma-separated; received {addresses!r}.")
    return hosts[0], int(count), int(index)


def _jax_processes_configure_the_run():
    """Whether this process's place in a run comes from Keras' variables (JAX), not from `TF_CONFIG`."""
    return not tf_config() and keras.backend.backend() == "jax"


def task():
    """`(task type, index)` from `TF_CONFIG`, or on JAX from `KERAS_DISTRIBUTION_PROCESS_ID`; `("worker", 0)` when
    not multi-worker."""
    if _jax_processes_configure_the_run():
        index = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "0").strip()
        return "worker", int(index) if index.isdigit() else 0
    spec = tf_config().get("task", {})
    return spec.get("type", "worker"), int(spec.get("index", 0))


def is_chief():
    """Whether this process writes the run's files: the chief, or worker 0 of a chief-less cluster."""
    kind, index = task()
    has_chief = "chief" in tf_config().get("cluster", {})
    return kind == "chief" or (not has_chief and kind == "worker" and index == 0)


def process_folder(output):
    """The run folder this process works in: `output`, or under TensorFlow's multi-worker training a worker's own
    folder in it (its saves are collective: every worker saves, the chief's copy is kept).

    A JAX run's processes all read `output` (backups to resume from); only process 0
    writes it (`writes_files`).
    """
    if is_chief() or _jax_processes_configure_the_run():
        return output
    return os.path.join(output, f"worker_{task()[1]}")


def writes_files(strategy):
    """Whether this process writes its run folder: all but process 0's peers of a JAX run spanning processes."""
    return not spans_processes(strategy) or is_chief()


class JaxDataParallel:
    """Keras' `DataParallel` over `devices` (JAX), as `train` uses a tf.distribute strategy; None: one device.

    `scope()` holds the distribution while variables are made and `fit` runs (Keras
    reads it then to replicate the weights and split each batch across the devices).
    Over several processes (`processes > 1`) Keras feeds each process its own shard
    of a tf.data pipeline, and every process must join each step, variable creation
    and weight assignment made under the scope.
    """

    def __init__(self, devices=None, processes=1):
        self.distribution = keras.distribution.DataParallel(devices=devices) if devices else None
        self.num_replicas_in_sync = len(devices) if devices else 1
        self.processes = processes

    def scope(self):
        return self.distribution.scope() if self.distribution else contextlib.nullcontext()

    def describe(self):
        """What metrics.json records of it."""
        if self.distribution is None:
            return {"engine": "keras.distribution", "class": None, "processes": 1, "devices": 1}
        return {"engine": "keras.distribution", "class": type(self.distribution).__name__,
                "processes": self.processes,
                "devices": [str(d) for d in self.distribution.device_mesh.devices.flatten()]}


def spans_processes(strategy):
    """Whether `strategy` is a JAX distribution over several processes (one SPMD program that each must join)."""
    return isinstance(strategy, JaxDataParallel) and strategy.processes > 1


@contextlib.contextmanager
def this_process_only():
    """No Keras distribution inside: what is built or saved here stays on this process, and no other process has
    to join it.

    Keras' weight saving makes a throwaway optimizer (to learn which attributes to
    skip), and under a distribution spanning processes its variable is placed on
    every process's devices: a collective that a process saving alone never finishes.
    """
    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


def once_trained(strategy):
    """What a run's evaluation and saving run under: this process alone when `strategy` spans processes (the model
    is then `process_local_copy`'s and process 0 goes on alone), else nothing more than the run's scope."""
    return this_process_only() if spans_processes(strategy) else contextlib.nullcontext()


def copy_scope(strategy):
    """Where copies of a trained model are made: `strategy`'s scope, or this process alone when it spans processes."""
    return this_process_only() if spans_processes(strategy) else strategy.scope()


def process_local_copy(net, strategy):
    """`net` itself, or under a distribution spanning processes a copy on this process alone (same layers,
    precision, weights and optimizer), which can be evaluated and saved without the other processes.

    Every weight is replicated, so each process holds all of it: nothing is exchanged.
    """
    if not spans_processes(strategy):
        return net
    import numpy as np

    with this_process_only():
        copy = net.__class__.from_config(net.get_config())
        copy.set_weights([np.asarray(v.value) for v in net.weights])
        copy.compile(optimizer=net.optimizer, loss=net.loss, metrics=["accuracy"])
    return copy


def describe(strategy):
    """`{"engine", "class", "processes", "devices"}`: the distribution a run trained under, for metrics.json."""
    if isinstance(strategy, JaxDataParallel):
        return strategy.describe()
    import tensorflow as tf

    cluster = tf_config().get("cluster", {})
    tasks = len(cluster.get("chief", []) + cluster.get("worker", []))
    processes = tasks if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else 1
    return {"engine": "tf.distribute", "class": type(strategy).__name__, "processes": max(processes, 1),
            "devices": strategy.num_replicas_in_sync}


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
    - `"multiworker"`: `MultiWorkerMirroredStrategy`, configured by `TF_CONFIG` (JAX:
      `DataParallel` over every process's devices, configured by `jax_cluster`'s
      variables; gloo collectives between CPUs).
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

    if name == "multiworker":
        return _jax_processes()
    local = jax.local_devices()
    if name == "tpu" and jax.default_backend() != "tpu":
        raise ValueError(f"--strategy tpu: JAX sees no TPU here (its devices: {jax.default_backend()}).")
    if name == "one" or (name == "auto" and len(local) == 1):
        return JaxDataParallel()
    return JaxDataParallel(local)


def _jax_processes():
    """`"multiworker"` on JAX: the processes of `jax_cluster()` joined, and `DataParallel` over all their devices."""
    import jax

    coordinator, count, index = jax_cluster()
    # CPUs exchange gradients over gloo (JAX's CPU collectives); accelerators keep their own (NCCL, ICI).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # JAX's preemption service takes SIGTERM as a notice for a training loop to act on at a sync point,
    # which Keras' fit never checks: the run would outlive `kill` and a scheduler's stop until SIGKILL.
    # Off, SIGTERM ends a process as it does a single one, and the run resumes from its last backup.
    jax.config.update("jax_enable_preemption_service", False)
    if not jax.distributed.is_initialized():
        keras.distribution.initialize(coordinator, count, index)
    return JaxDataParallel(jax.devices(), processes=jax.process_count())


def _auto_strategy():
    """The strategy `"auto"` stands for here, or None for TensorFlow's default."""
    if os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return "tpu"
    if len(tf_config().get("cluster", {}).get("worker", [])) > 1:
        return "multiworker"
    if len(devices.tf_gpus()) > 1:
        return "mirrored"
    return None

"""tf.distribute: Mirrored over two CPU devices and MultiWorkerMirrored over loopback, through the jobs."""

import json
import pathlib
import signal
import subprocess
import sys

import pytest

from helpers import ENV, free_port, jax_env, log_rows, small_colour_data
from keras_resnext import distribute


MIRRORED = """
import json, sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_resnext import jobs
print(json.dumps(jobs.train(epochs=2, batch_size=32, run=jobs.RunOptions(sys.argv[1], strategy="mirrored", verbose=0))))
"""


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpu_devices_trains(tmp_path):
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path)], env=ENV, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["strategy_class"] == "MirroredStrategy" and metrics["replicas"] == 2
    assert metrics["batch_size"] == 64  # 32 per replica
    # Two epochs: on the AVX2 EPYC the loss went from 2.91 to 0.27 and the test accuracy to 0.96.
    losses = [float(r["loss"]) for r in log_rows(tmp_path)]
    assert losses[-1] < losses[0] / 2
    assert metrics["test_accuracy"] > 0.8


@pytest.mark.slow
def test_multi_worker_training_on_loopback_agrees_across_workers(tmp_path):
    """Two worker processes, MultiWorkerMirroredStrategy: needs the keras#20585 fix."""
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    # 48 pictures: the agreement across workers is the check, and on the digits the two took 37 s of CPU.
    run = tmp_path / "run"
    procs = []
    for index in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                              "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "keras_resnext.cli", "train", "--strategy", "multiworker", "--epochs", "3",
             "--batch-size", "4", *small_colour_data(tmp_path), "--output", str(run)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    chief = json.loads((run / "metrics.json").read_text())
    other = json.loads((run / "worker_1" / "metrics.json").read_text())
    assert chief["strategy"] == "multiworker" and chief["replicas"] == 2
    assert chief["strategy_class"] == "CollectiveAllReduceStrategy"  # what MultiWorkerMirroredStrategy is
    assert chief["distribution"]["processes"] == 2 and chief["distribution"]["devices"] == 2
    # Synchronous training: identical trainable weights. BatchNorm's moving statistics come
    # from each worker's own batches (as in PyTorch DDP without SyncBN); the chief's are saved.
    assert chief["trainable_checksum"] == pytest.approx(other["trainable_checksum"], rel=1e-9)
    assert chief["test_accuracy"] == pytest.approx(other["test_accuracy"])
    losses = [float(r["loss"]) for r in log_rows(run)]
    assert losses[-1] < losses[0] / 2


def test_multi_worker_patch_is_version_guarded():
    assert distribute.keras_needs_multi_worker_patch((3, 15))
    assert not distribute.keras_needs_multi_worker_patch((3, 16))
    assert not distribute.keras_needs_multi_worker_patch((4, 0))
    with pytest.raises(ValueError, match="Unknown strategy"):
        distribute.make_strategy("horovod")


def test_tf_config_names_the_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.task() == ("worker", 0) and distribute.is_chief()
    cluster = {"worker": ["a:1", "b:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert distribute.task() == ("worker", 1) and not distribute.is_chief()
    cluster = {"chief": ["c:0"], "worker": ["a:1"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert not distribute.is_chief()


JAX_DATA_PARALLEL = """
import json, sys
import numpy as np
import keras_resnext as kr, keras, jax
from keras_resnext import distribute

def model():
    keras.utils.set_random_seed(1)
    net = kr.ResNeXt((1, 1), 4, 4, classes=3, input_shape=(32, 32, 3), classifier_activation=None)
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return net

rng = np.random.default_rng(0)
x, y = rng.normal(size=(8, 32, 32, 3)).astype("float32"), rng.integers(0, 3, 8)
single = model()
single_loss = float(single.train_on_batch(x, y))
strategy = distribute.make_strategy("mirrored")
with strategy.scope():
    parallel = model()
    parallel_loss = float(parallel.train_on_batch(x, y))
    data_layout = keras.distribution.distribution().get_data_layout((8, 32, 32, 3))
print(json.dumps({
    "devices": len(jax.devices()), "replicas": strategy.num_replicas_in_sync,
    "losses": [single_loss, parallel_loss],
    # One step of SGD: w1 = w0 - lr * g, so equal weights after it are equal gradients.
    "weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), parallel.get_weights())),
    "replicas_identical": all(np.array_equal(v.value.addressable_shards[0].data, shard.data)
                              for v in parallel.variables for shard in v.value.addressable_shards),
    "replicated_on": sorted({str(s.device) for v in parallel.trainable_variables for s in v.value.addressable_shards}),
    "batch_split": list(data_layout.axes),
}))
"""


@pytest.mark.slow
def test_jax_data_parallel_over_two_devices_computes_the_single_device_step(tmp_path):
    """On JAX `mirrored` is Keras' DataParallel: the batch split over two (fake host) devices, the weights replicated;
    one step's loss and update are the single-device step's on the same global batch, and the replicas stay equal."""
    env = jax_env(2)
    result = subprocess.run([sys.executable, "-c", JAX_DATA_PARALLEL], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["devices"] == out["replicas"] == len(out["replicated_on"]) == 2  # every weight on both devices
    assert out["batch_split"][0] == "batch"  # each device takes half of the batch
    single, parallel = out["losses"]
    assert parallel == pytest.approx(single, rel=1e-6)
    assert out["weight_difference"] < 1e-5 and out["replicas_identical"]


@pytest.mark.slow
def test_train_on_jax_uses_every_device_and_refuses_what_it_cannot_honour(tmp_path):
    env = jax_env(2)
    run = tmp_path / "run"
    # 48 pictures: the devices are the check, not the model.
    result = subprocess.run([sys.executable, "-m", "keras_resnext.cli", "train", "--model", "1,1:4:4", "--strategy",
                             "mirrored", "--epochs", "1", "--batch-size", "4", *small_colour_data(tmp_path),
                             "--output", str(run)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["strategy_class"] == "DataParallel"
    assert metrics["distribution"] == {"engine": "keras.distribution", "class": "DataParallel", "processes": 1,
                                       "devices": ["cpu:0", "cpu:1"]}
    assert metrics["batch_size"] == 8  # 4 per device; the recipe's lr scales with it, as on TensorFlow
    refused = subprocess.run([sys.executable, "-m", "keras_resnext.cli", "train", "--strategy", "multiworker",
                              "--output", str(tmp_path / "other")], env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2 and not (tmp_path / "other").exists()
    assert refused.stderr.strip().splitlines()[-1] == (
        "keras-resnext train: --strategy multiworker on JAX needs KERAS_DISTRIBUTION_JOB_ADDRESSES, "
        "KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID; KERAS_DISTRIBUTION_JOB_ADDRESSES, "
        "KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID are not set.")


@pytest.mark.parametrize("variables, wrong", [
    ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:1234", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"},
     "KERAS_DISTRIBUTION_PROCESS_ID is not set"),
    ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:1234", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
      "KERAS_DISTRIBUTION_PROCESS_ID": "2"}, "one of 0 to that number - 1; received '2' and '2'"),
    ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:1234", "KERAS_DISTRIBUTION_NUM_PROCESSES": "two",
      "KERAS_DISTRIBUTION_PROCESS_ID": "0"}, "must be a positive integer"),
    ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1,b:2,c:3", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
      "KERAS_DISTRIBUTION_PROCESS_ID": "0"}, "or all 2 processes' comma-separated; received 'a:1,b:2,c:3'"),
    ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
      "KERAS_DISTRIBUTION_PROCESS_ID": "0"}, "must be the coordinator's host:port"),
])
def test_jax_processes_are_configured_by_keras_variables_or_refused_in_one_line(monkeypatch, variables, wrong):
    for name in distribute.JAX_CLUSTER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=wrong):
        distribute.jax_cluster()
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "10.0.0.1:1234,10.0.0.2:2345")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    assert distribute.jax_cluster() == ("10.0.0.1:1234", 2, 1)  # process 0's address is the coordinator's


def _jax_processes(command, port, count=2, **variables):
    """`count` processes running `command` as one JAX run on loopback, each with two fake CPU devices."""
    return [subprocess.Popen(command, cwd=pathlib.Path(__file__).parent, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=jax_env(2, KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                                         KERAS_DISTRIBUTION_NUM_PROCESSES=str(count),
                                         KERAS_DISTRIBUTION_PROCESS_ID=str(index), **variables))
            for index in range(count)]


def _finished(procs, timeout=600):
    outputs = [proc.communicate(timeout=timeout) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    return [out for out, _ in outputs]


@pytest.mark.slow
def test_jax_across_two_processes_computes_the_single_process_step():
    """Two processes on loopback, two fake devices each: one SPMD program over 4 devices. Each process feeds its own
    half of the global batch; the step is the one a single process computes on the whole batch."""
    outputs = _finished(_jax_processes([sys.executable, "multiprocess_step.py"], free_port()))
    first, second = (json.loads(out.strip().splitlines()[-1]) for out in outputs)
    for out in (first, second):
        assert out["processes"] == 2 and out["devices"] == 4
        assert out["described"]["processes"] == 2 and len(out["described"]["devices"]) == 4
        single, parallel = out["losses"]
        assert parallel == pytest.approx(single, rel=1e-5)
        assert out["weight_difference"] < 1e-5
    assert first["checksum"] == second["checksum"]  # the replicas agree across processes
    # Keras gives each process its own shard of a tf.data pipeline: no example twice in an epoch, none left out.
    assert not set(first["examples"]) & set(second["examples"])
    assert sorted(first["examples"] + second["examples"]) == list(range(64))


@pytest.mark.slow
def test_train_across_two_jax_processes_writes_from_process_0_and_resumes_after_a_kill(tmp_path):
    run, port = tmp_path / "run", free_port()
    # A small ResNeXt (depths 1-1, C=4, d=4) on 48 pictures: what is checked is the run across processes, not
    # the model (on the digits each pair of processes took 55 s of CPU instead of 36).
    train = ["train", "--model", "1,1:4:4", "--strategy", "multiworker", "--epochs", "2", "--batch-size", "4",
             *small_colour_data(tmp_path), "--output", str(run)]
    # Process 0 is stopped inside its last epoch's backup (an event of the run's own, tests/kill_at_write.py)
    # with SIGTERM, as `kill` and schedulers stop a process: JAX's preemption service used to swallow it, and
    # the run went on. Process 1, left waiting for it, is killed then.
    chief, worker = _jax_processes([sys.executable, "kill_at_write.py", "training_metadata.json#2", *train], port,
                                   KILL_AT_WRITE_SIGNAL="SIGTERM")
    chief.communicate(timeout=600)
    assert chief.returncode == -signal.SIGTERM
    worker.kill()
    worker.communicate()
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert not list(run.glob("worker_*"))  # process 1 writes nothing
    # The same commands again: both resume from process 0's backup, in step.
    outputs = _finished(_jax_processes([sys.executable, "-m", "keras_resnext.cli", *train], free_port()))
    assert "process 1: trained 1 epoch;" in outputs[1]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run_here"] == 1  # resumed after epoch 1
    assert metrics["distribution"]["processes"] == 2 and len(metrics["distribution"]["devices"]) == 4
    assert metrics["batch_size"] == 16  # 4 per device, 4 devices
    rows = log_rows(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]  # nothing lost or repeated
    # It learns across the kill (one seed of a tiny model: the loss, not an accuracy bar, is the robust sign).
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]) and 0.1 < metrics["test_accuracy"] <= 1
    assert not list(run.glob("worker_*")) and not (run / "backup").exists()


@pytest.mark.slow
def test_grouped_convolutions_stay_on_the_local_shard_under_jax_data_parallel(tmp_path):
    """XLA's SPMD partitioner all-gathers the batch around a grouped convolution (openxla/xla#47945): under
    DataParallel over 8 devices every grouped conv of a ResNeXt ran on the global batch on each device, with 6
    all-gathers in the step. Checked on the compiled program (a global batch of 64): none now, every activation
    convolution on the device's 8, and the step is the one XLA's own partitioning computes, to the last bit."""
    env = jax_env(8, f"--xla_dump_to={tmp_path}")
    result = subprocess.run([sys.executable, str(pathlib.Path(__file__).parent / "spmd_step.py"), str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8 and out["grouped_convolutions"] > 0
    assert out["all_gathers"] == 0 and out["convolution_batches"] == [64 // 8]
    assert out["gradients_against_xla_partitioner"] <= 1e-6 and out["replicas_identical"]
    losses = out["losses"]
    assert losses["local"] == pytest.approx(losses["single"], rel=1e-6)
    # One device sums the batch in another order: 2.0e-4 here, with or without the shard_map (XLA's CPU convolutions).
    assert out["gradients_against_single_device"] <= 1e-3

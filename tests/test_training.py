"""The main job and its relatives, run as a user runs them: the real CLI, in subprocesses."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_resnext import data, distribute, training

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")


def cli(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "keras_resnext.cli", *args], env=env or ENV,
                          capture_output=True, text=True, **kwargs)


def log_rows(run_dir):
    with open(os.path.join(run_dir, "log.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """`keras-resnext train` with no arguments but --output: the README's main job."""
    out = tmp_path_factory.mktemp("run")
    result = cli("train", "--output", str(out), timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return out


def test_main_job_reaches_95_percent_on_digits_and_writes_its_run_folder(main_job):
    metrics = json.loads((main_job / "metrics.json").read_text())
    assert metrics["dataset"] == "digits" and metrics["model"] == "resnext11_8x4d"
    assert metrics["epochs"] == 20 and metrics["seconds"] < 600
    assert metrics["test_accuracy"] >= 0.95
    assert (main_job / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(log_rows(main_job)) == 20
    assert any((main_job / "tensorboard").rglob("events.out.tfevents.*"))
    assert not (main_job / "backup").exists()  # BackupAndRestore clears it after a finished run
    model = keras.models.load_model(main_job / "model.keras")
    x, y = data.digits_arrays("test")
    images, _ = next(iter(data.load_dataset("digits", "test", batch_size=360)[0]))
    accuracy = float(np.mean(np.argmax(model.predict(images, verbose=0), axis=1) == y))
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_evaluate_and_predict_use_the_saved_run(main_job, tmp_path):
    result = cli("evaluate", str(main_job / "model.keras"), "--dataset", "digits")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["test_accuracy"] >= 0.95
    import tensorflow as tf

    x, y = data.digits_arrays("test")
    pngs = []
    for i in range(3):
        path = tmp_path / f"digit_{y[i]}.png"
        path.write_bytes(tf.io.encode_png(x[i]).numpy())
        pngs.append(path)
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not an image")
    result = cli("predict", str(pngs[0]), str(not_image), str(pngs[1]), str(pngs[2]),
                 "--model-file", str(main_job / "model.keras"), "--top", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert f"{not_image}: error: not a readable image" in out
    top1 = [line.split()[-1] for line in out.splitlines() if line.startswith("  ")][::3]
    assert top1 == [str(label) for label in y[:3]]


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "keras_resnext.cli", "train", "--epochs", "8", "--output", str(out)]
    first = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (out / "log.csv").exists() and len(log_rows(out)) >= 3:
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = len(log_rows(out))
    assert 3 <= done_before < 8 and (out / "backup").exists()
    result = cli("train", "--epochs", "8", "--output", str(out), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run_here"] == 8 - done_before  # resumed, not restarted
    assert [int(r["epoch"]) for r in log_rows(out)] == list(range(8))  # nothing lost or repeated
    assert metrics["test_accuracy"] >= 0.9


MIRRORED = """
import json, sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_resnext import jobs
print(json.dumps(jobs.train(strategy="mirrored", epochs=3, batch_size=32, output=sys.argv[1], verbose=0)))
"""


def test_mirrored_strategy_over_two_cpu_devices_trains(tmp_path):
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path)], env=ENV, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["strategy_class"] == "MirroredStrategy" and metrics["replicas"] == 2
    assert metrics["batch_size"] == 64  # 32 per replica
    losses = [float(r["loss"]) for r in log_rows(tmp_path)]
    assert losses[-1] < losses[0] / 2
    assert metrics["test_accuracy"] > 0.8


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_training_on_loopback_agrees_across_workers(tmp_path):
    """Two worker processes, MultiWorkerMirroredStrategy: needs the keras#20585 fix."""
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    procs = []
    for index in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                              "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "keras_resnext.cli", "train", "--strategy", "multiworker", "--epochs", "3",
             "--batch-size", "32", "--output", str(tmp_path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    chief = json.loads((tmp_path / "metrics.json").read_text())
    other = json.loads((tmp_path / "worker_1" / "metrics.json").read_text())
    assert chief["strategy"] == "multiworker" and chief["replicas"] == 2
    assert chief["strategy_class"] == "CollectiveAllReduceStrategy"  # what MultiWorkerMirroredStrategy is
    # Synchronous training: identical trainable weights. BatchNorm's moving statistics come
    # from each worker's own batches (as in PyTorch DDP without SyncBN); the chief's are saved.
    assert chief["trainable_checksum"] == pytest.approx(other["trainable_checksum"], rel=1e-9)
    assert chief["test_accuracy"] == pytest.approx(other["test_accuracy"])
    losses = [float(r["loss"]) for r in log_rows(tmp_path)]
    assert losses[-1] < losses[0] / 2


def test_multi_worker_patch_is_version_guarded():
    assert distribute.keras_needs_multi_worker_patch((3, 15))
    assert not distribute.keras_needs_multi_worker_patch((3, 16))
    assert not distribute.keras_needs_multi_worker_patch((4, 0))
    with pytest.raises(ValueError, match="Unknown strategy"):
        distribute.make_strategy("horovod")


@pytest.mark.parametrize("name,shape,classes", [("cifar10", (8, 32, 32, 3), 10), ("cifar100", (8, 32, 32, 3), 100)])
def test_tfds_cifar_pipelines_with_mock_data(name, shape, classes):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=20):
        train, info = data.load_dataset(name, "train", batch_size=8, seed=3, download=True)
        test, _ = data.load_dataset(name, "test", batch_size=8, download=True)
        x, y = next(iter(train))
        xt, _ = next(iter(test))
    assert info.num_classes == classes and x.shape == shape and xt.shape == shape
    assert x.dtype == "float32" and y.shape == (8,)


def test_imagenet_pipeline_crops_to_224_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        train, info = data.load_dataset("imagenet2012", "train", batch_size=2, seed=0, download=True)
        val, _ = data.load_dataset("imagenet2012", "validation", batch_size=2, crop_pct=0.95, download=True)
        assert next(iter(train))[0].shape == (2, 224, 224, 3)
        assert next(iter(val))[0].shape == (2, 224, 224, 3)
    assert info.num_classes == 1000


def test_unprepared_tfds_data_gives_instructions(tmp_path):
    with pytest.raises(ValueError, match="downloads/manual"):
        data.load_dataset("imagenet2012", "train", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="tfds build cifar10"):
        data.load_dataset("cifar10", "train", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load_dataset("mnist-ish", "train")


def test_image_folder_dataset(tmp_path):
    import tensorflow as tf

    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                image = np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype="uint8")
                (folder / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    train, info = data.load_dataset(f"folder:{tmp_path}", "train", batch_size=4, image_size=64, seed=0)
    x, y = next(iter(train))
    assert info.class_names == ("cat", "dog") and x.shape == (4, 64, 64, 3)


def test_recipes_follow_the_paper():
    optimizer, loss = training.cifar_recipe(steps_per_epoch=100, epochs=300, batch_size=128)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(150 * 100 + 1)) == pytest.approx(0.01)
    assert float(schedule(225 * 100 + 1)) == pytest.approx(0.001)
    assert optimizer.weight_decay == pytest.approx(5e-4) and optimizer.momentum == pytest.approx(0.9)
    optimizer, _ = training.imagenet_recipe(steps_per_epoch=10, epochs=100, batch_size=512, warmup_epochs=5)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.2 / 50)  # warming up to 0.1 * 512 / 256
    assert float(schedule(60)) == pytest.approx(0.2)
    assert float(schedule(10 * 45)) == pytest.approx(0.02)  # / 10 at 30% of 100 epochs
    assert float(schedule(10 * 65)) == pytest.approx(0.002)  # and at 60%
    _, smooth = training.imagenet_recipe(10, label_smoothing=0.1)
    assert smooth.get_config()["label_smoothing"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule"):
        training.imagenet_recipe(10, schedule="linear")


def test_weight_decay_skips_batchnorm_and_biases():
    optimizer, _ = training.cifar_recipe(steps_per_epoch=1, epochs=1)  # lr 0.1, wd 5e-4
    kernel, gamma, bias = (keras.Variable(np.ones(3, "float32"), name=n) for n in ("kernel", "gamma", "bias"))
    optimizer.apply_gradients([(np.zeros(3, "float32"), v) for v in (kernel, gamma, bias)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), 1 - 0.1 * 5e-4, rtol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(gamma), 1.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bias), 1.0)


def test_finetune_freezes_the_backbone_and_keeps_batchnorm_in_inference(fixtures_dir):
    import keras_resnext as kr

    model = training.finetune_model(kr.ResNeXt50, 5, weights=None, input_shape=(64, 64, 3))
    trainable = [layer.name for layer in model.layers if layer.trainable_weights]
    assert trainable == ["predictions"]
    block = model.get_layer("stage1_block1")
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 64)).astype("float32")
    np.testing.assert_allclose(block(x, training=True), block(x, training=False), atol=1e-5)
    training.set_backbone_trainable(model, True)
    assert len(model.trainable_weights) > 100


def test_precision_auto_is_float32_on_cpu():
    try:
        assert training.set_precision("auto") == "float32"
        assert training.set_precision("mixed_bfloat16") == "mixed_bfloat16"
        import keras_resnext as kr

        model = kr.ResNeXt((1,), 2, 4, classes=3, input_shape=(32, 32, 3))
        assert model.get_layer("predictions").dtype_policy.name == "float32"  # float32 head
        with pytest.raises(ValueError, match="Unknown precision"):
            training.set_precision("int8")
    finally:
        keras.config.set_dtype_policy("float32")

"""The tf.data service on loopback: a dispatcher and two workers in their own processes, as on other machines."""

import hashlib
import json
import subprocess
import sys

import pytest

from helpers import ENV, command, free_port
from keras_resnext import data, service


@pytest.fixture(scope="module")
def dispatcher():
    """`grpc://localhost:PORT` of a dispatcher with two workers, each its own process, killed at the end."""
    port = free_port()
    address = f"grpc://localhost:{port}"
    start = [sys.executable, "-m", "keras_resnext.service"]
    processes = [subprocess.Popen([*start, "dispatcher", "--port", str(port)], env=ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)]
    try:
        assert processes[0].stdout.readline().startswith("tf.data service dispatcher serving")
        for _ in range(2):
            processes.append(subprocess.Popen([*start, "worker", "--dispatcher", address], env=ENV,
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
            assert processes[-1].stdout.readline().startswith("tf.data service worker serving")
        yield address
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _fingerprints(dataset):
    return sorted(hashlib.sha1(image.tobytes()).hexdigest() + str(label)
                  for images, labels in dataset for image, label in zip(images.numpy(), labels.numpy()))


@pytest.mark.slow
def test_one_epoch_through_the_service_yields_every_example_exactly_once(dispatcher):
    served, info = data.load_dataset("digits", "test", batch_size=32, data_service=dispatcher)
    local, _ = data.load_dataset("digits", "test", batch_size=32)
    assert _fingerprints(served) == _fingerprints(local) and len(_fingerprints(served)) == info.num_examples == 360
    # Training batches too: every example of the epoch once (each worker drops its own last partial batch).
    train, info = data.load_dataset("digits", "train", batch_size=64, seed=0, data_service=dispatcher, dtype="uint8")
    labels = [int(y) for _, batch in train for y in batch.numpy()]
    assert info.num_examples - 2 * 64 < len(labels) <= info.num_examples and len(labels) % 64 == 0


@pytest.mark.slow
def test_train_trains_through_the_service(dispatcher, tmp_path):
    result = command("train", "--epochs", "2", "--data-service", dispatcher, "--output", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data_service"] == dispatcher and metrics["test_accuracy"] >= 0.8


def test_an_unreachable_or_malformed_address_is_a_clear_error_not_a_hang(tmp_path):
    unused = f"grpc://localhost:{free_port()}"
    # "connection refused", not a timeout: the refusal is reported as it comes, without waiting out the timeout.
    with pytest.raises(ValueError, match=rf"No tf.data service dispatcher answers at {unused} \(connection refused\)"):
        data.load_dataset("digits", "train", data_service=unused)
    for address in ("localhost:5050", "grpc://localhost", "http://localhost:5050"):
        with pytest.raises(ValueError, match="A tf.data service address is grpc://HOST:PORT"):
            service.parse_address(address)
    result = command("train", "--data-service", unused, "--output", tmp_path / "run")
    assert result.returncode == 2 and not (tmp_path / "run").exists()
    assert result.stderr.strip().splitlines()[-1].startswith("keras-resnext train: No tf.data service dispatcher")

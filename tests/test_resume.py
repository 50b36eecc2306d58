"""A run killed at any instant finishes with the same command; a finished or diverged run says so."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import pytest

import keras_resnext  # noqa: F401 - registers the classes keras.models.load_model needs
from helpers import ENV, cli, log_rows, small_colour_tree

pytestmark = pytest.mark.slow
TESTS = os.path.dirname(__file__)


def strict_json(path):
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    with open(path) as f:
        return json.load(f, parse_constant=refuse)


def small_run(tmp_path, epochs=2):
    """`train` arguments for a 2-epoch run on a small colour folder at 32 px: every save a run makes, in seconds.

    Two epochs are the fewest that make every kind of save, a resumed epoch's included.
    """
    folder = small_colour_tree(tmp_path / "colours")
    return ["train", "--dataset", f"folder:{folder}", "--image-size", "32", "--epochs", str(epochs)]


def assert_one_complete_run(run, epochs, classes=3):
    metrics = strict_json(run / "metrics.json")
    assert metrics["status"] == "completed" and metrics["epochs"] == epochs
    assert [row["epoch"] for row in log_rows(run)] == [str(e) for e in range(epochs)]  # one series
    assert keras.models.load_model(run / "model.keras").output.shape[-1] == classes
    assert not (run / "backup").exists()
    assert not [name for _, _, names in os.walk(run) for name in names if name.startswith(".tmp-")]
    return metrics


def test_a_run_killed_inside_every_kind_of_save_finishes_with_the_same_command(tmp_path):
    run = tmp_path / "run"
    args = [*small_run(tmp_path), "--output", str(run)]
    kills = []
    for kill_at in range(1, 20):  # each run dies at its kill_at-th write, until one gets to the end
        proc = subprocess.run([sys.executable, "kill_at_write.py", str(kill_at), *args], cwd=TESTS, env=ENV,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        kills.append(sorted(os.listdir(run)))
    assert len(kills) >= 6, kills  # killed while writing the status, log, backup, metadata, model and curves
    assert_one_complete_run(run, 2)


def test_a_run_killed_at_random_instants_finishes_with_the_same_command(tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "keras_resnext.cli", *small_run(tmp_path), "--output", str(run)]
    rng = random.Random(0)
    for _ in range(4):  # a run takes about 20 s here, 10 of them starting TensorFlow
        proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(6, 16))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_one_complete_run(run, 2)

    model_time = os.path.getmtime(run / "model.keras")
    again = cli(*args[3:])  # a finished run is reported, not retrained
    assert again.returncode == 0 and "is a completed run" in again.stdout
    assert os.path.getmtime(run / "model.keras") == model_time
    fresh = cli(*args[3:], "--epochs", "1", "--overwrite")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert_one_complete_run(run, 1)


def test_a_diverged_run_fails_and_says_so(tmp_path):
    run = tmp_path / "run"
    result = cli("train", "--epochs", "3", "--precision", "float16", "--output", str(run))
    assert result.returncode == 1, result.stdout[-1000:] + result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("keras-resnext train: the run diverged: loss became nan in epoch ")
    metrics = strict_json(run / "metrics.json")
    assert metrics["status"] == "diverged" and 1 <= metrics["epoch"] <= 3 and "loss became nan" in metrics["reason"]
    assert not (run / "model.keras").exists()  # no NaN model left to be mistaken for a result
    again = cli("train", "--epochs", "3", "--precision", "float16", "--output", str(run))
    assert again.returncode == 1 and "diverged" in again.stderr and "--overwrite" in again.stderr


@pytest.mark.parametrize("tuner", ["random", "grid"])
def test_a_search_killed_inside_its_saves_finishes_with_the_same_command(tmp_path, tuner):
    out = tmp_path / "search"
    folder = small_colour_tree(tmp_path / "colours")
    args = ["tune", "--tuner", tuner, "--max-trials", "2", "--epochs", "1", "--cardinalities", "2,8",
            "--dataset", f"folder:{folder}", "--image-size", "32", "--batch-size", "8", "--output", str(out)]
    # A search that stopped after a finished trial (keras-tuner's own GridSearch could never resume
    # from there: keras-team/keras-tuner#1055), then kills inside saves deeper into each resumed search.
    first = cli(*args[:4], "1", *args[5:])
    assert first.returncode == 0, first.stderr[-3000:]
    kills = 0
    for kill_at in (2, 5, 9, 14, 20, 27, 35, 44, 54, 65, 77, 90):
        proc = subprocess.run([sys.executable, "kill_at_write.py", str(kill_at), *args], cwd=TESTS, env=ENV,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        kills += 1
    assert kills >= 3
    final = cli(*args)  # and once more on the finished search: it reports the same trials
    assert final.returncode == 0, final.stderr[-3000:]
    summary = strict_json(out / "summary.json")
    assert sorted(row["cardinality"] for row in summary["trials"]) == [2, 8]  # every trial, each once
    assert keras.models.load_model(out / "best_model.keras") is not None

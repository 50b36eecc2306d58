"""A run killed at any instant finishes with the same command; a finished or diverged run says so."""

import json
import os
import random
import signal
import subprocess
import sys

import keras
import pytest

import keras_resnext  # noqa: F401 - registers the classes keras.models.load_model needs
from helpers import ENV, command, log_rows, small_colour_data

pytestmark = pytest.mark.slow
TESTS = os.path.dirname(__file__)


def strict_json(path):
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    with open(path) as f:
        return json.load(f, parse_constant=refuse)


def small_run(tmp_path, epochs=2):
    """`train` arguments for a 2-epoch run of a small ResNeXt on a small colour folder at 32 px: every save a run
    makes, in seconds.

    Two epochs are the fewest that make every kind of save, a resumed epoch's included.
    """
    return ["train", "--model", "1,1:4:4", *small_colour_data(tmp_path), "--epochs", str(epochs)]


def assert_one_complete_run(run, epochs, classes=3):
    metrics = strict_json(run / "metrics.json")
    assert metrics["status"] == "completed" and metrics["epochs"] == epochs
    assert [row["epoch"] for row in log_rows(run)] == [str(e) for e in range(epochs)]  # one series
    assert keras.models.load_model(run / "model.keras").output.shape[-1] == classes
    assert not (run / "backup").exists()
    assert not [name for _, _, names in os.walk(run) for name in names if name.startswith(".tmp-")]
    return metrics


# Each run dies inside the next kind of save, as far into the run as the kills before it let it get:
# the status at the start, the first epoch's log row and backup (the weights, then the metadata that
# points at them), then, resumed, the model and the final status. (The pictures are saved as the
# model is; a kill inside each cost a TensorFlow start and found nothing more.)
SAVES = ("metrics.json", "log.csv", ".weights.h5", "training_metadata.json", "model.keras", "metrics.json#2")


def kill_inside(where, args):
    """`keras-resnext ARGS` in a process killed inside a save (kill_at_write.py); the path it was writing."""
    proc = subprocess.run([sys.executable, "kill_at_write.py", where, *args], cwd=TESTS, env=ENV,
                          capture_output=True, text=True, timeout=600)
    killed = [line for line in proc.stderr.splitlines() if line.startswith("killed inside ")]
    if proc.returncode == 0:
        return None
    assert proc.returncode == -signal.SIGKILL and killed, proc.stderr[-3000:]
    return killed[0].removeprefix("killed inside ")


def test_a_run_killed_inside_every_kind_of_save_finishes_with_the_same_command(tmp_path):
    run = tmp_path / "run"
    args = [*small_run(tmp_path), "--output", str(run)]
    for save in SAVES:
        path = kill_inside(save, args)
        assert path is not None and path.startswith(str(run)) and path.endswith(save.partition("#")[0]), path
    final = command(*args)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_one_complete_run(run, 2)


def test_a_run_killed_at_random_instants_finishes_with_the_same_command(tmp_path):
    """Killed four times at a random one of its file writes (a seeded draw, each a real SIGKILL mid-save, not a
    sleep that a busy machine would stretch), the run finishes with the same command."""
    run = tmp_path / "run"
    args = [*small_run(tmp_path), "--output", str(run)]
    rng = random.Random(0)
    for _ in range(4):
        kill_inside(str(rng.randint(1, 8)), args)
    final = command(*args)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_one_complete_run(run, 2)

    model_time = os.path.getmtime(run / "model.keras")
    again = command(*args)  # a finished run is reported, not retrained
    assert again.returncode == 0 and "is a completed run" in again.stdout
    assert os.path.getmtime(run / "model.keras") == model_time
    fresh = command(*args, "--epochs", "1", "--overwrite")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert_one_complete_run(run, 1)


def test_a_diverged_run_fails_and_says_so(tmp_path):
    run = tmp_path / "run"
    result = command("train", "--epochs", "3", "--precision", "float16", "--output", str(run))
    assert result.returncode == 1, result.stdout[-1000:] + result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("keras-resnext train: the run diverged: loss became nan in epoch ")
    metrics = strict_json(run / "metrics.json")
    assert metrics["status"] == "diverged" and 1 <= metrics["epoch"] <= 3 and "loss became nan" in metrics["reason"]
    assert not (run / "model.keras").exists()  # no NaN model left to be mistaken for a result
    again = command("train", "--epochs", "3", "--precision", "float16", "--output", str(run))
    assert again.returncode == 1 and "diverged" in again.stderr and "--overwrite" in again.stderr


def test_a_search_killed_inside_its_saves_finishes_with_the_same_command(tmp_path):
    out = tmp_path / "search"
    args = ["tune", "--max-trials", "2", "--epochs", "1", "--cardinalities", "2,8", *small_colour_data(tmp_path),
            "--batch-size", "8", "--repeats", "1", "--output", str(out)]
    # A search that stopped after a finished trial, then kills inside saves deeper into each resumed
    # search. The tuner's files are the same for every oracle; each oracle's own resume is
    # test_tuning.py's (test_every_oracle_resumes_to_the_same_trials_as_an_uninterrupted_search).
    first = command(*args[:2], "1", *args[3:])
    assert first.returncode == 0, first.stderr[-3000:]
    kills = 0
    for kill_at in (2, 5, 9, 14, 20, 27, 35, 44, 54, 65, 77, 90):
        if kill_inside(str(kill_at), args) is None:
            break
        kills += 1
    assert kills >= 3
    final = command(*args)  # and once more on the finished search: it reports the same trials
    assert final.returncode == 0, final.stderr[-3000:]
    summary = strict_json(out / "summary.json")
    assert sorted(row["cardinality"] for row in summary["trials"]) == [2, 8]  # every trial, each once
    assert keras.models.load_model(out / "best_model.keras") is not None


def test_a_grid_search_stopped_after_a_trial_resumes_to_the_whole_grid(tmp_path):
    """keras-tuner's own GridSearch could never resume from there (keras-team/keras-tuner#1055)."""
    out = tmp_path / "search"
    args = ["tune", "--tuner", "grid", "--epochs", "1", "--cardinalities", "2,8", "--repeats", "1", "--output", str(out),
            *small_colour_data(tmp_path), "--batch-size", "8"]
    for max_trials in ("1", "3"):  # the grid has two points: the second run stops at its end
        result = command(*args, "--max-trials", max_trials)
        assert result.returncode == 0, result.stderr[-3000:]
    summary = strict_json(out / "summary.json")
    assert sorted(row["cardinality"] for row in summary["trials"]) == [2, 8]  # the whole grid, each point once

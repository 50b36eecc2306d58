"""A training run's folder: is it finished, how did it end, and why did it fail.

`metrics.json` carries a `status`: "running" while a run is in progress (also
what a killed run leaves; the same command resumes it), "completed" (written
last, after every other result), "diverged" or "failed" with the reason.
"""

import contextlib
import json
import math
import os
import shutil

from keras_resnext import files

class RunDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped and its metrics.json says so."""

    def __init__(self, message, epoch):
        super().__init__(message)
        self.epoch = epoch


def metrics_path(run_dir):
    return os.path.join(run_dir, "metrics.json")


def read_metrics(run_dir):
    """The run's metrics.json as a dict, None if there is none, or a ValueError naming a broken one."""
    path = metrics_path(run_dir)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            metrics = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON ({e}); move it away or pass --overwrite.") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path} holds a {type(metrics).__name__}, not a run's metrics.")
    return metrics


def status(metrics):
    """How the run ended; a metrics.json from before statuses were recorded is a completed run."""
    return metrics.get("status", "completed" if "test_accuracy" in metrics else "running")


def previous_run(run_dir, overwrite=False, clear=True):
    """A completed run's metrics (with `already_complete=True`), or None when the run is to be trained.

    A killed or failed run is resumed (None). A diverged run raises `RunDiverged`
    again; `overwrite` clears the folder first, whatever it holds (unless not `clear`:
    a process that only reads the folder another writes).
    """
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ValueError(f"The output {run_dir!r} is a file; give a folder for the run.")
    if overwrite:
        if clear:
            _clear(run_dir)
        return None
    metrics = read_metrics(run_dir)
    state = None if metrics is None else status(metrics)
    if state in (None, "running", "failed"):
        return None
    if state == "diverged":
        raise RunDiverged(f"{run_dir} holds a run that diverged ({metrics.get('reason')}); "
                          "pass --overwrite to start it afresh.", metrics.get("epoch"))
    return dict(metrics, already_complete=True)


def _clear(run_dir):
    if not os.path.isdir(run_dir):
        return
    if not any(os.path.exists(os.path.join(run_dir, n)) for n in ("metrics.json", "log.csv", "backup")):
        raise ValueError(f"{run_dir!r} is not a run folder (no metrics.json, log.csv or backup/); not overwriting it.")
    shutil.rmtree(run_dir)


def write_status(run_dir, state, **fields):
    files.write_json(metrics_path(run_dir), {"status": state, **fields})


def non_finite(value):
    """Whether a logged value is a NaN or infinite number (what a diverged epoch logs)."""
    return isinstance(value, (int, float)) and not math.isfinite(value)


def check_diverged(history, first_epoch):
    """Raises `RunDiverged` if an epoch of this `fit` history logged a NaN or infinite value."""
    for key, values in history.history.items():
        for i, value in enumerate(values):
            if non_finite(value):
                epoch = first_epoch + i + 1
                raise RunDiverged(f"the run diverged: {key} became {value} in epoch {epoch}", epoch)


def remove_temporaries(run_dir):
    """Deletes the half-written temporary files (`.tmp-*`) that a killed run left behind.

    Not in `worker_*/`: under multi-worker training those are other processes' folders,
    written at the same time.
    """
    for folder, subfolders, names in os.walk(run_dir):
        subfolders[:] = [d for d in subfolders if not d.startswith("worker_") and d != "tensorboard"]
        for name in names:
            if name.startswith(files.TEMPORARY_PREFIX):
                os.remove(os.path.join(folder, name))


@contextlib.contextmanager
def recording(run_dir):
    """Marks the run "running" while the block runs; records a divergence or failure, with why, and re-raises."""
    os.makedirs(run_dir, exist_ok=True)
    remove_temporaries(run_dir)
    write_status(run_dir, "running")
    try:
        yield
    except RunDiverged as e:
        write_status(run_dir, "diverged", epoch=e.epoch, reason=str(e))
        raise
    except Exception as e:
        write_status(run_dir, "failed", error=f"{type(e).__name__}: {e}")
        raise

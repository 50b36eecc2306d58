"""Where the main job's wall time goes: training steps, validation, the backup, logs, and what is left over.

Runs `keras-resnext train` (the README's main job, `make demo`) in this process with
clocks on Keras' loop and on each of the run's callbacks, and prints the split of the
whole process's time, from its start:

    python benchmarks/job_time.py [--precision auto] [--epochs 20] [--seed 0]

"training steps" is the time inside `train_function` calls, the first one (which traces
the step) apart; "between steps" is what the loop spends outside them during an epoch:
the input pipeline's waits and every callback's per-batch work. What no clock covers is
"other". The figures are seconds of wall time on this machine: label them with its CPU
(`keras-resnext info`).
"""

import os
import sys
import time


def process_age():
    """Seconds since this process started (Linux), so the interpreter's start and the imports count too."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return 0.0


START = time.perf_counter() - process_age()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import collections  # noqa: E402
import tempfile  # noqa: E402

import keras_resnext  # noqa: E402,F401 - first, as the command line does: oneDNN before TensorFlow
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402,F401 - the command imports it before training too

from keras_resnext import devices, jobs, training  # noqa: E402

IMPORTED = time.perf_counter()
SECONDS = collections.defaultdict(float)
TIMED = [0.0]  # seconds inside any timed section: the clock leaves them out of the gaps it measures
# The hooks of training; those of validation run inside `evaluate`, which is timed whole.
CALLBACK_METHODS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
                    "on_train_batch_end")


class Clock(keras.callbacks.Callback):
    """First of the run's callbacks: the training steps, the time between them, and when fit starts and ends."""

    def __init__(self):
        super().__init__()
        self.fitting, self.first_step, self.fit_started = False, None, None

    def on_train_begin(self, logs=None):
        self.fitting, self.fit_started = True, self.fit_started or time.perf_counter()

    def on_train_end(self, logs=None):
        self.fitting, self.fit_ended = False, time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.set_mark()

    def on_train_batch_begin(self, batch, logs=None):
        SECONDS["between steps"] += self.since_mark()
        self.set_mark()

    def on_train_batch_end(self, batch, logs=None):
        if self.first_step is None:
            self.first_step = self.since_mark()
        else:
            SECONDS["training steps"] += self.since_mark()
        self.set_mark()

    def on_epoch_end(self, epoch, logs=None):
        SECONDS["between steps"] += self.since_mark()

    def set_mark(self):
        self.mark, self.timed = time.perf_counter(), TIMED[0]

    def since_mark(self):
        """Seconds since the mark, less those of timed sections in between (other callbacks, validation)."""
        return time.perf_counter() - self.mark - (TIMED[0] - self.timed)


def timed(label, function):
    """`function`, its seconds added to `label` (or `label(args, kwargs)`); nested timed calls count once."""
    def wrapper(*args, **kwargs):
        start, inner = time.perf_counter(), TIMED[0]
        try:
            return function(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - start - (TIMED[0] - inner)
            SECONDS[label(args, kwargs) if callable(label) else label] += seconds
            TIMED[0] += seconds

    return wrapper


def clock_callbacks(clock):
    """`training.default_callbacks` with `clock` first and every callback's hooks timed, per callback."""
    original = training.default_callbacks

    def default_callbacks(*args, **kwargs):
        callbacks = original(*args, **kwargs)
        for callback in callbacks:
            name = {"AtomicBackupAndRestore": "backup", "EpochLog": "log.csv",
                    "TensorBoard": "TensorBoard"}.get(type(callback).__name__, type(callback).__name__)
            for method in CALLBACK_METHODS:
                setattr(callback, method, timed(name, getattr(callback, method)))
        return [clock, *callbacks]

    training.default_callbacks = default_callbacks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default=None, help="train's --precision (default: train's own default)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    clock = Clock()
    clock_callbacks(clock)
    evaluate, fit = keras.Model.evaluate, keras.Model.fit
    keras.Model.evaluate = timed(lambda a, k: "validation" if clock.fitting else "final evaluation", evaluate)

    def fit_and_leave(*args, **kwargs):  # what fit does after its last callback: it drops the input pipeline
        history = fit(*args, **kwargs)
        SECONDS["leaving fit"] += time.perf_counter() - clock.fit_ended
        TIMED[0] += time.perf_counter() - clock.fit_ended
        return history

    keras.Model.fit = fit_and_leave
    for name, label in (("_write_run", "writing model.keras, curves.png, metrics.json"),
                        ("per_class_report", "per-class report, confusion_matrix.png"),
                        ("_float32_model", "the float32 model to save")):
        if hasattr(jobs, name):  # the float32 copy is new in 0.2
            setattr(jobs, name, timed(label, getattr(jobs, name)))
    options = {} if args.precision is None else {"precision": args.precision}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run:
        metrics = jobs.train(epochs=args.epochs, run=jobs.RunOptions(os.path.join(run, "job"), seed=args.seed,
                                                                    verbose=0, **options))
    end = time.perf_counter()
    SECONDS["first step (tracing it)"] = clock.first_step
    SECONDS["python start, imports"] = IMPORTED - START
    SECONDS["data, model, compile"] = clock.fit_started - started
    total = end - START
    SECONDS["other"] = total - sum(SECONDS.values())
    print(f"cpu: {devices.cpu_name()} ({os.cpu_count()} cores); precision {metrics['precision']}; "
          f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}; test accuracy {metrics['test_accuracy']:.4f}")
    print(f"{'part of the job':48s} {'s':>7s} {'share':>6s}")
    for name, seconds in sorted(SECONDS.items(), key=lambda item: -item[1]):
        print(f"{name:48s} {seconds:7.2f} {seconds / total:6.1%}")
    print(f"{'whole process':48s} {total:7.2f}")


if __name__ == "__main__":
    sys.exit(main())

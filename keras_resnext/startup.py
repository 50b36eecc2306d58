"""What has to be settled before TensorFlow is imported: oneDNN on every x86-64 CPU, and a quiet command line.

`import keras_resnext` runs `before_tensorflow()` first, so it takes effect whenever
the package is imported before TensorFlow (and always in the `keras-resnext` command,
which loads TensorFlow only once a command's arguments are read: `--help` and usage
errors answer at once).

oneDNN: TensorFlow 2.21 turns it on by default only on CPUs with AVX-512 VNNI/BF16 or
AMX. Elsewhere (AVX2: AMD Zen 2/3, Intel client CPUs) it runs its own kernels, which
have no fast grouped convolution and no grouped gradient, and ResNeXt runs at about
0.66x of ResNet50 instead of 0.93x (BENCHMARKS.md). A user's own
`TF_ENABLE_ONEDNN_OPTS` (`0` included) is always respected.

Quiet start: TensorFlow's native libraries print INFO lines while they load (CPU
features, CUDA's absence, "oneDNN custom operations are on") through absl, which
ignores `TF_CPP_MIN_LOG_LEVEL`. The command line imports TensorFlow with the standard
error stream captured and replays only the lines at or above the wanted severity.
"""

import os
import platform
import re
import sys
import tempfile
import warnings

ONEDNN_VAR = "TF_ENABLE_ONEDNN_OPTS"
LOG_LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
X86_64 = ("x86_64", "amd64")
CLI_MODULE = "keras_resnext.cli"
CLI_LOG_LEVEL = 3  # the command line shows none of TensorFlow's own INFO, WARNING or ERROR lines
# absl's log prefix: severity letter, MMDD, time, thread id, file:line]
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_NOISE = ("All log messages before absl::InitializeLog()", "To enable the following instructions:")

onednn_set_here = False  # whether this package set TF_ENABLE_ONEDNN_OPTS (on every x86-64 CPU the user left it unset)


def before_tensorflow():
    """Turns oneDNN on where TensorFlow would not (the command line quiets TensorFlow's start once its
    arguments are read: `start_command`)."""
    enable_onednn()


def start_command(verbose=False):
    """In the `keras-resnext` process, once a command's arguments are good: TensorFlow loaded quietly (unless
    `verbose`), before the command's modules load it. Elsewhere (the command run in a Python process that has
    its own TensorFlow) nothing."""
    if running_the_cli() and not verbose:
        quiet_tensorflow_start(cli_log_level())


def cli_log_level():
    """The severity from which the command line shows TensorFlow's lines: the user's `TF_CPP_MIN_LOG_LEVEL`
    (0-3), else 3. absl's start-up lines ignore that variable; replayed through the filter, a quieter
    setting is never noisier than the default."""
    value = os.environ.get(LOG_LEVEL_VAR, "")
    return int(value) if value in ("0", "1", "2", "3") else CLI_LOG_LEVEL


def enable_onednn():
    """`TF_ENABLE_ONEDNN_OPTS=1` on x86-64, unless the user set it or TensorFlow is already imported."""
    global onednn_set_here
    if ONEDNN_VAR in os.environ or "tensorflow" in sys.modules or not on_x86_64():
        return False
    os.environ[ONEDNN_VAR] = "1"
    onednn_set_here = True
    return True


def on_x86_64():
    """Whether this is an x86-64 CPU, where TensorFlow's oneDNN default depends on AVX-512."""
    return platform.machine().lower() in X86_64


def running_the_cli():
    """Whether this process is `keras-resnext ...` or `python -m keras_resnext.cli ...`."""
    argv = getattr(sys, "orig_argv", sys.argv)
    return os.path.basename(sys.argv[0]) == "keras-resnext" or any(
        argv[i:i + 2] == ["-m", CLI_MODULE] for i in range(len(argv) - 1)
    )


def quiet_tensorflow_start(min_level=CLI_LOG_LEVEL):
    """Imports TensorFlow and finds its devices with stderr captured; replays the lines worth seeing."""
    os.environ[LOG_LEVEL_VAR] = str(min_level)  # what TensorFlow's own logging does filter, later on
    warnings.filterwarnings("ignore", message=".*np\\.object.*", category=FutureWarning)  # tf2onnx on NumPy 2
    try:
        import importlib.util

        if importlib.util.find_spec("tensorflow") is None:
            return
    except (ImportError, ValueError):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA's probe logs here, once
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
    kept = [line for line in text.splitlines() if _worth_showing(line, min_level)]
    if kept:
        print("\n".join(kept), file=sys.stderr)


def _worth_showing(line, min_level):
    match = _ABSL_LINE.match(line)
    if match:
        return _SEVERITY[match.group(1)] >= min_level
    return line.strip() and not any(noise in line for noise in _NOISE)

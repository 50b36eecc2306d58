"""Before TensorFlow loads: oneDNN on by default on x86-64 (the user's choice kept), and a quiet command line."""

import platform
import re
import subprocess
import sys

import pytest

from helpers import ENV, cli

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="TensorFlow's oneDNN default differs only on x86-64")
ABSL_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d", re.MULTILINE)

STATE = """
import warnings
warnings.simplefilter("always")
{first}
import os, keras_resnext as kr
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    paths = [kr.grouped_conv.resolve("auto", dtype) for dtype in ("float32", "bfloat16", "float32")]
told = sum("TensorFlow runs without oneDNN" in str(w.message) for w in caught)
print(os.environ.get("TF_ENABLE_ONEDNN_OPTS"), kr.devices.tf_onednn_enabled(), paths[0], told)
"""


def onednn_state(first="", **env):
    base = {k: v for k, v in ENV.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run([sys.executable, "-c", STATE.format(first=first)], env={**base, **env},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split()


def test_importing_the_package_first_turns_onednn_on():
    assert onednn_state() == ["1", "True", "direct", "0"]


def test_the_users_own_setting_is_kept():
    assert onednn_state(TF_ENABLE_ONEDNN_OPTS="0") == ["0", "False", "split", "0"]  # off as asked: no warning


@pytest.mark.parametrize("first", ["import tensorflow", "import keras"])  # every Keras tutorial's first line
def test_tensorflow_imported_first_without_onednn_warns_once(first):
    """Imported after TensorFlow (or Keras, which loads it), the package cannot turn oneDNN on: "auto" takes the
    fastest path TensorFlow has as it is, and says so once where that is not oneDNN's."""
    variable, enabled, path, told = onednn_state(first=first)
    assert variable == "None"
    if enabled == "True":  # a CPU where TensorFlow turns oneDNN on itself (AVX-512 VNNI/BF16, AMX)
        assert (path, told) == ("direct", "0")
    else:
        assert (path, told) == ("split", "1")  # once, for two dtypes and three layers


def test_the_command_line_starts_quietly_and_verbose_brings_tensorflow_back():
    env = {k: v for k, v in ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = cli("summary", "ResNeXt29_8x64d", env=env)
    assert quiet.returncode == 0 and "trainable parameters" in quiet.stdout
    assert not ABSL_LINE.search(quiet.stderr), quiet.stderr
    assert "absl" not in quiet.stderr and "oneDNN" not in quiet.stderr and "cuda" not in quiet.stderr.lower()
    verbose = cli("summary", "ResNeXt29_8x64d", "--verbose", env=env)
    assert verbose.returncode == 0 and ABSL_LINE.search(verbose.stderr)
    own_level = cli("summary", "ResNeXt29_8x64d", env=dict(env, TF_CPP_MIN_LOG_LEVEL="0"))
    assert ABSL_LINE.search(own_level.stderr)  # the user's own setting: TensorFlow's lines as it prints them
    silenced = cli("summary", "ResNeXt29_8x64d", env=dict(env, TF_CPP_MIN_LOG_LEVEL="3"))
    assert silenced.returncode == 0 and silenced.stderr == quiet.stderr  # a quieter setting is never noisier


def test_info_tells_what_runs_here():
    result = cli("info", env={k: v for k, v in ENV.items() if k != "TF_ENABLE_ONEDNN_OPTS"})
    assert result.returncode == 0, result.stderr[-2000:]
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in result.stdout.splitlines())
    assert rows["keras backend"] == "tensorflow" and rows["tensorflow"]
    assert rows["oneDNN (TensorFlow)"].startswith("on")
    assert rows["grouped conv 'auto', float32"] == "direct"
    assert {"native bfloat16", "int8 dot products (VNNI)", "AMX", "accelerator", "cpu features"} <= set(rows)


def test_info_says_whose_choice_onednn_is_on_each_cpu_kind(monkeypatch):
    from keras_resnext import devices, startup

    monkeypatch.setattr(startup, "onednn_set_here", True)
    monkeypatch.setattr(devices, "tf_onednn_enabled", lambda: True)
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "fma"})  # AMD Zen 2/3, Intel client CPUs
    assert devices._onednn_line() == "on (turned on by keras_resnext; TensorFlow leaves it off on this CPU)"
    for flags in ({"avx512_vnni"}, {"amx_bf16", "amx_int8", "amx_tile"}):  # AVX-512 VNNI EPYC, AMX Xeon
        monkeypatch.setattr(devices, "cpu_flags", lambda flags=flags: {"avx2", *flags})
        assert devices._onednn_line() == "on (TensorFlow's default on this CPU)"


@pytest.mark.parametrize("args", [["--help"], ["tune", "--help"], ["train", "--epochs", "-1"]])
def test_help_and_usage_errors_answer_before_tensorflow_loads(args):
    """The command reads its arguments before anything imports TensorFlow or Keras (6 s and 768 MB on 2 cores)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "keras_resnext.cli", *args], env=ENV,
                            capture_output=True, text=True, timeout=120)
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "keras_resnext" in imported and "argparse" in imported  # the listing covers the command's imports
    assert not [name for name in imported if name.split(".")[0] in ("tensorflow", "keras", "jax")], imported[-5:]
    if args[-1] == "--help":
        assert result.returncode == 0 and "usage: keras-resnext" in result.stdout
    else:
        assert result.returncode == 2 and "--epochs: must be at least 1" in result.stderr

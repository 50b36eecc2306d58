"""What several test files share: fixture paths, the tiny configuration, the CLI runners and the backbone harness."""

import contextlib
import csv
import io
import json
import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np

from keras_resnext.weights import registry

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
# The architecture of the torchvision fixture tv_resnext_tiny.*: one block per stage, 8x4d.
TINY = dict(depths=(1, 1, 1, 1), cardinality=8, bottleneck_width=4)
# A registry entry for the tiny fixture model, as the loopback Hub of `tiny_registry` serves it.
TINY_CHECKPOINT = (FIXTURES / "tv_resnext_tiny.safetensors").read_bytes()
TINY_ENTRY = dict(
    registry.entries()[0], model="resnext_tiny", tag="test_in1k", hf_hub_id="timm/resnext_tiny.test_in1k",
    sha256=None, default=True, num_classes=10,
)
TINY_HUB_KEY = "timm/resnext_tiny.test_in1k/model.safetensors"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")


def jax_env(devices, *flags, **variables):
    """The environment of a JAX subprocess with `devices` fake CPU devices and XLA's `flags`. LLVM's optimizations
    are off, as in the suite's JAX half (conftest): a test's program runs a few steps, and compiling it is most
    of its time; XLA's own graph passes, the partitioner's among them, still run."""
    flags = (f"--xla_force_host_platform_device_count={devices}", "--xla_backend_optimization_level=0", *flags)
    return dict(ENV, KERAS_BACKEND="jax", XLA_FLAGS=" ".join(flags), **variables)


def shapes_only():
    """A scope that builds models without drawing their weights, for tests that read only structure.

    Drawing the random initial weights is nearly all of building a large model (10 of 11 s for
    ResNeXt101_32x32d's 467M parameters here). Inside this scope Keras leaves every variable
    uninitialized with its shape set, so layers, output shapes and parameter counts are the real
    ones; running such a model is an error. `clear_session` (before each test) forgets them.
    """
    return keras.StatelessScope(initialize_variables=False)


def cli(*args, env=None, timeout=900, **kwargs):
    """`keras-resnext ARGS...` in a subprocess on the TensorFlow backend, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "keras_resnext.cli", *args], env=env or ENV,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def command(*args, cwd=None):
    """`keras-resnext ARGS...` through its entry point in this process: what `cli` returns, without a process.

    The command's own parser, code, output, files and exit status, without a TensorFlow start (8 s
    of CPU each on the 2-core CI machine). What only a real process shows (its quiet start,
    TensorFlow's log lines, a traceback reaching the terminal, a kill) is tested with `cli`. An
    exception escaping main() fails the test, as a traceback would fail a user.
    """
    from keras_resnext import cli as command_line

    stdout, stderr = io.StringIO(), io.StringIO()
    policy = keras.config.dtype_policy()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), contextlib.chdir(cwd or "."):
        try:
            returncode = command_line.main([str(arg) for arg in args])
        except SystemExit as exit:  # argparse's usage errors and --help
            returncode = exit.code
        finally:
            keras.config.set_dtype_policy(policy)  # a command's --precision stays in the command
    return subprocess.CompletedProcess(["keras-resnext", *args], returncode, stdout.getvalue(), stderr.getvalue())


FORMATS = ("png", "jpeg", "bmp", "gif", "webp")


def _encode(image, fmt, channels=3):
    """`image` in format `fmt`, stored with 1 (gray), 3 (RGB) or 4 (RGBA) channels."""
    import io

    from PIL import Image

    pixels = {1: image[..., 0], 3: image, 4: np.concatenate([image, np.full_like(image[..., :1], 255)], -1)}
    buffer = io.BytesIO()
    Image.fromarray(pixels[channels]).save(buffer, format=fmt.upper())
    return buffer.getvalue()


def make_tree(root, per_class=12, classes=("cat", "dog"), split=None, size=24, corrupt=2):
    """A tree of small images, a class = a colour, in mixed formats, with `corrupt` garbage .png files."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        folder = root / split / name if split else root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (size, size, 3), dtype="uint8")
            image[..., label % 3] += 180  # the class is the dominant colour
            fmt = FORMATS[i % len(FORMATS)]
            channels = {0: 1, 5: 4}.get(i % 7, 3) if fmt == "png" else 3  # gray and RGBA PNGs too
            (folder / f"{name}_{i}.{'jpg' if fmt == 'jpeg' else fmt}").write_bytes(_encode(image, fmt, channels))
    for i in range(corrupt):
        (root / (split or "") / classes[0] / f"broken_{i}.png").write_bytes(b"not an image at all" * i)
    (root / (split or "") / classes[0] / "notes.txt").write_text("ignored")
    (root / (split or "") / classes[1] / ".DS_Store").write_bytes(b"\0\1")
    return root


def colour_folder(root, layout="flat"):
    """The fine-tuning tests' folder: red, green and blue pictures at 40 px, 150 of them, 2 broken files.

    "flat": 50 per class, split by the run; "split": train/ (40 per class) and test/ (10 per class).
    """
    classes = ("red", "green", "blue")
    if layout == "flat":
        return make_tree(root, per_class=50, classes=classes, size=40)
    make_tree(root, per_class=40, classes=classes, split="train", size=40)
    return make_tree(root, per_class=10, classes=classes, split="test", size=40, corrupt=0)


def small_colour_tree(root):
    """48 pictures, 3 colour classes, 32 px, no bad file: the data of the tests that kill and resume runs.

    They need a real run, not a good model, and a run on a few dozen pictures costs little beyond start-up.
    """
    return make_tree(root, per_class=16, classes=("red", "green", "blue"), size=32, corrupt=0)


def small_colour_data(tmp_path):
    """The command-line arguments that train or search on `small_colour_tree` (in `tmp_path/colours`) at 32 px."""
    return ["--dataset", f"folder:{small_colour_tree(tmp_path / 'colours')}", "--image-size", "32"]


def log_rows(run_dir):
    """The rows of a run folder's log.csv."""
    with open(os.path.join(run_dir, "log.csv")) as f:
        return list(csv.DictReader(f))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_json(config):
    """A config as it reads after a JSON round trip (tuples become lists)."""
    return json.loads(json.dumps(config))


def run_backbone_test(constructor, init_kwargs, input_data, expected_output_shape, tmp_path,
                      run_mixed_precision_check=True):
    """Checks a model constructor the same way for every model (keras-hub's `run_vision_backbone_test` idea).

    - the output has the expected shape, symbolically and when run;
    - the model survives `model.save` / `keras.models.load_model` with equal outputs;
    - under `mixed_bfloat16` it builds, keeps a float32 head when it has one and
      gives finite outputs of the same shape.
    Runs on whichever Keras backend is active.
    """
    model = constructor(**init_kwargs)
    assert tuple(model.output.shape[1:]) == tuple(expected_output_shape[1:])
    output = keras.ops.convert_to_numpy(model(input_data, training=False))
    assert output.shape == tuple(expected_output_shape)
    assert np.all(np.isfinite(output))

    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert _as_json(restored.get_config()) == _as_json(model.get_config())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(input_data, training=False)), output,
                               atol=1e-5, rtol=1e-5)

    if run_mixed_precision_check:
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            mixed = constructor(**init_kwargs)
            mixed_output = keras.ops.convert_to_numpy(mixed(input_data, training=False))
        finally:
            keras.config.set_dtype_policy("float32")
        assert mixed_output.shape == tuple(expected_output_shape) and np.all(np.isfinite(mixed_output))
        head = next((layer for layer in mixed.layers if layer.name == "predictions"), None)
        if head is not None:
            assert head.compute_dtype == "float32"
    return model

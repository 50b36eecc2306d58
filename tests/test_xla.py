"""The GPU/TPU path, proven on the CPU: what `"auto"` picks there, and what XLA compiles it to.

On a GPU or TPU every step runs under XLA (Keras' `jit_compile="auto"` on TensorFlow,
`jax.jit` on JAX). These tests fake the device query so that `"auto"` resolves as it
does on an accelerator, compile the training step (forward, loss, gradients) and the
inference step of a small ResNeXt with XLA on this CPU, and read the compiler's HLO:
every grouped 3x3 must be one convolution with `feature_group_count=C` (its input
gradient another), never per-group slices and a concatenation. The compiled step
must compute what the CPU path computes.
"""

import re

import keras
import numpy as np
import pytest

import keras_resnext as kr
from keras_resnext import devices

BACKEND = keras.backend.backend()
CARDINALITY = 8
PRECISIONS = ["float32", "mixed_float16", "mixed_bfloat16"]
HLO_COMPUTE_TYPE = {"float32": "f32", "mixed_float16": "f16", "mixed_bfloat16": "bf16"}  # how HLO spells it
# The compiled step's loss and logits against the CPU path's, relative (logits: to the largest one).
TOLERANCE = {"float32": 1e-5, "mixed_float16": 2e-3, "mixed_bfloat16": 2e-2}


@pytest.fixture
def on_accelerator(monkeypatch, request):
    """`"auto"` as it resolves on a GPU (or TPU): the device query answers so, nothing else changes."""
    device = getattr(request, "param", "gpu")
    if BACKEND == "tensorflow":
        monkeypatch.setattr(devices, "tf_accelerator", lambda: device)
    else:
        import jax

        monkeypatch.setattr(jax, "default_backend", lambda: device)
    devices.fastest_grouped_conv.cache_clear()
    yield device
    devices.fastest_grouped_conv.cache_clear()


@pytest.mark.portable
@pytest.mark.parametrize("on_accelerator", ["gpu", "tpu"], indirect=True)
def test_auto_picks_the_native_grouped_conv_on_gpus_and_tpus(on_accelerator):
    # TensorFlow: the plain tf.nn.conv2d ("direct"), which XLA lowers to its grouped conv; JAX: lax's own.
    expected = "direct" if BACKEND == "tensorflow" else "native"
    for dtype in ("float32", "float16", "bfloat16"):
        assert devices.fastest_grouped_conv(BACKEND, dtype) == expected
    assert devices.accelerator() == on_accelerator


@pytest.mark.portable
def test_auto_stays_off_xla_on_this_cpu():
    devices.fastest_grouped_conv.cache_clear()
    assert devices.fastest_grouped_conv(BACKEND, "float32") == ("direct" if BACKEND == "tensorflow" else "split")


def _small_resnext():
    return kr.ResNeXt((1, 1), CARDINALITY, 4, classes=3, input_shape=(32, 32, 3), classifier_activation=None)


def _grouped_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, kr.layers.GroupedConv2D) and layer.groups > 1]


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 32, 32, 3)).astype("float32"), np.array([0, 2])


def _loss(y, logits):
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, keras.ops.cast(logits, "float32"),
                                                                       from_logits=True))


def _tf_steps(model, x, y, jit_compile):
    """The compiled training and inference steps of `model`: `(loss, gradients)`, logits and both HLO texts."""
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = _loss(y, model(x, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def infer_step(x):
        return model(x, training=False)

    loss, grads = train_step(x, y)
    logits = infer_step(x)
    hlo = (train_step.experimental_get_compiler_ir(x, y)(stage="hlo"),
           infer_step.experimental_get_compiler_ir(x)(stage="hlo")) if jit_compile else None
    return (float(loss), [g.numpy() for g in grads]), logits.numpy(), hlo


def _jax_steps(model, x, y, jit_compile):
    """As `_tf_steps`. JAX trains with compiled steps only (Keras' JAX trainer jits them), so the CPU's path is
    compiled too, with its own grouped conv ("split"); only the accelerator's program is read. Op by op, eagerly,
    that step was most of this test's time on JAX."""
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss_fn(trainable, non_trainable, x, y):
        logits, updated = model.stateless_call(trainable, non_trainable, x, training=True)
        return _loss(y, logits), updated

    def infer(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    train_step, infer_step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True)), jax.jit(infer)
    (loss, updated), grads = train_step(trainable, non_trainable, x, y)
    logits = infer_step(trainable, non_trainable, x)
    for variable, value in zip(model.non_trainable_variables, updated):  # the moving statistics, as fit keeps them
        variable.assign(value)
    hlo = (train_step.lower(trainable, non_trainable, x, y).as_text(dialect="hlo"),
           infer_step.lower(trainable, non_trainable, x).as_text(dialect="hlo")) if jit_compile else None
    return (float(loss), [np.asarray(g) for g in grads]), np.asarray(logits, "float32"), hlo


def _steps(model, jit_compile):
    x, y = _data()
    return (_tf_steps if BACKEND == "tensorflow" else _jax_steps)(model, x, y, jit_compile)


def _convolutions(hlo, groups):
    """The HLO convolutions with `feature_group_count=groups`, and those with `batch_group_count=groups`."""
    convs = [line for line in hlo.splitlines() if re.search(r"\bconvolution\(", line)]
    return (sum(f"feature_group_count={groups}" in line for line in convs),
            sum(f"batch_group_count={groups}" in line for line in convs))


def _float_concatenations(hlo):
    """How many HLO concatenations join activations (shape arithmetic concatenates integers; the split path, floats)."""
    return len(re.findall(r"= (?:f32|f16|bf16)\[[^\]]*\][^ ]* concatenate\(", hlo))


@pytest.mark.portable
@pytest.mark.parametrize("precision", PRECISIONS)
def test_xla_compiles_every_grouped_conv_to_one_native_grouped_convolution(on_accelerator, monkeypatch, precision):
    try:
        keras.config.set_dtype_policy(precision)
        model = _small_resnext()
        weights = model.get_weights()
        (loss, grads), logits, (train_hlo, infer_hlo) = _steps(model, jit_compile=True)
        grouped = len(_grouped_layers(model))
        assert grouped == 2
        # Inference: one grouped convolution per grouped layer, and no per-group pieces put together again.
        assert _convolutions(infer_hlo, CARDINALITY) == (grouped, 0)
        assert _float_concatenations(infer_hlo) == _float_concatenations(train_hlo) == 0
        # Training: the forward and the input gradient are grouped convolutions; XLA writes the
        # kernel gradient as one convolution with batch_group_count=C.
        forward_and_input_gradient, kernel_gradient = _convolutions(train_hlo, CARDINALITY)
        assert forward_and_input_gradient == 2 * grouped and kernel_gradient == grouped
        assert re.search(rf"\b{HLO_COMPUTE_TYPE[precision]}\[[^\]]*\][^=]*convolution\([^\n]*"
                         rf"feature_group_count={CARDINALITY}", infer_hlo)  # in the policy's compute dtype
        if BACKEND == "tensorflow":  # the fused BatchNorm: XLA's own training and gradient ops, one per layer
            norms = sum(isinstance(layer, kr.layers.TorchBatchNormalization) for layer in model._flatten_layers())
            assert len(re.findall(r"batch-norm-training\(", train_hlo)) == norms == 9
            assert len(re.findall(r"batch-norm-grad\(", train_hlo)) == norms
        statistics = _moving_statistics(model)
    finally:
        keras.config.set_dtype_policy("float32")
    # The same step on this CPU's own path (what the parity tests prove), from the same weights.
    monkeypatch.undo()
    devices.fastest_grouped_conv.cache_clear()
    (cpu_loss, cpu_grads), cpu_logits, cpu_statistics = _cpu_step(precision, weights)
    tolerance = TOLERANCE[precision]
    # PyTorch's running statistics (the unbiased variance) from the compiled step too.
    assert np.abs(statistics - cpu_statistics).max() <= tolerance * np.abs(cpu_statistics).max()
    assert abs(loss - cpu_loss) <= tolerance * abs(cpu_loss)
    assert np.abs(logits - cpu_logits).max() <= tolerance * np.abs(cpu_logits).max()
    assert len(grads) == len(cpu_grads)
    if precision == "float32":  # the same numbers, tensor by tensor
        assert max(_relative_error(grad, cpu_grad) for grad, cpu_grad in zip(grads, cpu_grads)) <= 2e-5
    else:  # rounded differently, but no farther from float32's gradients than the CPU path's
        (_, exact), _, _ = _cpu_step("float32", weights)
        assert _relative_error(grads, exact) <= 1.5 * _relative_error(cpu_grads, exact) + 1e-3


def _cpu_step(precision, weights):
    """`(loss, gradients), logits, moving statistics` of the training and inference steps on this CPU's path."""
    try:
        keras.config.set_dtype_policy(precision)
        model = _small_resnext()
        model.set_weights(weights)
        train, logits, _ = _steps(model, jit_compile=False)
        return train, logits, _moving_statistics(model)
    finally:
        keras.config.set_dtype_policy("float32")


def _moving_statistics(model):
    """Every BatchNorm's moving mean and variance, after the training step, as one vector."""
    return np.concatenate([keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables])


def _relative_error(values, reference):
    """|values - reference| / |reference| (2-norms), of one tensor or of a list of them taken together."""
    values, reference = (np.concatenate([np.ravel(v) for v in x]) if isinstance(x, list) else np.ravel(x)
                         for x in (values, reference))
    return float(np.linalg.norm(values - reference) / np.linalg.norm(reference))


def test_the_gpu_benchmark_runs_its_own_code_on_the_cpu_in_seconds():
    """benchmarks/accelerator.py --smoke: every Keras row of the GPU run, tiny, on JAX (the GPU run's first backend)."""
    import os
    import pathlib
    import subprocess
    import sys

    from helpers import jax_env

    script = pathlib.Path(__file__).parents[1] / "benchmarks" / "accelerator.py"
    # Without LLVM's optimizations XLA compiles the eight graphs in 35 CPU-s instead of 56: the smoke
    # run checks the code, not its speed.
    env = jax_env(1)
    result = subprocess.run([sys.executable, str(script), "--smoke"], env=env, capture_output=True, text=True,
                            timeout=600, cwd=os.path.dirname(script))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("jax ") and "keras 3." in lines[0] and "batch 2, 32 px" in lines[0]
    for precision in ("mixed_bfloat16", "mixed_float16"):
        block = lines[lines.index(f"{precision}:") + 1:][:4]
        rows = [re.fullmatch(r"\s+(.*?)\s+([\d.]+) img/s\s+([\d.]+)x ResNet50", line) for line in block]
        assert all(rows), block
        assert [row[1] for row in rows] == ["ResNet50 (keras.applications) train", "ResNet50 (keras.applications) infer",
                                            "ResNeXt50 (keras_resnext) train", "ResNeXt50 (keras_resnext) infer"]
        assert all(float(row[2]) > 0 for row in rows) and float(rows[0][3]) == 1.0


def test_the_gpu_benchmark_adds_a_resnext_row_per_grouped_conv_path_and_refuses_unknown_ones(capsys):
    """--implementations: the question a GPU run answers next (is the path "auto" picks the fastest there?)."""
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
    import accelerator

    models = accelerator.keras_models(True, 32, 10, ("auto", "split"))
    assert list(models) == [accelerator.BASELINE, accelerator.RESNEXT, "ResNeXt50 (keras_resnext, split)"]
    assert models["ResNeXt50 (keras_resnext, split)"].get_layer("stage1_block1").conv2.implementation == "split"
    with pytest.raises(SystemExit) as usage:
        accelerator.main(["--smoke", "--implementations", "split,nosuch"])
    assert usage.value.code == 2 and "Unknown grouped-conv implementation 'nosuch'" in capsys.readouterr().err

"""TorchBatchNormalization's fused training step (TensorFlow): the same function as Keras' ops, in one kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnext as kr
from keras_resnext import fused_batch_norm
from keras_resnext.layers import TorchBatchNormalization

# Fused against Keras' ops in the same policy: float32 to its rounding; mixed precision to one rounding of
# the bfloat16/float16 output (both compute the statistics in float32), relative to the largest value.
TOLERANCE = {"float32": 1e-5, "mixed_float16": 2e-3, "mixed_bfloat16": 1e-2}


def _training_step(policy, fused, x, axis=-1, gamma=None, beta=None):
    """Outputs, the gradients of a fixed loss for inputs, gamma and beta, and the moving statistics after one step."""
    layer = TorchBatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5, fused=fused, dtype=policy)
    layer.build(x.shape)
    if gamma is not None:
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    x = tf.constant(x)
    weights = tf.constant(np.random.default_rng(7).normal(size=x.shape).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(layer(x, training=True), "float32")
        loss = tf.reduce_sum(weights * y + 0.5 * y * y)  # gradients that depend on the outputs
    gradients = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
    return ([y.numpy()] + [g.numpy() for g in gradients],
            (layer.moving_mean.numpy(), layer.moving_variance.numpy()))


def _assert_close(actual, expected, tolerance, what):
    for a, e, name in zip(actual, expected, what):
        assert np.abs(a - e).max() <= tolerance * np.abs(e).max(), name


@pytest.mark.parametrize("policy", list(TOLERANCE))
@pytest.mark.parametrize("shape, axis", [((4, 5, 5, 8), -1), ((2, 3, 3, 8), -1), ((4, 8, 5, 5), 1)])
def test_the_fused_step_computes_keras_outputs_gradients_and_pytorchs_statistics(policy, shape, axis):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    gamma, beta = rng.normal(size=8).astype("float32"), rng.normal(size=8).astype("float32")
    fused, fused_statistics = _training_step(policy, True, x, axis, gamma, beta)
    keras_ops, keras_statistics = _training_step(policy, False, x, axis, gamma, beta)
    _assert_close(fused, keras_ops, TOLERANCE[policy], ["outputs", "input gradient", "gamma gradient",
                                                        "beta gradient"])
    # The running statistics are float32 on both paths, float32 moments of the inputs the layer computes on
    # (rounded to the policy's compute dtype): PyTorch's rule to float32 rounding.
    rounded = tf.cast(tf.cast(x, keras.DTypePolicy(policy).compute_dtype), "float32").numpy()
    channels_last = np.moveaxis(rounded, axis, -1).reshape(-1, 8)
    n = len(channels_last)
    np.testing.assert_allclose(fused_statistics[0], 0.1 * channels_last.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused_statistics[1], 0.9 + 0.1 * channels_last.var(0) * n / (n - 1), rtol=1e-5)
    for a, b in zip(fused_statistics, keras_statistics):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_one_value_per_channel_keeps_the_moving_variance_rule():
    """n = 1: no unbiased variance exists; both paths take 0 (Keras' rule here, n / max(n - 1, 1))."""
    x = np.random.default_rng(0).normal(size=(1, 1, 1, 3)).astype("float32")
    (outputs, *_), (_, variance) = _training_step("float32", True, x)
    np.testing.assert_allclose(variance, 0.9)
    np.testing.assert_allclose(outputs, 0.0, atol=1e-6)


def _op_types(model, x):
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(x).graph
    return [op.type for op in graph.get_operations()]


def test_a_resnext_trains_every_batchnorm_with_one_fused_kernel():
    model = kr.ResNeXt((1, 1), 4, 4, classes=3, input_shape=(32, 32, 3))
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, TorchBatchNormalization)]
    x = tf.TensorSpec((2, 32, 32, 3))
    ops = _op_types(model, x)
    assert ops.count("FusedBatchNormV3") == len(norms) == 9
    assert "SquaredDifference" not in ops  # no separate moments (Keras takes the variance as one)
    for layer in norms:
        layer.fused = False
    ops = _op_types(model, x)
    assert "FusedBatchNormV3" not in ops and ops.count("SquaredDifference") == len(norms)  # Keras' moments


@pytest.mark.parametrize("case", ["float64", "5-D", "mask", "renorm"])
def test_what_the_fused_kernel_cannot_take_keeps_keras_ops(case):
    rng = np.random.default_rng(0)
    shape = (2, 3, 4, 4, 6) if case == "5-D" else (2, 4, 4, 6)
    x = rng.normal(size=shape).astype("float64" if case == "float64" else "float32")
    options = dict(momentum=0.9, epsilon=1e-5, renorm=case == "renorm", dtype="float64" if case == "float64" else None)
    layer, stock = TorchBatchNormalization(**options), keras.layers.BatchNormalization(**options)
    assert fused_batch_norm.serves(tf.constant(x), -1) == (case in ("mask", "renorm"))  # the layer declines those
    mask = np.ones(shape[:-1], bool) if case == "mask" else None
    ops = [op.type for op in tf.function(lambda x: layer(x, training=True, mask=mask))
           .get_concrete_function(tf.constant(x)).graph.get_operations()]
    assert "FusedBatchNormV3" not in ops
    np.testing.assert_allclose(layer(x, training=True, mask=mask), stock(x, training=True, mask=mask), atol=1e-6)
    if case in ("float64", "5-D"):  # PyTorch's running variance; masked and renormalised batches keep Keras' rule
        flat, n = x.reshape(-1, 6), x.size // 6  # one update: tracing the graph above ran none
        np.testing.assert_allclose(layer.moving_variance, 0.9 + 0.1 * flat.var(0) * n / (n - 1), rtol=1e-5)


def test_fused_is_part_of_the_config_and_older_configs_fuse():
    layer = TorchBatchNormalization(fused=False)
    assert layer.get_config()["fused"] is False
    assert keras.layers.deserialize(keras.layers.serialize(layer)).fused is False
    config = keras.layers.serialize(TorchBatchNormalization())
    del config["config"]["fused"]  # as models saved before the option wrote it
    assert keras.layers.deserialize(config).fused is True

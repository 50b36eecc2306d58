import keras
import numpy as np
import pytest

from keras_resnext import devices, grouped_conv, layers
from helpers import FIXTURES, TINY
from keras_resnext.layers import GroupedConv2D, ResNeXtBlock

pytestmark = pytest.mark.portable

IMPLEMENTATIONS = ["native", "split", "block_diagonal"] + (
    ["direct"] if keras.backend.backend() == "tensorflow" else []
)


def _has_grouped_gradients(implementation):
    """"direct" trains only where TensorFlow has grouped-conv gradients (oneDNN, GPU, TPU)."""
    return implementation != "direct" or devices.tf_grouped_kernels_complete()


def _reference_grouped_conv(x, kernel, groups, strides, pad):
    """keras.layers.Conv2D(groups=...) on a symmetrically padded input: the stock layer."""
    conv = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[0], strides=strides, groups=groups, use_bias=False)
    conv.build(x.shape)
    conv.kernel.assign(kernel)
    return keras.ops.convert_to_numpy(conv(np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("strides,size", [(1, 9), (2, 9), (2, 8)])
def test_grouped_conv_implementations_match_stock_conv2d(implementation, strides, size):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, size, size, 16)).astype("float32")
    layer = GroupedConv2D(24, 3, groups=4, strides=strides, implementation=implementation)
    y = keras.ops.convert_to_numpy(layer(x))
    expected = _reference_grouped_conv(x, keras.ops.convert_to_numpy(layer.kernel), 4, strides, 1)
    assert y.shape == expected.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, expected, atol=1e-4)


def test_grouped_conv_gradients_match_across_implementations():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 8, 8, 8)).astype("float32")
    kernel = rng.normal(size=(3, 3, 2, 8)).astype("float32")
    grads = {}
    for implementation in filter(_has_grouped_gradients, IMPLEMENTATIONS):
        layer = GroupedConv2D(8, 3, groups=4, strides=2, implementation=implementation)
        model = keras.Sequential([keras.Input((8, 8, 8)), layer])
        layer.kernel.assign(kernel)
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        model.train_on_batch(x, np.zeros((2, 4, 4, 8), "float32"))
        grads[implementation] = kernel - keras.ops.convert_to_numpy(layer.kernel)  # lr 1: the gradient
    for implementation, grad in grads.items():
        np.testing.assert_allclose(grad, grads["native"], atol=1e-4, err_msg=implementation)


def test_auto_resolves_to_a_fast_path_and_env_var_overrides(monkeypatch):
    layer = GroupedConv2D(8, 3, groups=4)
    tf_fast = "direct" if keras.backend.backend() == "tensorflow" and devices.tf_grouped_kernels_complete() else "split"
    expected = {"tensorflow": tf_fast, "jax": "split"}.get(keras.backend.backend(), "native")
    assert layer.resolved_implementation == expected  # CPU: never XLA's slow grouped conv
    monkeypatch.setenv(grouped_conv.ENV_VAR, "block_diagonal")
    assert layer.resolved_implementation == "block_diagonal"
    assert GroupedConv2D(8, 3, groups=4, implementation="split").resolved_implementation == "split"
    with grouped_conv.force_implementation("native"):
        assert layer.resolved_implementation == "native"


def test_the_auto_path_is_decided_once_per_backend_and_dtype(monkeypatch):
    # Every GroupedConv2D asks for it when it builds and calls: the decision must not be redone each time.
    asked = []
    monkeypatch.setattr(devices, "tf_grouped_kernels_complete", lambda dtype="float32": asked.append(dtype) or True)
    devices.fastest_grouped_conv.cache_clear()
    try:
        assert [devices.fastest_grouped_conv("tensorflow", "float32") for _ in range(3)] == ["direct"] * 3
        assert asked == ["float32"]
    finally:
        devices.fastest_grouped_conv.cache_clear()  # the next test decides with the real probe


def test_block_diagonal_kernel_is_the_grouped_kernel_on_its_diagonal():
    kernel = np.arange(3 * 3 * 2 * 6, dtype="float32").reshape(3, 3, 2, 6)
    dense = keras.ops.convert_to_numpy(grouped_conv.block_diagonal_kernel(kernel, 3))
    assert dense.shape == (3, 3, 6, 6)
    for g in range(3):
        for h in range(3):
            np.testing.assert_array_equal(dense[:, :, 2 * g:2 * g + 2, 2 * h:2 * h + 2], kernel[:, :, :, 2 * h:2 * h + 2] * (g == h))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(filters=10, kernel_size=3, groups=4), "multiple of `groups`"),
        (dict(filters=8, kernel_size=3, groups=0), "groups"),
        (dict(filters=8, kernel_size=3, padding="same"), "padding"),
        (dict(filters=8, kernel_size=3, implementation="fast"), "implementation"),
    ],
)
def test_grouped_conv_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupedConv2D(**kwargs)


def test_grouped_conv_rejects_input_channels_not_divisible():
    with pytest.raises(ValueError, match="multiple of groups=4"):
        GroupedConv2D(8, 3, groups=4)(np.zeros((1, 5, 5, 6), "float32"))


def _random_block(form, strides=2):
    block = ResNeXtBlock(64, 32, cardinality=8, strides=strides, form=form, name="block")
    block.build((None, 10, 10, 16))
    return block


def _randomize(block, seed=3):
    rng = np.random.default_rng(seed)
    for v in block.weights:
        shape = tuple(v.shape)
        value = rng.uniform(0.5, 1.5, shape) if "variance" in v.path else rng.normal(0, 0.3, shape)
        v.assign(value.astype("float32"))


@pytest.mark.parametrize("training", [False, True])
def test_the_three_block_forms_compute_the_same_function(training):
    """Fig. 3 (a), (b), (c) of the paper: equivalent given the same weights."""
    x = np.random.default_rng(4).normal(size=(2, 10, 10, 16)).astype("float32")
    grouped = _random_block("grouped")
    _randomize(grouped)
    expected = keras.ops.convert_to_numpy(grouped(x, training=training))
    for form in ("concat", "split"):
        block = _random_block(form)
        for target, source in zip(block.weights, grouped.weights):
            assert target.path == source.path
            target.assign(source)
        y = keras.ops.convert_to_numpy(block(x, training=training))
        np.testing.assert_allclose(y, expected, atol=1e-4, err_msg=form)
    assert expected.shape == (2, 5, 5, 64)


def test_block_shortcut_is_identity_only_when_shapes_match():
    assert _random_block("grouped", strides=1).downsample_conv is not None  # 16 -> 64 channels
    same = ResNeXtBlock(16, 32, cardinality=8, strides=1)
    same.build((None, 10, 10, 16))
    assert same.downsample_conv is None
    with pytest.raises(ValueError, match="needs projection"):
        ResNeXtBlock(64, 32, cardinality=8, projection=False).build((None, 10, 10, 16))
    with pytest.raises(ValueError, match="form"):
        ResNeXtBlock(64, 32, cardinality=8, form="fig3d")


def test_layers_round_trip_through_keras_files(tmp_path):
    inputs = keras.Input((12, 12, 16))
    x = GroupedConv2D(16, 3, groups=4, use_bias=True, name="gconv")(inputs)
    x = ResNeXtBlock(32, 16, cardinality=4, strides=2, form="split", name="block")(x)
    model = keras.Model(inputs, x)
    data = np.random.default_rng(5).normal(size=(2, 12, 12, 16)).astype("float32")
    path = tmp_path / "layers.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects: the layers are registered
    assert isinstance(loaded.get_layer("gconv"), GroupedConv2D)
    assert loaded.get_layer("block").form == "split"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(data)), keras.ops.convert_to_numpy(model(data)), atol=1e-5
    )


ONEDNN_OFF = """
import sys
import numpy as np, keras, keras_resnext as kr
sys.path.insert(0, "tests")
from helpers import FIXTURES, TINY
model = kr.ResNeXt((1, 1), 4, 4, classes=3, input_shape=(32, 32, 3))
print(model.get_layer("stage1_block1").conv2.resolved_implementation)
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
print(np.isfinite(model.train_on_batch(np.ones((2, 32, 32, 3)), np.array([0, 1]))))
golden = np.load(FIXTURES / "tv_resnext_tiny_io.npz")  # parity with torchvision holds without oneDNN too
tv = kr.ResNeXt(**TINY, classes=10, classifier_activation=None, input_shape=(None, None, 3),
                weights=FIXTURES / "tv_resnext_tiny.safetensors")
for side in (64, 75):
    print(np.abs(tv.predict(golden[f"x_nhwc_{side}"], verbose=0) - golden[f"logits_{side}"]).max() < 1e-4)
"""


@pytest.mark.slow
@pytest.mark.backend_independent  # its process runs TensorFlow, whatever the suite's backend
def test_without_onednn_tensorflow_falls_back_to_split_still_trains_and_matches_torchvision():
    """Stock TF CPU kernels have no grouped-conv gradient; "auto" must notice (probed once).

    The rest of the suite runs with oneDNN on (keras_resnext turns it on on x86-64)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", ONEDNN_OFF], env=env, capture_output=True, text=True, timeout=300,
                            cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["split", "True", "True", "True"]


@pytest.mark.portable
def test_a_kernel_larger_than_its_valid_input_fails_at_build():
    with pytest.raises(ValueError, match=r"5x5 kernel \(dilation 1\) spans 5 pixels, more than its 3x3 input padded by 0"):
        GroupedConv2D(8, 5, groups=4, padding="valid").build((None, 3, 3, 8))
    assert GroupedConv2D(8, 5, groups=4)(np.ones((1, 3, 3, 8), "float32")).shape == (1, 3, 3, 8)  # padded by 2


def _running_statistics_after_training_passes(model, batches):
    """`{torch key: value}` of the fixture's kept BatchNorm statistics after one training pass per batch."""
    from keras_resnext.weights import torch_layout

    layout = torch_layout.layout(model)
    reference = dict(np.load(FIXTURES / "tv_resnext_sgd.npz"))
    results = []
    for i, x in enumerate(batches, start=1):
        model(x, training=True)
        keys = [k.split("/", 1)[1] for k in reference if k.startswith(f"bn_after{i}/")]
        results.append({key: (keras.ops.convert_to_numpy(layout[key][0]), reference[f"bn_after{i}/{key}"])
                        for key in keys})
    return results


@pytest.mark.parametrize("fused", [True, False])
def test_batchnorm_keeps_pytorchs_running_statistics(monkeypatch, fused):
    """Two training passes of the torchvision checkpoint (batch 4, 64 px): PyTorch's running mean and variance.

    The last stage sees 2 x 2 x 4 = 16 values per channel, so the unbiased variance is 16/15 of the biased one.
    Both training steps keep them: the fused kernel (TensorFlow) and Keras' ops (`fused=False`, every backend).
    """
    import keras_resnext as kr

    model = kr.ResNeXt(**TINY, classes=10, input_shape=(64, 64, 3), weights=FIXTURES / "tv_resnext_tiny.safetensors")
    for layer in model._flatten_layers():
        if isinstance(layer, layers.TorchBatchNormalization):
            layer.fused = fused
    batches = np.load(FIXTURES / "tv_resnext_sgd.npz")["bn_x_nhwc"]
    passes = _running_statistics_after_training_passes(model, batches)
    assert len(passes) == 2 and all(len(kept) == 6 for kept in passes)
    for kept in passes:
        for key, (value, expected) in kept.items():
            np.testing.assert_allclose(value, expected, atol=1e-6, rtol=0, err_msg=key)
    # Keras' own layer keeps the biased variance: off by more than the bound in the last stage.
    monkeypatch.setattr(layers, "TorchBatchNormalization", keras.layers.BatchNormalization)
    keras_bn = kr.ResNeXt(**TINY, classes=10, input_shape=(64, 64, 3), weights=FIXTURES / "tv_resnext_tiny.safetensors")
    value, expected = _running_statistics_after_training_passes(keras_bn, batches)[1]["layer4.0.bn3.running_var"]
    assert np.abs(value - expected).max() > 1e-4


def test_torch_batchnorm_round_trips_and_normalises_as_keras_does():
    from keras_resnext.layers import TorchBatchNormalization

    layer = TorchBatchNormalization(momentum=0.9, epsilon=1e-5)
    x = np.random.default_rng(0).normal(2.0, 3.0, (4, 5, 5, 3)).astype("float32")
    stock = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    np.testing.assert_allclose(layer(x, training=True), stock(x, training=True), atol=1e-5)
    n = 4 * 5 * 5
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance),
                               0.9 + 0.1 * x.reshape(-1, 3).var(0) * n / (n - 1), rtol=1e-5)
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, TorchBatchNormalization) and again.momentum == pytest.approx(0.9)

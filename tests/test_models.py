import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_resnext as kr
from helpers import ENV, FIXTURES, TINY, run_backbone_test, shapes_only

UPSTREAM = json.loads((FIXTURES / "upstream_state_dict_shapes.json").read_text())


def trainable_params(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize(
    "constructor,upstream",
    [
        (kr.ResNeXt50, "torchvision.resnext50_32x4d"),
        (kr.ResNeXt101, "timm.resnext101_32x4d"),
        (kr.ResNeXt101_32x8d, "torchvision.resnext101_32x8d"),
        (kr.ResNeXt101_64x4d, "torchvision.resnext101_64x4d"),
        (kr.ResNeXt101_32x16d, "timm.resnext101_32x16d"),
        (kr.ResNeXt101_32x32d, "timm.resnext101_32x32d"),
    ],
)
def test_parameter_counts_equal_torchvision_and_timm(constructor, upstream):
    with shapes_only():
        model = constructor(weights=None)
    assert trainable_params(model) == UPSTREAM[upstream]["params"]
    assert model.output.shape == (None, 1000)


@pytest.mark.parametrize("constructor,millions", [(kr.ResNeXt29_8x64d, 34.4), (kr.ResNeXt29_16x64d, 68.1)])
def test_cifar_models_match_the_paper(constructor, millions):
    with shapes_only():
        model = constructor()
    assert model.input.shape == (None, 32, 32, 3)
    assert model.output.shape == (None, 10)
    assert trainable_params(model) // 100_000 / 10 == millions  # Table 7 of the paper, truncated


def test_cardinality_one_width_64_is_resnet50():
    with shapes_only():
        model = kr.ResNeXt(depths=(3, 4, 6, 3), cardinality=1, bottleneck_width=64)
    assert trainable_params(model) == 25_557_032  # torchvision.models.resnet50
    assert model.name == "resnext_50_1x64d"


@pytest.mark.portable
def test_feature_extractor_with_custom_input_and_pooling():
    with shapes_only():
        model = kr.ResNeXt101_32x8d(weights=None, include_top=False, pooling="avg", input_shape=(320, 320, 3))
        headless = kr.ResNeXt50(weights=None, include_top=False)
        maxpooled = kr.ResNeXt50(weights=None, include_top=False, pooling="max", input_shape=(64, 80, 3))
    assert model.output.shape == (None, 2048)
    assert headless.output.shape == (None, None, None, 2048)
    assert maxpooled.output.shape == (None, 2048)


@pytest.mark.portable
def test_small_model_predicts_and_trains():
    model = kr.ResNeXt(**TINY, classes=10, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 10
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
    losses = [model.train_on_batch(x, y) for _ in range(8)]
    assert losses[-1] < losses[0]


@pytest.mark.portable
def test_input_tensor_is_used_as_the_model_input():
    tensor = keras.Input((48, 48, 3), name="image")
    model = kr.ResNeXt(**TINY, include_top=False, input_tensor=tensor)
    assert model.inputs[0] is tensor
    assert model.output.shape == (None, 2, 2, 2048)


def test_constructors_have_the_keras_applications_signature():
    import inspect

    reference = inspect.signature(keras.applications.ResNet50).parameters
    ours = inspect.signature(kr.ResNeXt50).parameters
    # keras.applications' arguments, in order, then **kwargs passed through to kr.ResNeXt
    assert [n for n, p in ours.items() if p.kind != p.VAR_KEYWORD] == list(reference)
    assert list(ours.values())[-1].kind == inspect.Parameter.VAR_KEYWORD
    for name, param in reference.items():
        if name != "name":
            assert ours[name].default == param.default, name


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(weights="imagenet", classes=10), "`classes` should be 1000"),
        (dict(weights="no/such/file.h5"), "The `weights` argument should be either"),
        (dict(weights=None, input_shape=(16, 16, 3)), "at least 32x32"),
        (dict(weights=None, input_shape=(224, 224)), "three integers"),
        (dict(weights="imagenet", input_shape=(256, 256, 3)), "should be \\(224, 224, 3\\)"),
        (dict(weights="imagenet", include_top=False, input_shape=(224, 224, None)), "channel count must be known"),
        (dict(weights=None, include_top=False, input_shape=(64, 64, 0)), "channel count must be at least 1"),
        (dict(weights=None, include_top=False, pooling="mean"), "`pooling` must be one of"),
        (dict(weights="imagenet", classifier_activation="relu"), "Only `None` and `softmax`"),
    ],
)
def test_bad_arguments_raise_like_keras_applications(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kr.ResNeXt50(**kwargs)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(depths=(), cardinality=8, bottleneck_width=4), "`depths`"),
        (dict(depths=(1, 1), cardinality=0, bottleneck_width=4), "`cardinality`"),
        (dict(depths=(1, 1), cardinality=8, bottleneck_width=2.5), "`bottleneck_width`"),
        (dict(depths=(1, 1), cardinality=8, bottleneck_width=4, stem="tiny"), "`stem`"),
        (dict(depths=(1, 1), cardinality=8, bottleneck_width=4, block_form="mixed"), "`block_form` must be one of"),
    ],
)
def test_generic_builder_validates_its_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kr.ResNeXt(**kwargs)


def test_channels_first_is_refused_with_a_clear_error():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_last"):
            kr.ResNeXt(**TINY)
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.mark.portable
def test_whole_model_round_trips_through_a_keras_file(tmp_path):
    model = kr.ResNeXt(**TINY, classes=10, input_shape=(32, 32, 3))
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.portable
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("form", ["grouped", "split"])
def test_mixed_precision_predicts_close_to_float32_and_trains(policy, form, tiny_io):
    weights = FIXTURES / "tv_resnext_tiny.safetensors"
    x = tiny_io["x_nhwc_64"]
    keras.config.set_dtype_policy(policy)
    try:
        model = kr.ResNeXt(**TINY, classes=10, classifier_activation=None, input_shape=(64, 64, 3),
                           weights=weights, block_form=form)
        logits = model.predict(x, verbose=0)
        assert logits.dtype == np.float32  # the head stays float32
        scale = np.abs(tiny_io["logits_64"]).max()
        assert np.abs(logits - tiny_io["logits_64"]).max() < 0.05 * scale
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
        assert np.isfinite(model.train_on_batch(x, np.array([1, 2])))
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize(
    "constructor,kwargs,input_shape,output_shape",
    [
        pytest.param(kr.ResNeXt, dict(**TINY, classes=10, input_shape=(64, 64, 3)), (2, 64, 64, 3), (2, 10),
                     marks=pytest.mark.portable),
        pytest.param(kr.ResNeXt, dict(**TINY, include_top=False, block_form="split", input_shape=(64, 64, 3)),
                     (2, 64, 64, 3), (2, 2, 2, 2048), marks=pytest.mark.portable),
        # ResNeXt50 is TINY's ImageNet stem and blocks, deeper and wider: on JAX, where each new shape of an
        # eager op is an XLA compilation (15 s of CPU for this one), it would check nothing TINY does not.
        (kr.ResNeXt50, dict(weights=None, include_top=False, pooling="avg"), (1, 64, 64, 3), (1, 2048)),
        pytest.param(kr.ResNeXt29_8x64d, dict(), (1, 32, 32, 3), (1, 10), marks=pytest.mark.portable),  # CIFAR's stem
    ],
)
def test_every_constructor_passes_the_backbone_harness(constructor, kwargs, input_shape, output_shape, tmp_path):
    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    run_backbone_test(constructor, kwargs, x, output_shape, tmp_path)


def test_named_constructors_are_real_functions_with_examples_and_pass_keywords_through():
    import doctest

    for constructor in kr.models.NAMED_CONSTRUCTORS:
        assert constructor.__code__.co_name == constructor.__name__  # a def, not a generated closure
        assert ">>> " in constructor.__doc__ and constructor.variant in constructor.__doc__
    model = kr.ResNeXt50(weights=None, include_top=False, block_form="split", conv_implementation="split")
    assert model.get_layer("stage1_block1").form == "split"
    assert model.get_layer("stage2_block1").conv2.implementation == "split"
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for obj in (kr.ResNeXt, kr.ResNeXt50, kr.ResNeXt29_8x64d):  # their examples run as written
        for test in finder.find(obj, globs={}):
            runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_numpy_integers_are_accepted_like_python_ints():
    model = kr.ResNeXt((np.int64(1),) * 2, np.int64(4), np.int32(4), classes=3, input_shape=(32, 32, 3))
    assert model.name == "resnext_8_4x4d" and model.output.shape == (None, 3)


def _poisoned_images(size=32):
    """Three images: one NaN pixel, one infinite pixel, and a clean one."""
    x = np.random.default_rng(0).random((3, size, size, 3)).astype("float32")
    x[0, 5, 5, 1], x[1, 7, 3, 0] = np.nan, np.inf
    return x


def _assert_only_poisoned_images_are_nan(outputs):
    for out in keras.tree.flatten(outputs):
        out = keras.ops.convert_to_numpy(out).reshape(3, -1)
        assert np.isnan(out[:2]).all() and np.isfinite(out[2]).all()


@pytest.mark.portable
@pytest.mark.parametrize("implementation, form", [("auto", "grouped"), ("native", "grouped"), ("split", "grouped"),
                                                  ("block_diagonal", "grouped"), ("auto", "split")])
@pytest.mark.parametrize("head", [dict(classes=10), dict(include_top=False, pooling="avg"),
                                  dict(include_top=False, features_only=True)])
def test_nan_or_inf_in_an_image_gives_nan_for_that_image(implementation, form, head):
    model = kr.ResNeXt(**TINY, input_shape=(32, 32, 3), conv_implementation=implementation, block_form=form, **head)
    x = _poisoned_images()
    _assert_only_poisoned_images_are_nan(model(x, training=False))
    _assert_only_poisoned_images_are_nan(model.predict(x, verbose=0))


NAN_UNDER_ONEDNN = """
import sys, keras, numpy as np
sys.path.insert(0, "tests")
import keras_resnext as kr
from helpers import TINY
from test_models import _assert_only_poisoned_images_are_nan, _poisoned_images
for implementation in ("auto", "native", "direct", "split"):
    model = kr.ResNeXt(**TINY, classes=10, input_shape=(32, 32, 3), conv_implementation=implementation)
    _assert_only_poisoned_images_are_nan(model.predict(_poisoned_images(), verbose=0))
print("ok")
"""


@pytest.mark.slow
def test_nan_survives_onednn_fused_kernels():
    # oneDNN's fused conv + bias + ReLU maps NaN to 0; TensorFlow uses it by default on AVX-512 CPUs only.
    env = dict(ENV, TF_ENABLE_ONEDNN_OPTS="1")
    result = subprocess.run([sys.executable, "-c", NAN_UNDER_ONEDNN], cwd=os.path.dirname(os.path.dirname(__file__)), env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


# keras.applications' contract, as keras' own applications_test.py checks it on ResNet50 and the rest:
# the classifier is the last layer with the activation asked for, pooled features come before it, and
# include_top=False takes any channel count, input shape or input tensor.
LAST_DIM = {constructor: 1024 if constructor.variant.startswith("resnext29") else 2048
            for constructor in kr.models.NAMED_CONSTRUCTORS}


@pytest.mark.parametrize("constructor", kr.models.NAMED_CONSTRUCTORS, ids=lambda c: c.__name__)
def test_the_classifier_is_the_last_layer_and_pooled_features_come_before_it(constructor):
    with shapes_only():
        model = constructor(weights=None, include_top=True, classifier_activation="softmax")
    head, pooled = model.layers[-1], model.layers[-2]
    assert isinstance(head, keras.layers.Dense) and head.name == "predictions"
    assert head.activation.__name__ == "softmax"
    assert head.output is model.output
    assert isinstance(pooled, keras.layers.GlobalAveragePooling2D)
    assert tuple(keras.Model(model.input, pooled.output).output.shape) == (None, LAST_DIM[constructor])


@pytest.mark.parametrize("constructor", kr.models.NAMED_CONSTRUCTORS, ids=lambda c: c.__name__)
def test_without_the_top_any_channels_shape_or_input_tensor_is_taken(constructor):
    last_dim = LAST_DIM[constructor]
    with shapes_only():
        one_channel = constructor(weights=None, include_top=False, input_shape=(None, None, 1))
        custom = constructor(weights=None, include_top=False, input_shape=(123, 123, 4))
        tensor = keras.layers.Conv2D(3, 2, strides=2)(keras.Input((200, 200, 4), name="custom_input"))
        pooled = constructor(weights=None, include_top=False, input_tensor=tensor, pooling="max")
    assert list(one_channel.outputs[0].shape) == [None, None, None, last_dim]
    assert custom.outputs[0].shape[-1] == last_dim
    assert list(pooled.outputs[0].shape) == [None, last_dim]
    assert isinstance(pooled.layers[-1], keras.layers.GlobalMaxPooling2D)


@pytest.mark.portable
def test_pooling_is_the_last_layer_and_classifier_activation_can_be_changed_in_place():
    model = kr.ResNeXt(**TINY, classes=4, input_shape=(32, 32, 3))
    features = keras.Model(model.input, model.layers[-2].output)  # the usual way to take pooled features
    assert features.output.shape == (None, 2048)
    model.layers[-1].activation = None  # the model now outputs logits
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    logits = keras.ops.convert_to_numpy(model(x))
    assert not np.allclose(logits.sum(axis=-1), 1.0)
    assert kr.ResNeXt(**TINY, include_top=False, pooling="avg", input_shape=(32, 32, 3)).layers[-1].name == "avg_pool"


def test_a_confidently_wrong_sample_still_has_a_loss_gradient():
    # Keras computes crossentropy from the logits the softmax output carries (TensorFlow backend); from
    # clipped probabilities a confidently wrong sample would give a flat ~16.1 and no gradient.
    model = kr.ResNeXt(**TINY, classes=3, input_shape=(32, 32, 3))
    head = model.get_layer("predictions")
    head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
    head.bias.assign(np.array([100.0, 0.0, -100.0], "float32"))  # certain of class 0
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32"), np.array([2, 2])
    loss = float(model.test_on_batch(x, y))
    assert loss == pytest.approx(200.0, rel=1e-3)  # the true loss, not -log(1e-7)
    model.train_on_batch(x, y)
    assert float(head.bias.numpy()[2]) > -100.0 + 0.05  # the gradient moved the true class up


@pytest.mark.portable
def test_a_resnext_keeps_its_arguments_and_is_built_again_from_them(tmp_path):
    """keras-hub's convention: the model keeps the arguments that define it, its config holds them, and they alone
    build the same model; the feature levels come from them. A config without them (a file saved before) still
    loads, its levels read from its layers."""
    import keras

    model = kr.ResNeXt((1, 2, 1), 8, 4, stem="cifar", classes=7, input_shape=(32, 32, 3), pooling="max",
                       include_preprocessing=True)
    arch = model.architecture
    assert (arch["depths"], arch["cardinality"], arch["bottleneck_width"], arch["stem"], arch["classes"]) == (
        [1, 2, 1], 8, 4, "cifar", 7)
    config = model.get_config()
    assert config["architecture"] == arch and "layers" in config
    again = kr.models.ResNeXtModel.from_config({"name": "again", "architecture": arch})
    assert [type(layer).__name__ for layer in again.layers] == [type(layer).__name__ for layer in model.layers]
    assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
    assert again.architecture == arch and sorted(again.pyramid_outputs) == sorted(model.pyramid_outputs)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.architecture == arch and loaded.feature_info == model.feature_info
    older = kr.models.ResNeXtModel.from_config({k: v for k, v in config.items() if k != "architecture"})
    assert older.architecture is None and older.feature_info == model.feature_info

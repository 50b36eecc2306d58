"""ResNeXt as a backbone: feature levels, output stride, freezing, input channels."""

import keras
import numpy as np
import pytest

import keras_resnext as kr
from helpers import FIXTURES, TINY
from keras_resnext.flops import count_macs, count_macs_config
from keras_resnext.layers import GroupedConv2D

WEIGHTS = FIXTURES / "tv_resnext_tiny.safetensors"
LEVELS = ("P1", "P2", "P3", "P4", "P5")


@pytest.fixture(scope="module")
def features_io():
    return dict(np.load(FIXTURES / "tv_resnext_tiny_features.npz"))


@pytest.mark.portable
@pytest.mark.parametrize("output_stride", [32, 16, 8])
@pytest.mark.parametrize("form", ["grouped", "split"])
def test_every_level_matches_torchvision_at_every_output_stride(features_io, output_stride, form):
    model = kr.ResNeXt(**TINY, features_only=True, output_stride=output_stride, weights=WEIGHTS, block_form=form)
    outputs = model.predict(features_io["x_nhwc"], verbose=0)
    assert sorted(outputs) == list(LEVELS)
    for key in LEVELS:
        expected = features_io[f"os{output_stride}_{'stem' if key == 'P1' else key}"]
        np.testing.assert_allclose(outputs[key], expected, atol=1e-4, rtol=0, err_msg=key)


@pytest.mark.portable
@pytest.mark.parametrize("implementation", ["native", "split", "block_diagonal"]
                         + (["direct"] if keras.backend.backend() == "tensorflow" else []))
def test_dilated_grouped_conv_is_the_same_in_every_implementation(implementation):
    x = np.random.default_rng(0).normal(size=(2, 11, 9, 16)).astype("float32")
    layer = GroupedConv2D(8, 3, groups=4, dilation_rate=2, implementation=implementation)
    reference = GroupedConv2D(8, 3, groups=1, dilation_rate=2, implementation="native")
    y = keras.ops.convert_to_numpy(layer(x))
    reference.build(x.shape)
    dense = np.zeros((3, 3, 16, 8), "float32")  # the grouped kernel as a block-diagonal dense one
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    for g in range(4):
        dense[:, :, 4 * g:4 * g + 4, 2 * g:2 * g + 2] = kernel[:, :, :, 2 * g:2 * g + 2]
    reference.kernel.assign(dense)
    assert y.shape == (2, 11, 9, 8) == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(reference(x)), atol=1e-4)


@pytest.mark.portable
def test_pyramid_outputs_and_feature_info_on_every_model(tmp_path):
    model = kr.ResNeXt(**TINY, classes=10, input_shape=(64, 64, 3))
    assert sorted(model.pyramid_outputs) == list(LEVELS)
    assert [(f["key"], f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        ("P1", 64, 2), ("P2", 256, 4), ("P3", 512, 8), ("P4", 1024, 16), ("P5", 2048, 32)]
    levels = keras.Model(model.input, model.pyramid_outputs)
    shapes = {k: tuple(v.shape) for k, v in levels(np.zeros((1, 64, 64, 3), "float32")).items()}
    assert shapes["P1"] == (1, 32, 32, 64) and shapes["P5"] == (1, 2, 2, 2048)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, kr.models.ResNeXtModel)
    assert loaded.feature_info == model.feature_info and sorted(loaded.pyramid_outputs) == list(LEVELS)
    dilated = kr.ResNeXt(**TINY, include_top=False, output_stride=8)
    assert [f["reduction"] for f in dilated.feature_info] == [2, 4, 8, 8, 8]
    cifar = kr.ResNeXt29_8x64d()
    assert [(f["key"], f["reduction"]) for f in cifar.feature_info] == [("P0", 1), ("P1", 2), ("P2", 4)]


@pytest.mark.portable
def test_features_only_selects_levels_and_survives_a_save(features_io, tmp_path):
    model = kr.ResNeXt(**TINY, features_only=True, out_indices=(2, "P5"), weights=WEIGHTS)
    assert sorted(model.output) == ["P3", "P5"]
    assert [f["key"] for f in model.feature_info] == ["P3", "P5"]
    path = tmp_path / "features.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    out = loaded.predict(features_io["x_nhwc"], verbose=0)
    np.testing.assert_allclose(out["P3"], features_io["os32_P3"], atol=1e-4)
    np.testing.assert_allclose(out["P5"], features_io["os32_P5"], atol=1e-4)
    named = kr.ResNeXt50(weights=None, features_only=True, out_indices=(1, 2, 3, 4))
    assert [f["num_chs"] for f in named.feature_info] == [256, 512, 1024, 2048]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(features_only=True, out_indices=(5,)), "indices 0 to 4 or keys P1, P2, P3, P4, P5"),
        (dict(features_only=True, out_indices=(1, 1)), "at most once"),
        (dict(features_only=True, out_indices=("P6",)), "not a level"),
        (dict(out_indices=(1,)), "needs features_only=True"),
        (dict(output_stride=4), "`output_stride` must be one of \\(8, 16, 32\\)"),
        (dict(freeze_stages=5), "`freeze_stages` must be None"),
        (dict(freeze_stages=-1), "`freeze_stages` must be None"),
        (dict(norm="group_norm"), "`norm` must be one of"),
    ],
)
def test_bad_backbone_arguments_say_what_is_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kr.ResNeXt(**TINY, include_top=False, **kwargs)


def test_a_cifar_stem_has_no_p5():
    with pytest.raises(ValueError, match="keys P0, P1, P2"):
        kr.ResNeXt29_8x64d(features_only=True, out_indices=("P5",))


@pytest.mark.portable
def test_frozen_stages_and_frozen_batchnorm_do_not_move_in_fit():
    model = kr.ResNeXt(**TINY, classes=4, input_shape=(64, 64, 3), freeze_stages=2, norm="frozen_bn")
    x = np.random.default_rng(0).normal(size=(4, 64, 64, 3)).astype("float32")
    y = np.arange(4)
    before = {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    moved = {path for path in before if not np.array_equal(before[path], after[path])}
    frozen = [p for p in before if p.startswith(("stem_", "stage1_", "stage2_"))]
    assert frozen and not moved & set(frozen)  # the stem and stages 1-2: nothing moved
    statistics = [p for p in before if "moving_" in p]
    assert statistics and not moved & set(statistics)  # frozen BN: no statistic moved anywhere
    gammas = [p for p in before if p.endswith("gamma")]
    assert not moved & set(gammas)
    assert any(p.startswith("stage4_") and p.endswith("kernel") for p in moved)  # the rest trained
    assert "predictions/kernel" in moved


@pytest.mark.portable
def test_batchnorm_statistics_move_without_freezing():
    model = kr.ResNeXt(**TINY, classes=4, input_shape=(64, 64, 3), freeze_stages=0)
    assert not model.get_layer("stem_conv").trainable and model.get_layer("stage1_block1").trainable
    x = np.random.default_rng(0).normal(size=(4, 64, 64, 3)).astype("float32")
    mean = keras.ops.convert_to_numpy(model.get_layer("stage1_block1").bn1.moving_mean).copy()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(4), epochs=1, verbose=0)
    assert not np.array_equal(mean, keras.ops.convert_to_numpy(model.get_layer("stage1_block1").bn1.moving_mean))


@pytest.mark.portable
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_pretrained_weights_adapt_to_any_input_channel_count(features_io, channels):
    rgb = kr.ResNeXt(**TINY, include_top=False, weights=WEIGHTS)
    model = kr.ResNeXt(**TINY, include_top=False, weights=WEIGHTS, input_shape=(None, None, channels))
    gray = features_io["x_nhwc"][..., :1]
    if channels == 1:  # a gray image gives what the RGB model gives on it replicated
        np.testing.assert_allclose(model.predict(gray, verbose=0),
                                   rgb.predict(np.repeat(gray, 3, axis=-1), verbose=0), atol=1e-4)
    kernel = keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel)
    rgb_kernel = keras.ops.convert_to_numpy(rgb.get_layer("stem_conv").kernel)
    assert kernel.shape[2] == channels
    if channels == 1:
        np.testing.assert_allclose(kernel[:, :, 0], rgb_kernel.sum(axis=2), atol=1e-5)
    else:  # RGB repeated cyclically, scaled by 3 / channels (timm's adapt_input_conv)
        expected = np.concatenate([rgb_kernel] * 2, axis=2)[:, :, :channels] * 3 / channels
        np.testing.assert_allclose(kernel, expected, atol=1e-6)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_mac_counts_stay_exact_when_dilated(output_stride):
    model = kr.ResNeXt50(weights=None, output_stride=output_stride, input_shape=(224, 224, 3))
    assert count_macs(model) == count_macs_config((3, 4, 6, 3), 32, 4, output_stride=output_stride)
    assert count_macs(model) > count_macs(kr.ResNeXt50(weights=None))  # later stages run at a finer grid


def test_onnx_keeps_dilated_grouped_convs_as_single_nodes(tmp_path, features_io):
    import onnxruntime as ort

    from keras_resnext.export import to_onnx

    model = kr.ResNeXt(**TINY, include_top=False, output_stride=8, weights=WEIGHTS)
    proto = to_onnx(model, tmp_path / "os8.onnx")
    grouped = [n for n in proto.graph.node if n.op_type == "Conv"
               and any(a.name == "group" and a.i == 8 for a in n.attribute)]
    assert len(grouped) == 4
    dilations = sorted(next(list(a.ints) for a in n.attribute if a.name == "dilations") for n in grouped)
    assert dilations == [[1, 1], [1, 1], [1, 1], [2, 2]]  # os8 with one block a stage: 1, 1, 1, 2
    session = ort.InferenceSession(str(tmp_path / "os8.onnx"), providers=["CPUExecutionProvider"])
    (features,) = session.run(None, {"images": features_io["x_nhwc"]})
    np.testing.assert_allclose(features, features_io["os8_P5"], atol=1e-4)

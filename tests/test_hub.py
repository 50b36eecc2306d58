"""keras-hub integration: ResNeXtBackbone inside keras-hub's own tasks."""

import keras
import numpy as np
import pytest

from helpers import FIXTURES, TINY

keras_hub = pytest.importorskip("keras_hub")  # installed by the test extras; optional for users

from keras_resnext.hub import ResNeXtBackbone  # noqa: E402

pytestmark = pytest.mark.portable
WEIGHTS = FIXTURES / "tv_resnext_tiny.safetensors"


def tiny_backbone(**kwargs):
    return ResNeXtBackbone(**TINY, **kwargs)


def test_backbone_is_a_feature_pyramid_backbone_whose_config_is_its_hyperparameters(tmp_path):
    backbone = tiny_backbone(image_shape=(64, 64, 3))
    assert isinstance(backbone, keras_hub.models.FeaturePyramidBackbone)
    assert sorted(backbone.pyramid_outputs) == ["P1", "P2", "P3", "P4", "P5"]
    config = backbone.get_config()
    assert config["depths"] == [1, 1, 1, 1] and config["cardinality"] == 8 and config["output_stride"] == 32
    rebuilt = ResNeXtBackbone.from_config(config)
    assert rebuilt.count_params() == backbone.count_params()
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype("float32")
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(backbone(x)),
                               atol=1e-5)


def test_pretrained_weights_reach_the_backbone_like_the_model(tiny_io):
    import keras_resnext as kr
    from keras_resnext.weights import load_weights

    backbone = tiny_backbone()
    load_weights(backbone, WEIGHTS)
    reference = kr.ResNeXt(**TINY, include_top=False, pooling="avg", weights=WEIGHTS)
    pooled = keras.ops.mean(backbone(tiny_io["x_nhwc_64"]), axis=(1, 2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pooled), reference.predict(tiny_io["x_nhwc_64"], verbose=0),
                               atol=1e-4)
    with pytest.raises(ValueError, match="Unknown preset 'resnext49'"):
        ResNeXtBackbone.from_preset("resnext49")


def test_image_classifier_fits_predicts_and_saves(tmp_path):
    task = keras_hub.models.ImageClassifier(backbone=tiny_backbone(image_shape=(64, 64, 3)), num_classes=3)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    task.compile(optimizer=keras.optimizers.SGD(0.01))
    assert np.isfinite(task.fit(x, np.array([0, 2]), epochs=1, verbose=0).history["loss"][0])
    predictions = task.predict(x, verbose=0)
    assert predictions.shape == (2, 3)
    task.save(tmp_path / "classifier.keras")
    loaded = keras.models.load_model(tmp_path / "classifier.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), predictions, atol=1e-5)


def test_retinanet_detector_fits_predicts_and_saves(tmp_path):
    encoder = tiny_backbone(image_shape=(128, 128, 3))
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=5, use_p5=False,
                                                  image_shape=(128, 128, 3))
    task = keras_hub.models.RetinaNetObjectDetector(backbone=backbone, num_classes=4, bounding_box_format="yxyx")
    x = np.random.default_rng(0).uniform(size=(2, 128, 128, 3)).astype("float32")
    y = {"boxes": np.array([[[10, 10, 60, 70], [30, 40, 100, 120]]] * 2, "float32"),
         "labels": np.array([[1, 3]] * 2, "int32")}
    task.compile(optimizer=keras.optimizers.SGD(0.001))
    assert np.isfinite(task.fit(x, y, epochs=1, batch_size=2, verbose=0).history["loss"][0])
    detections = task.predict(x, verbose=0)
    assert {"boxes", "confidence", "num_detections"} <= set(detections)
    assert detections["boxes"].shape[0] == 2
    task.save(tmp_path / "detector.keras")
    loaded = keras.models.load_model(tmp_path / "detector.keras")
    assert isinstance(loaded.backbone.image_encoder, ResNeXtBackbone)


def test_deeplab_segmenter_on_an_output_stride_16_backbone_fits_predicts_and_saves(tmp_path):
    encoder = tiny_backbone(output_stride=16, image_shape=(64, 64, 3))
    backbone = keras_hub.models.DeepLabV3Backbone(image_encoder=encoder, spatial_pyramid_pooling_key="P4",
                                                  upsampling_size=4, dilation_rates=[6, 12, 18],
                                                  low_level_feature_key="P2", image_shape=(64, 64, 3))
    task = keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=3)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, (2, 64, 64, 1))
    task.compile(optimizer=keras.optimizers.SGD(0.01),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert np.isfinite(task.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    masks = task.predict(x, verbose=0)
    assert masks.shape == (2, 64, 64, 3)
    task.save(tmp_path / "segmenter.keras")
    loaded = keras.models.load_model(tmp_path / "segmenter.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), masks, atol=1e-4)


def test_a_task_given_levels_the_backbone_lacks_is_refused():
    encoder = ResNeXtBackbone(depths=(1, 1, 1), cardinality=8, bottleneck_width=4)  # P1..P4: no P5
    with pytest.raises(ValueError, match="maximum level"):
        keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=7, use_p5=False)

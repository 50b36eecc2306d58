"""keras-hub's preset workflow on ResNeXt: registry tags and preset folders, task classes, keras-hub's own harness."""

import os
import stat

import keras
import numpy as np
import pytest

from helpers import FIXTURES, TINY, TINY_ENTRY

keras_hub = pytest.importorskip("keras_hub")  # installed by the test extras; optional for users

import keras_resnext as kr  # noqa: E402
from keras_resnext.hub import (  # noqa: E402
    ResNeXtBackbone,
    ResNeXtImageClassifier,
    ResNeXtImageClassifierPreprocessor,
    ResNeXtImageConverter,
)

TAG = "resnext_tiny.test_in1k"  # the tiny torchvision fixture, served by the `tiny_registry` loopback Hub


def raw_images(n=4, height=150, width=200, seed=0):
    """Raw uint8 pictures of another size and aspect than the model's input, as a user has them."""
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype="uint8")


def tiny_classifier(num_classes=3, image_size=(64, 64)):
    converter = ResNeXtImageConverter(image_size=image_size, crop_pct=0.875, scale=1 / 127.5, offset=-1.0)
    return ResNeXtImageClassifier(backbone=ResNeXtBackbone(**TINY), num_classes=num_classes,
                                  preprocessor=ResNeXtImageClassifierPreprocessor(converter))


def predict(model, x):
    return keras.ops.convert_to_numpy(model.predict(x, verbose=0))


@pytest.mark.portable
def test_a_registry_tag_classifier_takes_raw_images_and_agrees_with_the_model_and_its_eval_transform(tiny_registry):
    classifier = ResNeXtImageClassifier.from_preset(TAG)
    # The same checkpoint through the package's own path: the model and the tag's eval transform.
    reference = kr.ResNeXt(**TINY, classes=10, weights=FIXTURES / "tv_resnext_tiny.safetensors",
                           classifier_activation=None)
    images = raw_images()
    transform = kr.weights.eval_transform("resnext_tiny", "test_in1k")
    expected = reference.predict(transform(images.astype("float32")), verbose=0)
    logits = predict(classifier, images)
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    np.testing.assert_array_equal(np.argsort(-logits)[:, :5], np.argsort(-expected)[:, :5])
    assert classifier.pretrained_cfg["tag"] == "test_in1k" and classifier.backbone.pretrained_cfg["tag"] == "test_in1k"
    assert tiny_registry.gets == {"timm/resnext_tiny.test_in1k/model.safetensors": 1}  # one download for both parts


def test_the_registry_converter_is_the_eval_transform_exactly(tiny_registry):
    converter = ResNeXtImageConverter.from_preset(TAG)
    size = TINY_ENTRY["test_input_size"]
    assert converter.image_size == (size, size) and converter.crop_pct == TINY_ENTRY["test_crop_pct"] < 1
    transform = kr.weights.eval_transform("resnext_tiny", "test_in1k")
    for images in (raw_images(2, 300, 400), raw_images(2, 231, 231)):
        ours = keras.ops.convert_to_numpy(converter(images))
        np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(transform(images.astype("float32"))), atol=1e-5)
    preprocessor = ResNeXtImageClassifierPreprocessor.from_preset(TAG)
    assert {**preprocessor.image_converter.get_config(), "name": None} == {**converter.get_config(), "name": None}
    assert set(ResNeXtImageClassifier.presets) == {TAG} == set(ResNeXtBackbone.presets)
    assert tiny_registry.gets == {}  # preprocessing alone downloads no weights


def test_a_backbone_preset_folder_round_trips_through_both_from_presets(tmp_path, tiny_registry):
    backbone = ResNeXtBackbone.from_preset(TAG)
    backbone.save_to_preset(tmp_path / "preset")
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32"))
    for loaded in (ResNeXtBackbone.from_preset(tmp_path / "preset"),
                   keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))):
        assert type(loaded) is ResNeXtBackbone
        np.testing.assert_array_equal(predict(loaded, x), predict(backbone, x))
    fresh = ResNeXtBackbone.from_preset(str(tmp_path / "preset"), load_weights=False)
    assert not np.allclose(predict(fresh, x), predict(backbone, x))
    assert ResNeXtBackbone.from_preset(str(tmp_path / "preset"), output_stride=16).architecture["output_stride"] == 16


def test_a_classifier_fine_tuned_on_new_classes_round_trips_with_its_preprocessing(tmp_path, tiny_registry):
    classifier = ResNeXtImageClassifier.from_preset(TAG, num_classes=3)  # new head, converted trunk
    assert classifier.output_dense.kernel.shape == (2048, 3) and not hasattr(classifier, "pretrained_cfg")
    images, labels = raw_images(8, 90, 120), np.arange(8) % 3
    classifier.compile(optimizer=keras.optimizers.SGD(0.01))
    history = classifier.fit(images, labels, batch_size=4, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    old_umask = os.umask(0o022)
    try:
        classifier.save_to_preset(tmp_path / "fine_tuned")
    finally:
        os.umask(old_umask)
    names = sorted(os.listdir(tmp_path / "fine_tuned"))
    assert {"config.json", "task.json", "task.weights.h5", "model.weights.h5", "preprocessor.json",
            "image_converter.json", "metadata.json"} <= set(names)
    assert all(stat.S_IMODE(os.stat(tmp_path / "fine_tuned" / n).st_mode) == 0o644 for n in names)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]  # written whole, then renamed
    loaded = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "fine_tuned"))
    assert type(loaded) is ResNeXtImageClassifier
    assert isinstance(loaded.preprocessor.image_converter, ResNeXtImageConverter)
    np.testing.assert_array_equal(predict(loaded, images), predict(classifier, images))
    # keras-hub's rule: num_classes asks for a new head on the saved trunk.
    assert ResNeXtImageClassifier.from_preset(str(tmp_path / "fine_tuned"), num_classes=5).output_dense.units == 5


def test_a_classifier_preset_round_trips_and_a_second_save_replaces_the_first(tmp_path):
    classifier = tiny_classifier()
    images = raw_images()
    classifier.save_to_preset(tmp_path / "p")
    (tmp_path / "p" / "stale.txt").write_text("from an older save")
    classifier.save_to_preset(tmp_path / "p")
    assert not (tmp_path / "p" / "stale.txt").exists()
    for loaded in (ResNeXtImageClassifier.from_preset(str(tmp_path / "p")),
                   keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "p"))):
        assert type(loaded) is ResNeXtImageClassifier
        np.testing.assert_array_equal(predict(loaded, images), predict(classifier, images))
    converter = keras_hub.layers.ImageConverter.from_preset(str(tmp_path / "p"))
    assert type(converter) is ResNeXtImageConverter and converter.crop_pct == 0.875


def test_retinanet_and_deeplab_on_the_backbone_round_trip_through_preset_folders(tmp_path):
    encoder = ResNeXtBackbone(**TINY, image_shape=(64, 64, 3))
    retinanet = keras_hub.models.RetinaNetObjectDetector(
        backbone=keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=5, use_p5=False,
                                                    image_shape=(64, 64, 3)),
        num_classes=4, bounding_box_format="yxyx")
    deeplab = keras_hub.models.DeepLabV3ImageSegmenter(
        backbone=keras_hub.models.DeepLabV3Backbone(
            image_encoder=ResNeXtBackbone(**TINY, output_stride=16, image_shape=(64, 64, 3)),
            spatial_pyramid_pooling_key="P4", upsampling_size=4, dilation_rates=[6, 12, 18],
            low_level_feature_key="P2", image_shape=(64, 64, 3)),
        num_classes=3)
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype("float32"))
    for task, base in ((retinanet, keras_hub.models.ObjectDetector), (deeplab, keras_hub.models.ImageSegmenter)):
        task.save_to_preset(str(tmp_path / task.name))
        loaded = base.from_preset(str(tmp_path / task.name))
        assert type(loaded) is type(task) and isinstance(loaded.backbone.image_encoder, ResNeXtBackbone)
        expected, got = (keras.tree.flatten(t.predict(x, verbose=0)) for t in (task, loaded))
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, atol=1e-5)


def test_bad_presets_and_converter_arguments_say_what_is_accepted(tmp_path):
    for cls in (ResNeXtBackbone, ResNeXtImageClassifier, ResNeXtImageConverter, ResNeXtImageClassifierPreprocessor):
        with pytest.raises(ValueError, match=r"Unknown preset 'resnext49'.*preset folder.*hf://.*resnext50_32x4d"):
            cls.from_preset("resnext49")
    with pytest.raises(ValueError, match="Unknown weights 'nope' for resnext50_32x4d; available tags: tv2_in1k"):
        ResNeXtImageClassifier.from_preset("resnext50_32x4d.nope")
    with pytest.raises(ValueError, match=r"crop_pct must be a number in \(0, 1\], got 1.5"):
        ResNeXtImageConverter(image_size=(8, 8), crop_pct=1.5)
    with pytest.raises(ValueError, match="crops images only"):
        ResNeXtImageConverter(image_size=(8, 8), crop_pct=0.5)({"images": np.zeros((1, 16, 16, 3)),
                                                                "bounding_boxes": {"boxes": np.zeros((1, 1, 4)),
                                                                                   "labels": np.zeros((1, 1))}})


# keras-hub's own harness, run as keras-hub runs it on its ResNet (it imports `grain`, in the test extras).
# The module, not the class, is imported: pytest would collect a TestCase class found in this module.
from keras_hub.src.tests import test_case  # noqa: E402


@pytest.mark.portable
class ResNeXtOnKerasHubsHarnessTest(test_case.TestCase):
    test_session = None  # tf.test.TestCase's deprecated context manager, not a test: pytest would list it skipped

    def tearDown(self):
        keras.config.set_image_data_format("channels_last")  # the harness leaves its own setting on failure
        super().tearDown()

    def setUp(self):
        self.images = keras.ops.convert_to_tensor(
            np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32"))
        self.backbone_kwargs = dict(**TINY, image_shape=(64, 64, 3))

    def test_backbone_basics(self):
        self.run_vision_backbone_test(
            cls=ResNeXtBackbone, init_kwargs=self.backbone_kwargs, input_data=self.images,
            expected_output_shape=(2, 2, 2, 2048), expected_pyramid_output_keys=["P1", "P2", "P3", "P4", "P5"],
            expected_pyramid_image_sizes=[(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)],
            # keras_resnext models are channels_last only (a channels_first build is refused with a
            # ValueError); keras-hub skips this check on TensorFlow's CPU too, for the same reason.
            run_data_format_check=False,
        )

    def test_classifier_basics(self):
        backbone = ResNeXtBackbone(**self.backbone_kwargs)
        preprocessor = ResNeXtImageClassifierPreprocessor(ResNeXtImageConverter(image_size=(64, 64), scale=1 / 255))
        self.run_task_test(
            cls=ResNeXtImageClassifier,
            init_kwargs=dict(backbone=backbone, num_classes=2, preprocessor=preprocessor),
            train_data=(self.images, np.array([0, 1])), expected_output_shape=(2, 2),
        )

    def test_saved_models(self):
        self.run_model_saving_test(cls=ResNeXtBackbone, init_kwargs=self.backbone_kwargs, input_data=self.images)
        self.run_model_saving_test(
            cls=ResNeXtImageClassifier, input_data=self.images,
            init_kwargs=dict(backbone=ResNeXtBackbone(**self.backbone_kwargs), num_classes=2),
        )


def test_the_data_pipeline_the_eval_transform_and_the_converter_crop_alike(tiny_registry, tmp_path):
    """One evaluation crop (`kr.evaluation_crop.EvaluationCrop`) behind the three: an image folder's test split, a
    tag's `eval_transform` and its keras-hub converter give the same arrays on the same pictures (the crop is one
    layer; they differ only by how each normalises, float32 rounding)."""
    from PIL import Image

    from keras_resnext import data

    pictures = {"wide": raw_images(1, 150, 233, seed=1)[0], "tall": raw_images(1, 241, 170, seed=2)[0],
                "square": raw_images(1, 231, 231, seed=3)[0]}
    for split in ("train", "test"):
        for name, picture in pictures.items():
            os.makedirs(tmp_path / split / name, exist_ok=True)
            Image.fromarray(picture).save(tmp_path / split / name / "0.png")  # lossless: the same pixels back
    size, crop_pct = TINY_ENTRY["test_input_size"], TINY_ENTRY["test_crop_pct"]
    assert TINY_ENTRY["interpolation"] == "bilinear" and crop_pct < 1
    test, info = data.load_dataset(f"folder:{tmp_path}", "test", batch_size=3, image_size=size, crop_pct=crop_pct)
    images, labels = next(iter(test))
    pipeline = {info.class_names[label]: image for label, image in zip(labels.numpy(), images.numpy())}
    transform = kr.weights.eval_transform("resnext_tiny", "test_in1k")
    converter = ResNeXtImageConverter.from_preset(TAG)
    for name, picture in pictures.items():
        expected = keras.ops.convert_to_numpy(transform(picture[None].astype("float32")))[0]
        assert expected.shape == (size, size, 3)
        np.testing.assert_allclose(pipeline[name], expected, rtol=0, atol=2e-5)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(converter(picture[None]))[0], expected, rtol=0,
                                   atol=2e-5)

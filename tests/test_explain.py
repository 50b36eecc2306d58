"""Grad-CAM: a known answer (a trained model looks at the patch that decides the class), a hand-made
reference to 1e-5, every kind of model the package builds, clear errors, and `predict --explain`."""

import warnings

import keras
import numpy as np
import pytest

import keras_resnext as kr
from helpers import TINY, command
from keras_resnext import explain

PATCH = 6  # side of the coloured patch that decides the class


def patch_images(n, seed, size=32):
    """Grey noise with one red, green or blue patch at a random place; the colour is the class."""
    rng = np.random.default_rng(seed)
    images = np.repeat(rng.uniform(0.2, 0.6, (n, size, size, 1)), 3, axis=-1).astype("float32")
    labels = rng.integers(0, 3, n)
    corners = rng.integers(0, size - PATCH + 1, (n, 2))
    for image, label, (top, left) in zip(images, labels, corners):
        image[top:top + PATCH, left:left + PATCH] = 0.1
        image[top:top + PATCH, left:left + PATCH, label] = 0.9
    return images, labels, corners


@pytest.fixture(scope="module")
def patch_model():
    """Two stages: P2 at stride 4 (8x8 for 32x32 images) and P3, the deepest, at stride 8."""
    model = kr.ResNeXt((1, 1), 4, 4, classes=3, input_shape=(32, 32, 3))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y, _ = patch_images(900, seed=1)
    model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    return model


def test_the_heatmaps_peak_falls_inside_the_patch_that_decides_the_class(patch_model):
    x, y, corners = patch_images(100, seed=2)
    assert np.mean(np.argmax(patch_model.predict(x, verbose=0), axis=1) == y) >= 0.95
    heatmaps = explain.gradcam(patch_model, x, level="P2")
    assert heatmaps.shape == (100, 32, 32) and heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    peaks = [np.unravel_index(np.argmax(h), h.shape) for h in heatmaps]
    inside = [top <= r < top + PATCH and left <= c < left + PATCH for (r, c), (top, left) in zip(peaks, corners)]
    assert np.mean(inside) >= 0.8  # chance: the patch's share of the image, 36 / 1024


@pytest.mark.portable
def test_at_the_deepest_level_the_map_is_the_classifiers_weights_over_the_features():
    # After P5 come only the average pooling and the classifier, so the gradient of a logit is
    # W[:, c] / (h * w) everywhere: Grad-CAM in closed form, on any backend.
    model = kr.ResNeXt(**TINY, classes=5, input_shape=(64, 64, 3))
    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    features = keras.ops.convert_to_numpy(keras.Model(model.input, model.pyramid_outputs["P5"])(x))
    kernel = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)
    top = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    cam = np.maximum(np.einsum("nhwk,kn->nhw", features, kernel[:, top]), 0)
    cam = keras.ops.convert_to_numpy(keras.ops.image.resize(cam[..., None], (64, 64), interpolation="bilinear"))[..., 0]
    cam /= cam.reshape(2, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(explain.gradcam(model, x), cam, atol=1e-5)


def test_a_shallower_level_equals_a_gradient_tape_by_hand(patch_model):
    import tensorflow as tf

    x, _, _ = patch_images(4, seed=3)
    head = patch_model.get_layer("predictions")
    both = keras.Model(patch_model.input, [patch_model.pyramid_outputs["P2"], head.input])
    classes = np.array([0, 1, 2, 1])
    with tf.GradientTape() as tape:
        level, pooled = both(x, training=False)  # P2, then the deepest stage, pooling and the head
        logits = tf.matmul(pooled, head.kernel) + head.bias  # the score before softmax
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    grads = tape.gradient(score, level).numpy()
    cam = tf.nn.relu(tf.reduce_sum(grads.mean(axis=(1, 2), keepdims=True) * level, axis=-1))
    cam = tf.image.resize(cam[..., None], (32, 32), method="bilinear")[..., 0].numpy()
    peak = cam.reshape(4, -1).max(axis=1)[:, None, None]
    assert (peak > 0).all()
    np.testing.assert_allclose(explain.gradcam(patch_model, x, class_index=list(classes), level="P2"), cam / peak,
                               atol=1e-5)


@pytest.mark.portable
@pytest.mark.parametrize("kwargs, shape", [
    (dict(depths=(1, 1, 1), cardinality=8, bottleneck_width=4, stem="cifar"), (32, 32, 3)),  # the CIFAR stem
    (dict(TINY, output_stride=16), (64, 64, 3)),
    (dict(TINY, output_stride=8, block_form="split"), (64, 64, 3)),
], ids=["cifar", "stride16", "stride8-split"])
def test_every_kind_of_model_is_explained(kwargs, shape):
    model = kr.ResNeXt(**kwargs, classes=4, input_shape=shape)
    x = np.random.default_rng(0).random((2, *shape)).astype("float32")
    heatmaps = explain.gradcam(model, x)
    assert heatmaps.shape == (2, *shape[:2]) and np.isfinite(heatmaps).all() and heatmaps.max() == 1.0


def test_bfloat16_inference_models_and_bad_input():
    model = kr.ResNeXt(**TINY, classes=5, input_shape=(64, 64, 3))
    x = np.random.default_rng(0).random((3, 64, 64, 3)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 is emulated on a CPU without it: slow, still correct
        fast = kr.inference_model(model, "bfloat16")
    assert np.corrcoef(explain.gradcam(fast, x).ravel(), explain.gradcam(model, x).ravel())[0, 1] > 0.9
    x[1, 4, 4, 2] = np.inf
    heatmaps = explain.gradcam(model, x)
    assert np.isnan(heatmaps[1]).all() and np.isfinite(heatmaps[[0, 2]]).all()
    for kwargs, message in [(dict(level="P7"), "Unknown feature level 'P7'; this model has P1, P2, P3, P4, P5"),
                            (dict(class_index=5), "out of range: this model has 5 classes"),
                            (dict(class_index=[0, 1]), "a list of 3 ints")]:
        with pytest.raises(ValueError, match=message):
            explain.gradcam(model, x, **kwargs)
    headless = kr.ResNeXt(**TINY, include_top=False, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="needs a keras_resnext classifier"):
        explain.gradcam(headless, x)
    with pytest.raises(ValueError, match="a batch of images"):
        explain.gradcam(model, x[0])


@pytest.mark.portable
def test_overlay_is_the_picture_with_the_heatmap_over_it():
    image = np.full((8, 8, 3), 128, "uint8")
    heatmap = np.zeros((4, 4), "float32")
    heatmap[0, 0] = 1.0
    picture = explain.overlay(image, heatmap)
    assert picture.shape == (8, 8, 3) and picture.dtype == np.uint8
    assert not np.array_equal(picture[0, 0], picture[7, 7])  # hot and cold parts differ
    assert np.array_equal(explain.overlay(image, np.full((8, 8), np.nan))[3, 3], image[3, 3])  # NaN: no colour
    with pytest.raises(ValueError, match="one image"):
        explain.overlay(image[None], heatmap)


@pytest.mark.slow
def test_predict_explain_writes_one_readable_overlay_per_image(main_job, tmp_path):
    from keras_resnext import data

    images, _ = next(iter(data.load_dataset("digits", "test", batch_size=2)[0]))
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(keras.ops.convert_to_numpy(images)):
        keras.utils.save_img(folder / f"digit{i}.png", np.clip(image * 40 + 120, 0, 255))  # any picture will do
    result = command("predict", str(folder), "--model-file", str(main_job / "model.keras"), "--explain",
                     str(tmp_path / "why"), "--csv", str(tmp_path / "p.csv"))
    assert result.returncode == 0, result.stderr[-3000:]
    for i in range(2):
        png = tmp_path / "why" / f"digit{i}.gradcam.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert keras.utils.img_to_array(keras.utils.load_img(png)).std() > 0

"""The recipes' augmentations against their references' formulas."""

import numpy as np
import pytest
import tensorflow as tf

from keras_resnext import augment

# fb.resnet.torch, datasets/imagenet.lua and datasets/transforms.lua, written out again here.
EIGVAL = np.array([0.2175, 0.0188, 0.0045])
EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])


def _lua_grayscale(img):
    """transforms.lua's grayscale(dst, img): every channel 0.299 R + 0.587 G + 0.114 B; img is CHW in [0, 1]."""
    gray = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    return np.stack([gray, gray, gray])


def _lua_blend(img1, img2, alpha):
    return img1 * alpha + (1 - alpha) * img2


def _lua_color_jitter_then_lighting(img, factors, order, alpha):
    """ColorJitter{0.4, 0.4, 0.4} (RandomOrder over Brightness, Contrast, Saturation) then Lighting(0.1), for
    the draws given: factors[k] = 1 + uniform(-0.4, 0.4) of transform k, order (0-based), alpha ~ N(0, 0.1)."""
    steps = [
        lambda x, a: _lua_blend(x, np.zeros_like(x), a),  # Brightness
        lambda x, a: _lua_blend(x, np.full_like(x, _lua_grayscale(x)[0].mean()), a),  # Contrast
        lambda x, a: _lua_blend(x, _lua_grayscale(x), a),  # Saturation
    ]
    for k in order:
        img = steps[k](img, factors[k])
    rgb = (EIGVEC * alpha.reshape(1, 3) * EIGVAL.reshape(1, 3)).sum(1)
    return img + rgb.reshape(3, 1, 1)


@pytest.mark.parametrize("seed", range(12))
def test_the_papers_color_jitter_and_lighting_are_fb_resnet_torchs(seed):
    image = np.random.default_rng(seed).uniform(0, 255, (20, 30, 3)).astype("float32")
    seed = tf.constant([seed, 7], tf.int64)
    factors, order = (t.numpy() for t in augment.jitter_draws(seed))
    alpha = augment.lighting_draws(seed).numpy()
    assert sorted(order) == [0, 1, 2] and np.all(np.abs(factors - 1) <= 0.4) and np.abs(alpha).max() < 1
    # The reference on [0, 1] CHW images; the package on [0, 255] HWC.
    expected = 255 * _lua_color_jitter_then_lighting(image.transpose(2, 0, 1) / 255, factors, order, alpha)
    np.testing.assert_allclose(augment.paper_color(tf.constant(image), seed), expected.transpose(1, 2, 0),
                               rtol=0, atol=2e-3)
    jittered = augment.color_jitter(tf.constant(image), seed)
    np.testing.assert_allclose(augment.lighting(jittered, seed), expected.transpose(1, 2, 0), rtol=0, atol=2e-3)


def test_the_uint8_colour_is_the_float_colour_clipped_and_rounded():
    """The uint8 pipeline's image, made in the colour's own pass: the float result clipped to [0, 255] and rounded
    (a rounding tie may fall either way: the pass multiplies and adds in another order)."""
    rng = np.random.default_rng(0)
    for i in range(8):
        image = tf.constant(rng.uniform(0, 255, (24, 32, 3)).astype("float32"))
        seed = tf.constant([i, 5], tf.int64)
        pixels = augment.paper_color(image, seed, "uint8")
        expected = np.round(np.clip(augment.paper_color(image, seed).numpy(), 0, 255))
        assert pixels.dtype == tf.uint8 and pixels.shape == image.shape
        assert np.abs(pixels.numpy().astype(int) - expected).max() <= 1
        assert np.mean(pixels.numpy() != expected) < 1e-3


def test_a_batch_is_coloured_as_each_of_its_images_alone():
    """The pipeline colours a batch in one call (`paper_color_batch`, each image with its own draws): what
    `paper_color` makes of each image with its seed, float32 and uint8 (bit for bit on the AVX-512 EPYC; compiled
    for another shape, a CPU may fuse a multiply and an add elsewhere: a rounding, and a tie of uint8's)."""
    rng = np.random.default_rng(1)
    images = tf.constant(rng.uniform(0, 255, (5, 24, 32, 3)).astype("float32"))
    seeds = [tf.constant([i, 9], tf.int64) for i in range(5)]
    draws = [tf.stack(parts) for parts in zip(*(augment.paper_color_draws(x, s) for x, s in zip(images, seeds)))]
    for dtype in ("float32", "uint8"):
        expected = np.stack([augment.paper_color(x, s, dtype).numpy() for x, s in zip(images, seeds)])
        batch = augment.paper_color_batch(images, draws, dtype).numpy()
        assert batch.dtype == expected.dtype
        np.testing.assert_allclose(batch.astype("float32"), expected, rtol=0, atol=1 if dtype == "uint8" else 1e-3)
        assert np.mean(batch != expected) < 1e-3


def test_the_draws_are_spread_as_the_reference_draws_them():
    """Factors uniform in [0.6, 1.4], every order equally likely, alpha N(0, 0.1): over 3,000 seeds."""
    draws = [augment.jitter_draws(tf.constant([i, 0], tf.int64)) for i in range(3000)]
    factors = np.array([f.numpy() for f, _ in draws])
    orders = [tuple(o.numpy()) for _, o in draws]
    alphas = np.array([augment.lighting_draws(tf.constant([i, 0], tf.int64)).numpy() for i in range(3000)])
    assert factors.min() >= 0.6 and factors.max() <= 1.4 and np.abs(factors.mean(0) - 1).max() < 0.02
    assert np.abs(factors.std(0) - 0.8 / np.sqrt(12)).max() < 0.01
    counts = np.array([orders.count(o) for o in set(orders)])
    assert len(counts) == 6 and np.abs(counts / 3000 - 1 / 6).max() < 0.025
    assert np.abs(alphas.mean(0)).max() < 0.008 and np.abs(alphas.std(0) - 0.1).max() < 0.005


@pytest.mark.portable
def test_the_colour_on_the_device_is_the_hosts_for_the_same_draws():
    """`PaperColorAugmentation` (a Keras layer, any backend) computes what the host pipeline's `paper_color` does for
    each image's draws; outside training it passes the pixels through."""
    import keras

    from keras_resnext.color_augmentation import PaperColorAugmentation, jitter_and_light

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 20, 30, 3)).astype("float32")
    seeds = [tf.constant([i, 3], tf.int64) for i in range(6)]
    factors, order = (np.stack([d[k].numpy() for d in map(augment.jitter_draws, seeds)]) for k in (0, 1))
    alpha = np.stack([augment.lighting_draws(s).numpy() for s in seeds])
    expected = np.stack([augment.paper_color(tf.constant(x), s).numpy() for x, s in zip(images, seeds)])
    one_hot = np.eye(3, dtype="float32")[order]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(jitter_and_light(images, factors, one_hot, alpha)),
                               expected, rtol=0, atol=2e-3)
    layer = PaperColorAugmentation(seed=1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images.astype("uint8"))), images)
    assert not np.allclose(keras.ops.convert_to_numpy(layer(images, training=True)), images)


@pytest.mark.portable
def test_the_colour_on_the_device_draws_as_the_reference_draws():
    """The layer's draws over 3,000 images: factors uniform in [0.6, 1.4], every order equally likely, alpha N(0, 0.1)."""
    import keras

    from keras_resnext.color_augmentation import PaperColorAugmentation

    factors, order, alpha = (keras.ops.convert_to_numpy(t) for t in PaperColorAugmentation(seed=2).draws(3000))
    assert factors.min() >= 0.6 and factors.max() <= 1.4 and np.abs(factors.mean(0) - 1).max() < 0.02
    assert np.abs(factors.std(0) - 0.8 / np.sqrt(12)).max() < 0.01
    assert np.array_equal(order.sum(1), np.ones((3000, 3))) and np.array_equal(order.sum(2), np.ones((3000, 3)))
    orders = [tuple(o) for o in order.argmax(-1)]
    counts = np.array([orders.count(o) for o in set(orders)])
    assert len(counts) == 6 and np.abs(counts / 3000 - 1 / 6).max() < 0.025
    assert np.abs(alpha.mean(0)).max() < 0.008 and np.abs(alpha.std(0) - 0.1).max() < 0.005

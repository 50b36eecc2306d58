"""Training augmentations of the recipes, per image and stateless: each draws from the example's own seed.

- The paper's (fb.resnet.torch's `transforms.lua`, which facebookresearch/ResNeXt trains
  with): `color_jitter` (brightness, contrast and saturation, 0.4 each, in random order)
  and `lighting` (AlexNet's PCA noise with ImageNet's eigenvalues and eigenvectors);
  `paper_color`, both in one pass.

Images are float RGB in [0, 255], `(height, width, 3)`; the reference works in [0, 1],
which scales every step alike. Neither clips, as the reference does not: a float32
pipeline keeps the values it computes; a uint8 one rounds and clips them.
"""

import tensorflow as tf

# fb.resnet.torch's datasets/imagenet.lua: the eigen-decomposition of ImageNet's RGB covariance, pixels in [0, 1].
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
# transforms.lua's grayscale: ITU-R 601 luma.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _seed(seed, stream):
    """A seed of its own for one random part (`stream`), from the example's seed."""
    return tf.random.experimental.stateless_fold_in(seed, stream)


def color_jitter(image, seed, brightness=0.4, contrast=0.4, saturation=0.4):
    """fb.resnet.torch's `ColorJitter`: brightness, contrast and saturation in a random order.

    Each draws its factor `1 + U(-strength, strength)`: brightness blends with black,
    contrast with the mean luma of the image as it is at that point, saturation with each
    pixel's luma (transforms.lua's `blend`: `factor * image + (1 - factor) * other`).
    """
    matrix, offset = _jitter(tf.reduce_mean(image, axis=[0, 1]), seed, (brightness, contrast, saturation))
    return _apply(image, matrix, offset)


def lighting(image, seed, alphastd=0.1):
    """fb.resnet.torch's `Lighting`: AlexNet's PCA noise, `eigvec @ (alpha * eigval)` added to every pixel.

    `alpha` is three draws of `N(0, alphastd)`; the shift is in [0, 1] units, so 255 times it here.
    """
    return _apply(image, tf.eye(3), _lighting_shift(seed, alphastd))


def paper_color(image, seed):
    """`lighting(color_jitter(image))` with the paper's strengths, in one pass over the image."""
    matrix, offset = _jitter(tf.reduce_mean(image, axis=[0, 1]), seed, (0.4, 0.4, 0.4))
    return _apply(image, matrix, offset + _lighting_shift(seed, 0.1))


def _jitter(mean_pixel, seed, strengths):
    """ColorJitter as one affine map of the colours, `pixel @ matrix + offset`.

    Every step is one: brightness `a I`; saturation `a I + (1 - a) w 1'` (w the luma
    weights); contrast `a I` plus `(1 - a)` times the mean luma, which is that of the
    mean pixel as the steps before left it. Composed on 3x3 matrices, the image is read
    once instead of once or twice a step.
    """
    factors, order = jitter_draws(seed, strengths)
    luma = tf.constant(GRAY_WEIGHTS)
    matrix, offset = tf.eye(3), tf.zeros([3])
    for position in range(3):
        which = order[position]
        factor = tf.gather(factors, which)
        mean_luma = tf.tensordot(tf.linalg.matvec(matrix, mean_pixel, transpose_a=True) + offset, luma, 1)
        step = factor * tf.eye(3) + tf.cast(which == 2, tf.float32) * (1.0 - factor) * luma[:, None] * tf.ones([1, 3])
        shift = tf.cast(which == 1, tf.float32) * (1.0 - factor) * mean_luma * tf.ones([3])
        matrix, offset = matrix @ step, tf.linalg.matvec(step, offset, transpose_a=True) + shift
    return matrix, offset


def jitter_draws(seed, strengths=(0.4, 0.4, 0.4)):
    """ColorJitter's random draws for `seed`: the factors of brightness, contrast and saturation, and the
    order (a permutation of 0, 1, 2) they apply in."""
    factors = 1.0 + tf.random.stateless_uniform([3], _seed(seed, 1), -1.0, 1.0) * tf.constant(strengths)
    return factors, tf.argsort(tf.random.stateless_uniform([3], _seed(seed, 2)))  # a uniform permutation


def lighting_draws(seed, alphastd=0.1):
    """Lighting's random draw for `seed`: `alpha`, three `N(0, alphastd)`."""
    return tf.random.stateless_normal([3], _seed(seed, 3), stddev=alphastd)


def _lighting_shift(seed, alphastd):
    alpha = lighting_draws(seed, alphastd)
    return 255.0 * tf.linalg.matvec(tf.constant(PCA_EIGENVECTORS), alpha * tf.constant(PCA_EIGENVALUES))


def _apply(image, matrix, offset):
    """`pixel @ matrix + offset` for every pixel: one matrix product, the offset added along whole rows
    (TensorFlow's CPU kernels broadcast over a 3-wide last axis slowly)."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    rows = tf.reshape(tf.reshape(image, [-1, 3]) @ matrix, [height, -1]) + tf.tile(offset, [width])
    return tf.reshape(rows, [height, width, 3])

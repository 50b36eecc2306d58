"""Training augmentations of the recipes, per image and stateless: each draws from the example's own seed.

- The paper's (fb.resnet.torch's `transforms.lua`, which facebookresearch/ResNeXt trains
  with): `color_jitter` (brightness, contrast and saturation, 0.4 each, in random order)
  and `lighting` (AlexNet's PCA noise with ImageNet's eigenvalues and eigenvectors);
  `paper_color`, both in one pass, and `paper_color_batch`, a batch of them in one call.
- torchvision's recipe (references/classification, behind its v2 weights):
  `trivial_augment_wide` (TrivialAugmentWide's 14 ops as torchvision's tensor kernels
  compute them), `random_erasing`, and the batch-level `mix_batch` (MixUp or CutMix).

Keras 3's `MixUp`, `CutMix`, `RandomErasing` and `RandAugment` layers compute other
augmentations, so they are not used: MixUp and CutMix draw a lambda per image and pair
images by a random permutation (torchvision: one lambda per batch, each image with its
neighbour, CutMix's lambda from the clipped box); RandomErasing draws each side as a
fraction of the image's (torchvision: an area of 2%-33% at an aspect of 0.3-3.3, ten
tries); RandAugment is not TrivialAugmentWide's ops and magnitudes. And they draw from a
layer's seed generator, where the pipelines seed each example statelessly.

Images are float RGB in [0, 255], `(height, width, 3)`; the reference works in [0, 1],
which scales every step alike. Neither clips, as the reference does not: a float32
pipeline keeps the values it computes; a uint8 one rounds and clips them.
"""

import numpy as np
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
    matrix, offset = _jitter(mean_pixel(image), seed, (brightness, contrast, saturation))
    return _apply(image, matrix, offset)


def lighting(image, seed, alphastd=0.1):
    """fb.resnet.torch's `Lighting`: AlexNet's PCA noise, `eigvec @ (alpha * eigval)` added to every pixel.

    `alpha` is three draws of `N(0, alphastd)`; the shift is in [0, 1] units, so 255 times it here.
    """
    return _apply(image, tf.eye(3), _lighting_shift(seed, alphastd))


def paper_color(image, seed, dtype="float32"):
    """`lighting(color_jitter(image))` with the paper's strengths, in one pass over the image.

    `dtype="uint8"` rounds and clips to [0, 255] in the same pass: the uint8 pipeline's image.
    """
    draws = paper_color_draws(image, seed)
    return paper_color_batch(image[None], tuple(draw[None] for draw in draws), dtype)[0]


def paper_color_draws(image, seed):
    """What `paper_color` needs from one image and its seed: `(mean pixel, jitter factors, jitter order, lighting
    alpha)`. Batched by tf.data, they colour the batch in one pass (`paper_color_batch`)."""
    factors, order = jitter_draws(seed)
    return mean_pixel(image), factors, order, lighting_draws(seed)


def paper_color_batch(images, draws, dtype="float32"):
    """`paper_color` on a batch `(B, H, W, 3)`, each image with its own `draws` (`paper_color_draws`, batched).

    One compiled call per batch: per image, the call itself cost the host pipeline about as
    much as the pixels' work (BENCHMARKS.md).
    """
    return _paper_color_pass(images, *draws, dtype == "uint8")


def mean_pixel(image):
    """The mean pixel of an `(H, W, 3)` image: each row's column means first (contiguous, 30x faster on a CPU than
    one reduction over both axes, which strides over a 3-wide last axis)."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    return tf.reduce_mean(tf.reshape(tf.reduce_mean(tf.reshape(image, [height, -1]), 0), [width, 3]), 0)


def _jitter(mean, seed, strengths):
    """ColorJitter as one affine map of the colours, `pixel @ matrix + offset` (see `color_maps`)."""
    factors, order = jitter_draws(seed, strengths)
    matrix, offset = color_maps(mean[None], factors[None], tf.one_hot(order, 3)[None], tf.zeros([1, 3]))
    return matrix[0], offset[0]


def color_maps(mean_pixels, factors, order, shift):
    """ColorJitter, then a colour shift (Lighting's), as one affine map per image, `pixel @ matrix + offset`.

    Every step maps a pixel `x` to `a x + b g(x) 1 + c 1` (g: the luma, its weights
    summing to 1): brightness scales all three; saturation blends with g(x); contrast
    blends with the mean luma of the image as the steps before left it, which is
    `(a + b) G + c` for the image's own mean luma G. Composed in that form, the map is
    `a I + b w 1'` (w the luma weights) and `k G 1` plus the shift, from three numbers
    per image: a few dozen scalar operations, and the image is read once.

    Args (a leading batch axis on each):
        mean_pixels: `(B, 3)`, each image's mean pixel.
        factors: `(B, 3)`, the factors of brightness, contrast and saturation.
        order: `(B, 3, 3)`, one-hot: `order[b, position]` is the step applied at that position.
        shift: `(B, 3)`, added after the jitter.

    Only arithmetic: the same code composes the maps per image in a tf.data pipeline
    and per batch in a training step on any backend (`keras_resnext.color_augmentation`).

    Returns:
        `(matrix (B, 3, 3), offset (B, 3))`.
    """
    luma = GRAY_WEIGHTS
    a = 1.0 + 0.0 * factors[:, 0]
    b, k = 0.0 * a, 0.0 * a
    for position in range(3):
        kind = order[:, position]  # (B, 3): brightness, contrast or saturation
        contrast, saturation = kind[:, 1], kind[:, 2]
        f = kind[:, 0] * factors[:, 0] + contrast * factors[:, 1] + saturation * factors[:, 2]
        a, b, k = (f * a, f * b + saturation * (1.0 - f) * (a + b),
                   (f + saturation * (1.0 - f)) * k + contrast * (1.0 - f) * (a + b + k))
    mean_luma = luma[0] * mean_pixels[:, 0] + luma[1] * mean_pixels[:, 1] + luma[2] * mean_pixels[:, 2]
    to_luma = np.asarray(luma, "float32")[:, None] * np.ones((1, 3), "float32")  # x @ to_luma = g(x) 1'
    matrix = a[:, None, None] * np.eye(3, dtype="float32") + b[:, None, None] * to_luma
    return matrix, (k * mean_luma)[:, None] + shift


def jitter_draws(seed, strengths=(0.4, 0.4, 0.4)):
    """ColorJitter's random draws for `seed`: the factors of brightness, contrast and saturation, and the
    order (a permutation of 0, 1, 2) they apply in."""
    factors = 1.0 + tf.random.stateless_uniform([3], _seed(seed, 1), -1.0, 1.0) * tf.constant(strengths)
    return factors, tf.argsort(tf.random.stateless_uniform([3], _seed(seed, 2)))  # a uniform permutation


def lighting_draws(seed, alphastd=0.1):
    """Lighting's random draw for `seed`: `alpha`, three `N(0, alphastd)`."""
    return tf.random.stateless_normal([3], _seed(seed, 3), stddev=alphastd)


def _lighting_shift(seed, alphastd):
    return lighting_shifts(lighting_draws(seed, alphastd)[None])[0]


def lighting_shifts(alphas):
    """Lighting's colour shift, `255 * eigvec @ (alpha * eigval)`, for `(B, 3)` draws of alpha: `(B, 3)`.

    A matrix product and arithmetic: per image on the host (TensorFlow) and per batch on
    the device (`keras_resnext.color_augmentation`, any backend) alike.
    """
    return 255.0 * ((alphas * np.asarray(PCA_EIGENVALUES, "float32")) @ np.asarray(PCA_EIGENVECTORS, "float32").T)


# The pixel pass is compiled by XLA, which fuses it into one loop over the pixels: the map, and for a uint8
# image the clip, round and cast. With TensorFlow's kernels (a 1x1 convolution, then a pass for each step) the
# colour cost a JPEG pipeline about twice as much per image (BENCHMARKS.md). The draws and the mean pixel stay
# TensorFlow's: XLA draws other random numbers from the same seed, and its mean was 15x slower.
@tf.function(jit_compile=True)
def _apply(image, matrix, offset):
    """`pixel @ matrix + offset` for every pixel."""
    return _mapped(image[None], matrix[None], offset[None])[0]


@tf.function(jit_compile=True)
def _paper_color_pass(images, means, factors, order, alphas, to_uint8):
    matrix, offset = color_maps(means, factors, tf.one_hot(order, 3), lighting_shifts(alphas))
    images = _mapped(images, matrix, offset)
    return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8) if to_uint8 else images


def _mapped(images, matrix, offset):
    """`pixel @ matrix[b] + offset[b]` for every pixel of each image `b` of `(B, H, W, 3)`."""
    rows = matrix[:, None, None]  # (B, 1, 1, 3, 3): broadcast over the pixels
    return (images[..., 0:1] * rows[..., 0, :] + images[..., 1:2] * rows[..., 1, :] + images[..., 2:3] * rows[..., 2, :]
            + offset[:, None, None])


# torchvision's TrivialAugmentWide: one of these ops per image, at one of 31 magnitudes (the wide ranges).
TRIVIAL_AUGMENT_OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color",
                       "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize")
MAGNITUDE_BINS = 31
_SIGNED = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color", "contrast", "sharpness")
TORCHVISION_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def trivial_augment_magnitude(op, bin_index):
    """TrivialAugmentWide's magnitude of `op` at `bin_index` (0 to 30), unsigned, as torchvision tabulates it."""
    index = tf.cast(bin_index, tf.float32)
    if op == "posterize":
        return tf.round(8.0 - index / ((MAGNITUDE_BINS - 1) / 6))
    ranges = {"shear_x": (0.0, 0.99), "shear_y": (0.0, 0.99), "translate_x": (0.0, 32.0), "translate_y": (0.0, 32.0),
              "rotate": (0.0, 135.0), "brightness": (0.0, 0.99), "color": (0.0, 0.99), "contrast": (0.0, 0.99),
              "sharpness": (0.0, 0.99), "solarize": (1.0, 0.0)}
    if op not in ranges:
        return tf.constant(0.0)
    return _linspace(*ranges[op], index)


def _linspace(start, end, index, steps=MAGNITUDE_BINS):
    """`torch.linspace(start, end, steps)[index]` to the bit: float32, counted from the nearer end (as torch does),
    so thresholds such as Solarize's fall on the same side of a pixel value."""
    step = tf.constant((end - start) / (steps - 1), tf.float32)
    return tf.where(index < steps // 2, start + step * index, end - step * (steps - 1 - index))


def trivial_augment_wide(image, seed, interpolation="bilinear"):
    """torchvision's `TrivialAugmentWide` on a uint8 RGB image: one op drawn uniformly, one magnitude bin.

    The signed ops flip their magnitude's sign half the time. Geometric ops fill with
    black; `interpolation` is the recipe's (torchvision's reference trains with bilinear).
    """
    which = tf.random.stateless_uniform([], _seed(seed, 4), 0, len(TRIVIAL_AUGMENT_OPS), tf.int32)
    bin_index = tf.random.stateless_uniform([], _seed(seed, 5), 0, MAGNITUDE_BINS, tf.int32)
    negative = tf.random.stateless_uniform([], _seed(seed, 6)) <= 0.5
    branches = []
    for op in TRIVIAL_AUGMENT_OPS:
        def branch(op=op):
            magnitude = trivial_augment_magnitude(op, bin_index)
            if op in _SIGNED:
                magnitude = tf.where(negative, -magnitude, magnitude)
            return apply_trivial_augment_op(image, op, magnitude, interpolation)
        branches.append(branch)
    return tf.switch_case(which, branches)


def apply_trivial_augment_op(image, op, magnitude, interpolation="bilinear"):
    """One TrivialAugmentWide op at `magnitude` on a uint8 `(height, width, 3)` image, as torchvision's
    tensor kernels compute it (their rounding and clamping included)."""
    if op == "identity":
        return image
    if op in ("shear_x", "shear_y", "translate_x", "translate_y", "rotate"):
        return _affine(image, op, magnitude, interpolation)
    pixels = tf.cast(image, tf.float32)
    if op == "brightness":
        return _to_uint8(pixels * (1.0 + magnitude))
    if op == "color":
        return _to_uint8(_blend(pixels, tf.floor(_torchvision_gray(pixels)), 1.0 + magnitude))
    if op == "contrast":
        return _to_uint8(_blend(pixels, tf.reduce_mean(tf.floor(_torchvision_gray(pixels))), 1.0 + magnitude))
    if op == "sharpness":
        return _sharpness(pixels, 1.0 + magnitude)
    if op == "posterize":
        bits = tf.cast(magnitude, tf.int32)
        mask = tf.cast(tf.bitwise.left_shift(tf.bitwise.left_shift(1, bits) - 1, 8 - bits), tf.uint8)
        return tf.bitwise.bitwise_and(image, mask)
    if op == "solarize":
        return tf.where(pixels >= 255.0 * magnitude, 255 - image, image)
    if op == "autocontrast":
        low, high = tf.reduce_min(pixels, axis=[0, 1]), tf.reduce_max(pixels, axis=[0, 1])
        flat = tf.equal(low, high)
        scale = tf.where(flat, 1.0, (high - low) / 255.0)
        return _to_uint8((pixels - tf.where(flat, 0.0, low)) / scale)
    if op == "equalize":
        return tf.stack([_equalize_channel(image[..., c]) for c in range(3)], axis=-1)
    raise ValueError(f"Unknown TrivialAugmentWide op {op!r}; expected one of {TRIVIAL_AUGMENT_OPS}.")


def _blend(image, other, factor):
    """`factor * image + (1 - factor) * other`: transforms.lua's and torchvision's blend."""
    return image * factor + other * (1.0 - factor)


def _to_uint8(pixels):
    """torchvision's `clamp_(0, 255).to(uint8)`: clamped, then truncated."""
    return tf.cast(tf.clip_by_value(pixels, 0.0, 255.0), tf.uint8)


def _torchvision_gray(pixels):
    return tf.reduce_sum(pixels * tf.constant(TORCHVISION_GRAY_WEIGHTS), axis=-1, keepdims=True)


def _sharpness(pixels, factor):
    """torchvision's adjust_sharpness: the inner pixels blended with a 3x3 smoothing (centre 5/13, rest 1/13)."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    blurred = tf.round(tf.nn.depthwise_conv2d(pixels[None], kernel, [1, 1, 1, 1], "VALID")[0])
    inner = pixels[1:-1, 1:-1]
    inner = inner + (blurred - inner) * (1.0 - factor)
    sharpened = tf.pad(inner - pixels[1:-1, 1:-1], [[1, 1], [1, 1], [0, 0]]) + pixels
    return _to_uint8(sharpened)


def _equalize_channel(channel):
    """torchvision's equalize of one uint8 channel: a lookup table from the cumulative histogram."""
    flat = tf.reshape(tf.cast(channel, tf.int32), [-1])
    histogram = tf.math.bincount(flat, minlength=256, maxlength=256)
    cumulative = tf.cumsum(histogram)
    last = tf.argmax(cumulative)  # the last non-empty bin
    step = (tf.size(flat) - histogram[last]) // 255
    table = tf.clip_by_value((cumulative[:-1] + step // 2) // tf.maximum(step, 1), 0, 255)
    table = tf.concat([[0], table], axis=0)
    equalized = tf.cast(tf.gather(table, flat), tf.uint8)
    return tf.where(step > 0, tf.reshape(equalized, tf.shape(channel)), channel)


def _affine(image, op, magnitude, interpolation):
    """torchvision's affine and rotate on a tensor image: its inverse matrix, in its pixel-centre coordinates."""
    import math

    height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    zero = tf.constant(0.0)
    angle, shear_x, shear_y, tx, ty = zero, zero, zero, zero, zero
    center_x, center_y = zero, zero  # relative to the image centre
    if op == "shear_x":  # about the top-left corner, by atan(magnitude)
        shear_x, center_x, center_y = tf.atan(magnitude), -width / 2, -height / 2
    elif op == "shear_y":
        shear_y, center_x, center_y = tf.atan(magnitude), -width / 2, -height / 2
    elif op == "translate_x":
        tx = tf.cast(tf.cast(magnitude, tf.int32), tf.float32)  # torchvision's int(): towards zero
    elif op == "translate_y":
        ty = tf.cast(tf.cast(magnitude, tf.int32), tf.float32)
    else:  # rotate: counter-clockwise by `magnitude` degrees about the centre
        angle = -magnitude * math.pi / 180
    # torchvision's _get_inverse_affine_matrix (scale 1): rotation-shear inverted, then the translations.
    a = tf.cos(angle - shear_y) / tf.cos(shear_y)
    b = -tf.cos(angle - shear_y) * tf.tan(shear_x) / tf.cos(shear_y) - tf.sin(angle)
    c = tf.sin(angle - shear_y) / tf.cos(shear_y)
    d = -tf.sin(angle - shear_y) * tf.tan(shear_x) / tf.cos(shear_y) + tf.cos(angle)
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = m0 * (-center_x - tx) + m1 * (-center_y - ty) + center_x
    m5 = m3 * (-center_x - tx) + m4 * (-center_y - ty) + center_y
    # From coordinates about the centre (pixel centres at +0.5) to TensorFlow's pixel indices.
    offset_x, offset_y = 0.5 - width / 2, 0.5 - height / 2
    transform = tf.stack([m0, m1, m0 * offset_x + m1 * offset_y + m2 - offset_x,
                          m3, m4, m3 * offset_x + m4 * offset_y + m5 - offset_y, zero, zero])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
        fill_value=0.0, interpolation=interpolation.upper(), fill_mode="CONSTANT")[0]
    return tf.cast(tf.round(out), tf.uint8)


def random_erasing(image, seed, value, probability=0.1, scale=(0.02, 0.33), ratio=(0.3, 3.3), attempts=10):
    """torchvision's `RandomErasing`: with `probability`, a box of 2%-33% of the area, aspect 0.3-3.3, set to `value`.

    As torchvision draws it: up to 10 boxes until one fits inside the image, its side
    rounded; none fits, nothing is erased. torchvision erases the normalised image with
    0, which is the mean pixel here (`value`, per channel).
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    area = tf.cast(height * width, tf.float32)
    draws = tf.random.stateless_uniform([attempts, 4], _seed(seed, 7))
    erase_area = area * (scale[0] + (scale[1] - scale[0]) * draws[:, 0])
    log_ratio = tf.math.log(tf.constant(ratio))
    aspect = tf.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * draws[:, 1])
    box_height = tf.cast(tf.round(tf.sqrt(erase_area * aspect)), tf.int32)
    box_width = tf.cast(tf.round(tf.sqrt(erase_area / aspect)), tf.int32)
    fits = (box_height < height) & (box_width < width)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    box_height, box_width = box_height[first], box_width[first]
    top = tf.cast(draws[first, 2] * tf.cast(height - box_height + 1, tf.float32), tf.int32)
    left = tf.cast(draws[first, 3] * tf.cast(width - box_width + 1, tf.float32), tf.int32)
    rows, columns = tf.range(height)[:, None], tf.range(width)[None, :]
    inside = (rows >= top) & (rows < top + box_height) & (columns >= left) & (columns < left + box_width)
    erase = tf.reduce_any(fits) & (tf.random.stateless_uniform([], _seed(seed, 8)) < probability)
    return tf.where(erase & inside[..., None], tf.cast(value, image.dtype), image)


def cutmix_box(lam, centre_x, centre_y, height, width):
    """CutMix's box `(x1, y1, x2, y2)` and adjusted lambda, as torchvision makes them from its draws:
    a box of side `sqrt(1 - lam)` times the image's, about the centre drawn, clipped to the image."""
    r = 0.5 * tf.sqrt(1.0 - lam)
    half_w = tf.cast(r * tf.cast(width, tf.float32), tf.int32)
    half_h = tf.cast(r * tf.cast(height, tf.float32), tf.int32)
    x1, y1 = tf.maximum(centre_x - half_w, 0), tf.maximum(centre_y - half_h, 0)
    x2, y2 = tf.minimum(centre_x + half_w, width), tf.minimum(centre_y + half_h, height)
    lam_adjusted = 1.0 - tf.cast((x2 - x1) * (y2 - y1), tf.float32) / tf.cast(width * height, tf.float32)
    return (x1, y1, x2, y2), lam_adjusted


def mixup(images, labels, lam):
    """torchvision v2's MixUp for a drawn `lam`: each image and one-hot label mixed with the previous one's."""
    return (lam * images + (1.0 - lam) * tf.roll(images, 1, axis=0),
            lam * labels + (1.0 - lam) * tf.roll(labels, 1, axis=0))


def cutmix(images, labels, box, lam_adjusted):
    """torchvision v2's CutMix for a drawn box: the previous image pasted into it, labels mixed by its area."""
    x1, y1, x2, y2 = box
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rows, columns = tf.range(height)[:, None], tf.range(width)[None, :]
    inside = (rows >= y1) & (rows < y2) & (columns >= x1) & (columns < x2)
    mixed = tf.where(inside[None, :, :, None], tf.roll(images, 1, axis=0), images)
    return mixed, lam_adjusted * labels + (1.0 - lam_adjusted) * tf.roll(labels, 1, axis=0)


def mix_batch(images, labels, seed, mixup_alpha=0.2, cutmix_alpha=1.0):
    """torchvision's reference: MixUp or CutMix, one of the two (equally likely) per batch, lambda ~ Beta(alpha, alpha).

    `images` float `(batch, height, width, 3)`, `labels` one-hot float; pairs are
    consecutive images (the batch is shuffled), as in torchvision.
    """
    def beta(alpha, stream):
        first = tf.random.stateless_gamma([], _seed(seed, stream), alpha)
        return first / (first + tf.random.stateless_gamma([], _seed(seed, stream + 1), alpha))

    height, width = tf.shape(images)[1], tf.shape(images)[2]

    def do_mixup():
        return mixup(images, labels, beta(mixup_alpha, 10))

    def do_cutmix():
        centre = tf.random.stateless_uniform([2], _seed(seed, 12), 0, 2**31 - 1, tf.int32)
        box, lam_adjusted = cutmix_box(beta(cutmix_alpha, 13), centre[0] % width, centre[1] % height, height, width)
        return cutmix(images, labels, box, lam_adjusted)

    if not mixup_alpha or not cutmix_alpha:
        return do_mixup() if mixup_alpha else do_cutmix() if cutmix_alpha else (images, labels)
    return tf.cond(tf.random.stateless_uniform([], _seed(seed, 9)) < 0.5, do_mixup, do_cutmix)


def torchvision_image(image, seed, mean_pixel, random_erasing_probability=0.1):
    """torchvision's recipe per image after its crop and flip: TrivialAugmentWide on the uint8 pixels, then
    random erasing with the mean pixel (torchvision erases the normalised image with 0). Float in, float out."""
    pixels = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
    image = tf.cast(trivial_augment_wide(pixels, seed), tf.float32)
    return random_erasing(image, seed, mean_pixel, random_erasing_probability)

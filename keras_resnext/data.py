"""Input pipelines: tensorflow-datasets and the embedded digits, with the paper's augmentation.

    train, info = load_dataset("cifar10", "train", batch_size=128, data_dir="~/tfds")
    test, _ = load_dataset("cifar10", "test", batch_size=256, data_dir="~/tfds")

Every pipeline yields `(images, labels)`: float32 NHWC images normalised as by
`keras_resnext.preprocess_input`, int labels. Random augmentation is stateless and
seeded per element (`tf.data.Dataset.random`), so a seeded pipeline is
deterministic and still differs from epoch to epoch.
"""

import dataclasses
import functools
import math
import os

import numpy as np
import tensorflow as tf

from keras_resnext.config import DATASETS, eval_split  # noqa: F401 (eval_split re-exported)
from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD

AUTOTUNE = tf.data.AUTOTUNE
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    class_names: tuple
    num_examples: int
    image_size: int
    mean: tuple
    std: tuple
    details: dict = None  # what else a run records of its data (an image folder's split and counts)
    crop_pct: float = 0.875  # the evaluation crop: resize to image_size / crop_pct, center-crop


def load_dataset(
    name,
    split,
    *,
    batch_size=128,
    training=None,
    image_size=None,
    data_dir=None,
    download=False,
    cache=False,
    seed=None,
    crop_pct=0.875,
    drop_remainder=None,
    val_split=0.2,
    split_seed=0,
    strict=False,
):
    """A batched, prefetched `tf.data.Dataset` of `(images, labels)` and its `DatasetInfo`.

    Args:
        name: `"digits"` (scikit-learn's handwritten digits, shipped with the
            package's dependencies), `"cifar10"`, `"cifar100"`, `"imagenet2012"`
            or `"folder:/path"` (a tree `path/<class>/<image>` or
            `path/<split>/<class>/<image>`, see `keras_resnext.folders`).
        split: `"train"` or `"test"` (`"validation"` for ImageNet), or a tfds split.
        training: augment and shuffle; defaults to `split == "train"`.
        image_size: output side; defaults to 32 (digits, CIFAR) or 224.
        data_dir: the tfds data directory (`~/tensorflow_datasets` if None).
        download: let tfds download and prepare the data set. When False and the
            data is not prepared, a `ValueError` says how to prepare it.
        cache: cache decoded examples in memory (small data sets).
        seed: makes shuffling and augmentation deterministic.
        crop_pct: ImageNet evaluation crop (resize to size / crop_pct, then
            center-crop), e.g. from a pretrained tag's `test_crop_pct`.
        val_split, split_seed, strict: for image folders, the fraction held out
            as the test split when the folder has none (stratified; the same
            `split_seed` gives the same split on every rerun), and whether a file
            that does not decode is refused instead of skipped.
    """
    training = split == "train" if training is None else training
    drop_remainder = training if drop_remainder is None else drop_remainder
    ds, info, augment = _source(name, split, data_dir, download, val_split, split_seed, strict)
    info = dataclasses.replace(info, image_size=image_size or info.image_size, crop_pct=crop_pct)
    if cache:
        ds = ds.cache()
    if training:
        ds = _augmented(ds, info, augment, seed)
    elif augment is not None:
        ds = ds.map(lambda image, label: (_resize(image, info.image_size), label), num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.map(lambda image, label: (_center_crop(image, info.image_size, crop_pct), label),
                    num_parallel_calls=AUTOTUNE)
    mean = tf.constant(info.mean, tf.float32) * 255.0
    std = tf.constant(info.std, tf.float32) * 255.0
    ds = ds.map(lambda image, label: ((image - mean) / std, label), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    # Unseeded training may reorder for speed; evaluation keeps the split's order.
    options.deterministic = seed is not None or not training
    return ds.with_options(options).prefetch(AUTOTUNE), info


def _source(name, split, data_dir, download, val_split=0.2, seed=0, strict=False):
    """`(examples, info, augment)`: decoded `(image, label)` pairs and the data set's augmentation.

    `augment` is the paper's pad-and-crop for small images, or None for the
    ImageNet-style random-resized crop.
    """
    if name == "digits":
        ds, info = _digits(split)
        return ds, info, _pad_crop_augment(pad=2, flip=False)
    if name in ("cifar10", "cifar100"):
        ds, info = _tfds(name, split, data_dir, download, CIFAR_MEAN, CIFAR_STD, 32)
        return ds, info, _pad_crop_augment(pad=4, flip=True)
    if name.startswith("folder:"):
        ds, info = _image_folder(name[len("folder:"):], split, val_split, seed, strict)
        return ds, info, None
    if name == "imagenet2012":
        ds, info = _tfds(name, split, data_dir, download, IMAGENET_MEAN, IMAGENET_STD, 224)
        return ds, info, None
    raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(DATASETS)}.")


def _augmented(ds, info, augment, seed):
    """Shuffled, randomly augmented training examples (stateless, seeded per example)."""
    size = info.image_size
    buffer = min(info.num_examples, 10_000) if info.num_examples > 0 else 10_000
    ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    # One (2,)-int64 stateless seed per example, new every epoch, deterministic when seeded.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds))
    if augment is not None:
        return ds.map(lambda ex, s: (augment(_resize(ex[0], size), s), ex[1]), num_parallel_calls=AUTOTUNE)
    return ds.map(lambda ex, s: (_inception_crop(ex[0], size, s), ex[1]), num_parallel_calls=AUTOTUNE)


def digits_arrays(split):
    """The digits split as uint8 `(N, 8, 8, 1)` images in [0, 255] and int labels.

    A fixed, stratified 80/20 split of the 1,797 images: 1,437 train, 360 test.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"digits has splits 'train' and 'test'; received split={split!r}.")
    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype("uint8")[..., None]
    train_x, test_x, train_y, test_y = train_test_split(
        images, bunch.target, test_size=360, stratify=bunch.target, random_state=0
    )
    return (train_x, train_y) if split == "train" else (test_x, test_y)


def _digits(split):
    images, labels = digits_arrays(split)
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype("int64")))
    info = DatasetInfo("digits", 10, tuple(str(i) for i in range(10)), len(labels), 32,
                       IMAGENET_MEAN, IMAGENET_STD)
    return ds, info


def _tfds(name, split, data_dir, download, mean, std, image_size):
    import tensorflow_datasets as tfds

    data_dir = os.path.expanduser(data_dir) if data_dir else None
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        if not download:
            raise ValueError(_not_prepared_message(name, builder.data_dir))
        builder.download_and_prepare()
    splits = builder.info.splits
    if splits and split not in splits:
        raise ValueError(f"{name} has splits {', '.join(splits)}; received split={split!r}.")
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    ds = ds.map(lambda image, label: (_rgb(image), label), num_parallel_calls=AUTOTUNE)
    label = builder.info.features["label"]
    num_examples = splits[split].num_examples if split in splits else -1  # unknown (e.g. mocked)
    info = DatasetInfo(name, label.num_classes, tuple(label.names), num_examples, image_size, mean, std)
    return ds, info


@functools.lru_cache(maxsize=8)
def scan_folder(root, val_split, seed, strict):
    """`keras_resnext.folders.scan`, once per process for the same arguments (train and test share it)."""
    from keras_resnext import folders

    return folders.scan(root, val_split=val_split, seed=seed, strict=strict)


def _image_folder(root, split, val_split, seed, strict):
    folder = scan_folder(root, val_split, seed, strict)
    if split not in folder.splits:
        raise ValueError(f"The image folder {root!r} has splits {', '.join(folder.splits)}; received split={split!r}.")
    items = folder.splits[split]
    paths = tf.constant([path for path, _ in items], tf.string)
    labels = tf.constant([label for _, label in items], tf.int64)

    def decode(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.ensure_shape(image, [None, None, 3]), label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels)).map(decode, num_parallel_calls=AUTOTUNE)
    info = DatasetInfo(f"folder:{root}", len(folder.class_names), folder.class_names, len(items), 224,
                       IMAGENET_MEAN, IMAGENET_STD, details=folder.summary())
    return ds, info


def _not_prepared_message(name, data_dir):
    if name == "imagenet2012":
        return (
            f"imagenet2012 is not prepared in {data_dir}. Download ILSVRC2012_img_train.tar and "
            f"ILSVRC2012_img_val.tar from image-net.org into {data_dir}/downloads/manual, then run "
            "again with download=True (--download), which prepares it (tfds's manual download)."
        )
    return (
        f"{name} is not prepared in {data_dir} and download=False. Run again with download=True "
        f"(--download), or prepare it with `tfds build {name} --data_dir <dir>` and pass that data_dir."
    )


def _rgb(image):
    return tf.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image


def _resize(image, size):
    image = tf.cast(_rgb(image), tf.float32)
    return tf.image.resize(image, (size, size), method="bilinear")


def _pad_crop_augment(pad, flip):
    """The paper's CIFAR augmentation: zero-pad, random crop back, random flip."""

    def augment(image, seed):
        size = tf.shape(image)[0]
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(image, (size, size, 3), seed=seed)
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])
        return image

    return augment


def _inception_crop(image, size, seed):
    """ImageNet training crop: 8%-100% of the area, aspect 3/4-4/3, resized to `size`, flipped."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
    return tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])


def _center_crop(image, size, crop_pct):
    """Evaluation: resize the shorter side to size / crop_pct, center-crop size x size."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = math.floor(size / crop_pct) / tf.reduce_min(shape)
    resized = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(tf.cast(image, tf.float32), resized, method="bilinear", antialias=True)
    top = (resized[0] - size) // 2
    left = (resized[1] - size) // 2
    return tf.image.crop_to_bounding_box(image, top, left, size, size)

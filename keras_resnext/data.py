"""Input pipelines: tensorflow-datasets, image folders and the embedded digits, with the paper's augmentation.

    train, info = load_dataset("cifar10", "train", batch_size=128, data_dir="~/tfds")
    test, _ = load_dataset("cifar10", "test", batch_size=256, data_dir="~/tfds")

Every pipeline yields `(images, labels)`: float32 NHWC images normalised as by
`keras_resnext.preprocess_input`, int labels; or, with `dtype="uint8"`, the raw
pixels, which a model built with `include_preprocessing=True` normalises itself on
its device. Random augmentation is stateless and seeded per element
(`tf.data.Dataset.random`), so a seeded pipeline is deterministic and still differs
from epoch to epoch.

ImageNet-style training crops (image folders, `imagenet2012`) of a JPEG decode only
the crop: the box is drawn from the size in the file's header, and
`tf.image.decode_and_crop_jpeg` decodes just its blocks, the same pixels a full
decode and a slice would give. Other formats are decoded whole, as for evaluation.
"""

import dataclasses
import functools
import os

import numpy as np
import tensorflow as tf

from keras_resnext import augment as augment_lib
from keras_resnext import service
from keras_resnext.config import (  # noqa: F401 (eval_split re-exported)
    DATASETS, check_choice, check_fraction, eval_split)
from keras_resnext.evaluation_crop import EvaluationCrop
from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD

AUTOTUNE = tf.data.AUTOTUNE
DTYPES = ("float32", "uint8")
AUGMENTATIONS = ("paper", "crop_flip", "torchvision")
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
    dtype="float32",
    data_service=None,
    augmentation="paper",
    augment_repeats=1,
    holdout=0.0,
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
        augmentation: the training augmentation of ImageNet-style data (image
            folders, `imagenet2012`): `"paper"`, the random-resized crop and flip with
            fb.resnet.torch's color jitter and PCA lighting (`keras_resnext.augment`),
            as the paper trained; `"crop_flip"`, the crop and flip alone; or
            `"torchvision"`, the crop and flip, then torchvision's TrivialAugmentWide
            and random erasing (p 0.1), as in `kr.training.torchvision_recipe`.
            Small images (digits, CIFAR) take the paper's pad-and-crop, and with
            `"torchvision"` the same two after it.
        augment_repeats: repeated augmentation (torchvision's `--ra-sampler`, 4 in its
            recipe): each batch holds `batch_size // augment_repeats` images, each
            `augment_repeats` times, every copy augmented anew, ordered copy by copy so
            that neighbours (MixUp's and CutMix's pairs) are different images. A pass
            then yields every image `augment_repeats` times; the reference's epoch is the
            first `1 / augment_repeats` of it: give `fit` `steps_per_epoch=len(ds) //
            augment_repeats` of the repeated data set. `batch_size` must be a multiple.
        holdout: a fraction of the training split held out for model selection
            (a search ranks on it, so the test split stays unseen): `split="train"`
            is then the rest and `split="holdout"` that fraction, stratified by class
            and the same for the same `split_seed`. Digits and image folders split
            their lists; a tfds set reads its training labels once to split them.
        dtype: `"float32"`, images normalised with the data set's mean and std,
            or `"uint8"`, the raw pixels (a quarter of the bytes to move), for a
            model that normalises them itself (`include_preprocessing=True`).
        data_service: `"grpc://host:port"` of a tf.data service dispatcher: the
            pipeline then runs on the service's workers, each example once per
            epoch across them (`"distributed_epoch"`), and its batches stream
            here. The service has no authentication: keep it on a private network.
    """
    training = split == "train" if training is None else training
    drop_remainder = training if drop_remainder is None else drop_remainder
    check_choice("dtype", dtype, DTYPES)
    check_choice("augmentation", augmentation, AUGMENTATIONS)
    _check_repeats(augment_repeats, batch_size)
    ds, info, augment = _source(name, split, data_dir, download, val_split, split_seed, strict, holdout)
    info = dataclasses.replace(info, image_size=image_size or info.image_size, crop_pct=crop_pct)
    if cache:
        ds = ds.cache()
    # One map per example does all its work, an image folder's file reads included: every map stage
    # costs a hand-over per element (measured: 7% of the JPEG pipeline's speed for the read alone).
    finish = functools.partial(_finish, info=info, dtype=dtype)
    read = tf.io.read_file if name.startswith("folder:") else (lambda data: data)
    if training:
        ds = _augmented(ds, info, augment, seed, read, dtype, augmentation, augment_repeats, batch_size, drop_remainder)
    else:
        ds = _evaluated(ds, info, augment, read, finish)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    if data_service is not None:
        ds = service.distribute(ds, data_service)
    options = tf.data.Options()
    # Unseeded training may reorder for speed; evaluation keeps the split's order.
    options.deterministic = seed is not None or not training
    return ds.with_options(options).prefetch(AUTOTUNE), info


def _evaluated(ds, info, augment, read, finish):
    """Evaluation images: small ones resized; encoded ones (see `_source`) decoded whole, for the exact evaluation
    transform."""
    if augment is not None:
        return ds.map(lambda image, label: (finish(_resize(image, info.image_size)), label), num_parallel_calls=AUTOTUNE)
    crop = EvaluationCrop(info.image_size, info.crop_pct)
    return ds.map(lambda data, label: (finish(crop(decode(read(data)))), label), num_parallel_calls=AUTOTUNE)


def _finish(image, info, dtype):
    """Images as the pipeline yields them, one `(H, W, 3)` or a batch: normalised float32, or uint8 (a float image
    rounded; a resize, flip or TrivialAugmentWide stays in [0, 255], and the paper's colour makes its uint8 image
    itself, clipped)."""
    if dtype == "uint8":
        return image if image.dtype == tf.uint8 else tf.cast(tf.round(image), tf.uint8)
    # (image - mean) / std, computed on rows with mean and std repeated along them: broadcast over the
    # three channels alone, TensorFlow's CPU kernels ran it at a third of the speed (the same values).
    width = tf.shape(image)[-2]
    mean = tf.tile(tf.constant(info.mean, tf.float32) * 255.0, [width])
    std = tf.tile(tf.constant(info.std, tf.float32) * 255.0, [width])
    return tf.reshape((tf.reshape(image, [-1, width * 3]) - mean) / std, tf.shape(image))


def _source(name, split, data_dir, download, val_split=0.2, seed=0, strict=False, holdout=0.0):
    """`(examples, info, augment)`: `(image, label)` pairs and the data set's augmentation.

    `augment` is the paper's pad-and-crop for small images, whose examples are
    decoded; or None for the ImageNet-style random-resized crop, whose examples
    are the encoded files (an image folder's: their paths), for the crop to decode
    (`_training_crop`). With `holdout`, the training split is divided (`_held_out`).
    """
    if holdout or split == HOLDOUT:  # split="holdout" without a fraction is refused there, not as an unknown split
        return _held_out(name, split, holdout, data_dir, download, val_split, seed, strict)
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
        ds, info = _tfds(name, split, data_dir, download, IMAGENET_MEAN, IMAGENET_STD, 224, encoded=True)
        return ds, info, None
    raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(DATASETS)}.")


HOLDOUT = "holdout"


def _held_out(name, split, fraction, data_dir, download, val_split, seed, strict):
    """`_source`'s training split less a stratified `fraction` (`split="train"`), or that fraction ("holdout")."""
    if split not in ("train", HOLDOUT):
        raise ValueError(f"With a holdout, split must be 'train' or '{HOLDOUT}'; received split={split!r}.")
    check_fraction("holdout", fraction)
    ds, info, augment = _source(name, "train", data_dir, download, val_split, seed, strict)
    labels = _training_labels(name, data_dir, val_split, seed, strict, info.num_examples)
    held = holdout_mask(labels, fraction, seed)
    keep = held if split == HOLDOUT else ~held
    mask = tf.constant(keep)

    def kept(index, example):
        return mask[index]

    def without_index(index, example):
        return example

    ds = ds.enumerate().filter(kept).map(without_index)
    ds = ds.apply(tf.data.experimental.assert_cardinality(int(keep.sum())))
    details = info.details and dict(info.details, holdout=fraction, counts=dict(
        info.details["counts"], train=_class_counts(labels[~held], info.class_names),
        holdout=_class_counts(labels[held], info.class_names)))
    return ds, dataclasses.replace(info, num_examples=int(keep.sum()), details=details), augment


def holdout_mask(labels, fraction, seed):
    """A boolean mask over `labels` that holds out `fraction` of every class (at least one example), seeded."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 and len(labels) * fraction >= len(classes) else None
    _, held = train_test_split(np.arange(len(labels)), test_size=fraction, random_state=seed, stratify=stratify)
    mask = np.zeros(len(labels), bool)
    mask[held] = True
    return mask


def _class_counts(labels, class_names):
    return {name: int((labels == i).sum()) for i, name in enumerate(class_names)}


def _training_labels(name, data_dir, val_split, seed, strict, num_examples):
    """The training split's labels in order: from the list for digits and folders, a tfds set's from its records."""
    if name == "digits":
        return digits_arrays("train")[1]
    if name.startswith("folder:"):
        return np.array([label for _, label in scan_folder(name[len("folder:"):], val_split, seed, strict)
                         .splits["train"]])
    return _tfds_training_labels(name, data_dir, num_examples)


@functools.lru_cache(maxsize=8)
def _tfds_training_labels(name, data_dir, num_examples):
    """A tfds set's training labels, read once per process (a search loads the split for every seed): one pass
    over the records, their images left encoded. `num_examples` (the split's, from its info) is part of the
    key, so a data set prepared again with another size is read again."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=os.path.expanduser(data_dir) if data_dir else None)
    records = builder.as_dataset(split="train", as_supervised=True, shuffle_files=False,
                                 decoders={"image": tfds.decode.SkipDecoding()})
    labels = np.concatenate([batch for batch in records.map(lambda _, label: label).batch(8192).as_numpy_iterator()])
    labels.flags.writeable = False  # shared by every caller
    return labels


def _check_repeats(augment_repeats, batch_size):
    if isinstance(augment_repeats, bool) or not isinstance(augment_repeats, int) or augment_repeats < 1 \
            or batch_size % augment_repeats:
        raise ValueError(f"augment_repeats must be a positive int that divides batch_size ({batch_size}); "
                         f"received {augment_repeats!r}.")


def _augmented(ds, info, augment, seed, read, dtype, augmentation, copies, batch_size, drop_remainder):
    """Batches of shuffled, randomly augmented training examples (stateless, seeded per example) of `dtype`; `read`
    reads an encoded example for the ImageNet-style crop; `copies` of each image per batch of `batch_size`."""
    size = info.image_size
    buffer = min(info.num_examples, 10_000) if info.num_examples > 0 else 10_000
    ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if copies > 1:
        ds = _repeated(ds, copies, batch_size // copies, info.num_examples)
    # One (2,)-int64 stateless seed per example, new every epoch, deterministic when seeded.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds))
    mean_pixel = tf.constant(info.mean, tf.float32) * 255.0
    finish = functools.partial(_finish, info=info, dtype=dtype)
    # The paper's colour after an ImageNet-style crop: its draws per image, its pass per batch (one compiled call
    # per batch; per image, the call cost as much as the pixels' work).
    color_batches = augment is None and augmentation == "paper"

    def example(data, seed):
        if augment is not None:  # small images: the paper's pad-and-crop
            image = augment(_resize(data, size), seed)
        else:
            image = _training_crop(read(data), size, seed)
            if color_batches:
                return image, augment_lib.paper_color_draws(image, seed)
        if augmentation == "torchvision":
            image = augment_lib.torchvision_image(image, seed, mean_pixel)
        return finish(image)

    ds = ds.map(lambda ex, s: (example(ex[0], s), ex[1]), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    if color_batches:  # uint8: rounded and clipped in the same pass
        ds = ds.map(lambda images, labels: (finish(augment_lib.paper_color_batch(*images, dtype)), labels),
                    num_parallel_calls=AUTOTUNE)
    return ds


def _repeated(ds, copies, images, num_examples):
    """Groups of `images` examples, each group `copies` times over: batches of `copies * images`.

    torchvision's RASampler repeats each image on consecutive ranks, so one rank's batch
    holds different images and the global batch each of them `copies` times; copy by copy
    (the group, then the group again) keeps that here, where one batch is the global one.
    """
    ds = ds.batch(images, drop_remainder=True)
    ds = ds.flat_map(lambda *group: tf.data.Dataset.from_tensor_slices(group if len(group) > 1 else group[0])
                     .repeat(copies))
    if num_examples > 0:  # a known length keeps a pass's batch count known
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_examples // images * images * copies))
    return ds


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


def _tfds(name, split, data_dir, download, mean, std, image_size, encoded=False):
    """A tfds split as `(image, label)`: decoded RGB, or with `encoded` the image files as stored."""
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
    if encoded:  # tfds would decode every image whole before it is cropped
        ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False,
                                decoders={"image": tfds.decode.SkipDecoding()})
    else:
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
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))  # read where they are decoded (`load_dataset`)
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


def decode(data):
    """An encoded image (JPEG, PNG, GIF, BMP, WebP) as uint8 RGB, `(height, width, 3)`."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def _crop_box(shape, seed):
    """The ImageNet training crop's box in an image of `shape`: `(begin, size)` for `tf.slice`."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, size


def _training_crop(data, size, seed, fused_jpeg=True):
    """ImageNet training crop of an encoded image: 8%-100% of the area, aspect 3/4-4/3, resized to `size`, flipped.

    A JPEG is cropped while it is decoded: the box comes from the size in its header
    (the same box as from the decoded image's shape) and only its blocks are decoded.
    `fused_jpeg=False` decodes JPEGs whole too (benchmarks/pipeline.py compares them).
    """

    def decode_crop_jpeg():
        shape = tf.image.extract_jpeg_shape(data)
        begin, crop = _crop_box(shape, seed)
        # Subsampled chroma is upsampled from the columns either side of each pixel: the window's edge
        # columns come out different unless those neighbours are decoded too. With them, and sliced off,
        # the crop is exactly the full decode's pixels.
        left, right = tf.minimum(begin[1], 1), tf.minimum(shape[1] - begin[1] - crop[1], 1)
        window = tf.stack([begin[0], begin[1] - left, crop[0], crop[1] + left + right])
        return tf.image.decode_and_crop_jpeg(data, window, channels=3)[:, left:left + crop[1]]

    def decode_then_crop():
        image = decode(data)
        begin, crop = _crop_box(tf.shape(image), seed)
        return tf.slice(image, begin, crop)

    image = tf.cond(tf.io.is_jpeg(data), decode_crop_jpeg, decode_then_crop) if fused_jpeg else decode_then_crop()
    # Flipped while uint8 and resized from uint8 (the resize kernel reads it directly): a quarter of the bytes
    # to move, at most a rounding (1e-4) from flipping the float result.
    image = tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])
    return tf.image.resize(image, (size, size), method="bilinear")

"""Training-pipeline img/s on a folder of JPEGs: the general decoder, the fused decode-and-crop, float32 and uint8.

Makes a folder of JPEGs cut from scikit-learn's two sample photos (about 400x350 px,
quality 90, 4:2:0 chroma as cameras write them), then times, one pipeline at a time and
alternating over rounds, the ImageNet-style training pipeline of
`keras_resnext.data.load_dataset("folder:...", "train")` (random-resized crop to 224,
flip, batch 64; `augmentation="crop_flip"`, the same work as the pipelines compared):

- "before this change": the package's pipeline as it was before the fused crop,
  written out here (every file decoded whole, normalised in a map of its own);
- "decode whole, then crop": today's pipeline with JPEGs decoded whole, as PNG, GIF,
  BMP and WebP still are;
- "fused decode-and-crop": the box drawn from the JPEG header, only its blocks decoded;
- each in float32 (normalised, the default) and uint8 (raw pixels, for a model that
  normalises them on its device);
- "with the paper's color": the default `augmentation="paper"`, which adds
  fb.resnet.torch's color jitter and PCA lighting (what they cost); "with torchvision's":
  TrivialAugmentWide and random erasing instead (`augmentation="torchvision"`);
- "tensorflow/models' design, uint8": a bare pipeline written the way tensorflow/models'
  ImageNet input is (extract_jpeg_shape, sample the box, decode_and_crop_jpeg, resize,
  flip), without the package's per-example seeds, label handling or options.

    python benchmarks/pipeline.py [--images 1024] [--rounds 5] [--batches 12] [--folder DIR]
"""

import argparse
import functools
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_resnext  # noqa: E402,F401 - first: oneDNN before TensorFlow
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_resnext import data, devices  # noqa: E402

SIZE, BATCH = 224, 64


def make_folder(root, images, seed=0):
    """`images` JPEGs in two classes (the two photos), random crops of 300-450 x 300-400 px."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for i in range(images):
        photo = photos[i % 2]
        height, width = rng.integers(300, 401), rng.integers(300, 451)
        top, left = rng.integers(0, photo.shape[0] - height + 1), rng.integers(0, photo.shape[1] - width + 1)
        folder = os.path.join(root, ("china", "flower")[i % 2])
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(photo[top:top + height, left:left + width]).save(os.path.join(folder, f"{i:05d}.jpg"),
                                                                         quality=90)
    return root


def package_pipeline(folder, dtype, fused, augmentation="crop_flip"):
    """`load_dataset`'s training pipeline, with the fused JPEG crop on or off; crop and flip alone by default."""
    crop = data._training_crop
    data._training_crop = functools.partial(crop, fused_jpeg=fused)
    try:
        ds, _ = data.load_dataset(f"folder:{folder}", "train", batch_size=BATCH, image_size=SIZE, seed=0,
                                  val_split=0.01, dtype=dtype, augmentation=augmentation)
    finally:
        data._training_crop = crop
    return ds


def previous_pipeline(folder):
    """The package's training pipeline before the fused crop, as it was written: decode every file whole, then
    shuffle, draw per-example seeds, crop, resize, flip, normalise in a map of its own, batch."""
    items = data.scan_folder(folder, 0.01, 0, False).splits["train"]
    mean, std = tf.constant(data.IMAGENET_MEAN) * 255.0, tf.constant(data.IMAGENET_STD) * 255.0

    def decode(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.ensure_shape(image, [None, None, 3]), label

    def crop(image, seed):
        begin, size = data._crop_box(tf.shape(image), seed)
        image = tf.image.resize(tf.cast(tf.slice(image, begin, size), tf.float32), (SIZE, SIZE))
        return tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])

    ds = tf.data.Dataset.from_tensor_slices(([p for p, _ in items], [label for _, label in items]))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).shuffle(len(items), seed=0)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=0).batch(2)))
    ds = ds.map(lambda ex, s: (crop(ex[0], s), ex[1]), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda image, label: ((image - mean) / std, label), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(BATCH, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def models_design_pipeline(folder):
    """tensorflow/models' way, bare: paths -> read -> shuffle -> crop-decode -> resize -> flip -> uint8 -> batch."""
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files)
    labels = [0 if "china" in p else 1 for p in paths]

    def parse(path, label):
        encoded = tf.io.read_file(path)
        shape = tf.image.extract_jpeg_shape(encoded)
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            shape, tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
            max_attempts=10, use_image_if_no_bounding_boxes=True)
        window = tf.stack([begin[0], begin[1], size[0], size[1]])
        image = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
        image = tf.image.random_flip_left_right(tf.image.resize(image, (SIZE, SIZE)))
        return tf.cast(tf.round(image), tf.uint8), label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels)).shuffle(len(paths))
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def images_per_second(ds, batches):
    """img/s over `batches` batches after one, from a new iterator of the repeated pipeline."""
    iterator = iter(ds.repeat())
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=12, help="batches timed per pipeline and round")
    parser.add_argument("--folder", default=None, help="time this folder of JPEGs instead of making one")
    args = parser.parse_args(argv)
    devices.report()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or make_folder(os.path.join(scratch, "jpegs"), args.images)
        rows = {
            "before this change, float32": previous_pipeline(folder),
            "decode whole, then crop, float32": package_pipeline(folder, "float32", fused=False),
            "decode whole, then crop, uint8": package_pipeline(folder, "uint8", fused=False),
            "fused decode-and-crop, float32": package_pipeline(folder, "float32", fused=True),
            "fused decode-and-crop, uint8": package_pipeline(folder, "uint8", fused=True),
            "fused, uint8, with the paper's color": package_pipeline(folder, "uint8", True, augmentation="paper"),
            "fused, uint8, with torchvision's": package_pipeline(folder, "uint8", True, augmentation="torchvision"),
            "tensorflow/models' design, uint8": models_design_pipeline(folder),
        }
        results = {name: [] for name in rows}
        for _ in range(args.rounds):
            for name, ds in rows.items():
                results[name].append(images_per_second(ds, args.batches))
    base = statistics.median(results["before this change, float32"])
    cores = os.cpu_count()
    print(f"folder of {args.images} JPEGs, batch {BATCH}, {SIZE} px, {args.rounds} rounds x {args.batches} batches, "
          f"{cores} cores (median img/s)")
    print(f"{'pipeline':36s} {'img/s':>8s} {'per core':>9s} {'x before':>8s}")
    for name, speeds in results.items():
        speed = statistics.median(speeds)
        print(f"{name:36s} {speed:8.0f} {speed / cores:9.0f} {speed / base:8.2f}")


if __name__ == "__main__":
    main()

"""Input pipelines: tfds (with mock data), ImageNet crops, image folders, and their errors."""

import numpy as np
import pytest

from keras_resnext import data


@pytest.mark.parametrize("name,shape,classes", [("cifar10", (8, 32, 32, 3), 10), ("cifar100", (8, 32, 32, 3), 100)])
def test_tfds_cifar_pipelines_with_mock_data(name, shape, classes):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=20):
        train, info = data.load_dataset(name, "train", batch_size=8, seed=3, download=True)
        test, _ = data.load_dataset(name, "test", batch_size=8, download=True)
        x, y = next(iter(train))
        xt, _ = next(iter(test))
    assert info.num_classes == classes and x.shape == shape and xt.shape == shape
    assert x.dtype == "float32" and y.shape == (8,)


def test_imagenet_pipeline_crops_to_224_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        train, info = data.load_dataset("imagenet2012", "train", batch_size=2, seed=0, download=True)
        val, _ = data.load_dataset("imagenet2012", "validation", batch_size=2, crop_pct=0.95, download=True)
        assert next(iter(train))[0].shape == (2, 224, 224, 3)
        assert next(iter(val))[0].shape == (2, 224, 224, 3)
    assert info.num_classes == 1000


def test_unprepared_tfds_data_gives_instructions(tmp_path):
    with pytest.raises(ValueError, match="downloads/manual"):
        data.load_dataset("imagenet2012", "train", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="tfds build cifar10"):
        data.load_dataset("cifar10", "train", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load_dataset("mnist-ish", "train")


def test_image_folder_dataset(tmp_path):
    import tensorflow as tf

    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                image = np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype="uint8")
                (folder / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    train, info = data.load_dataset(f"folder:{tmp_path}", "train", batch_size=4, image_size=64, seed=0)
    x, y = next(iter(train))
    assert info.class_names == ("cat", "dog") and x.shape == (4, 64, 64, 3)


def test_the_evaluation_split_is_validation_for_imagenet_only():
    assert data.eval_split("imagenet2012") == "validation"
    assert data.eval_split("cifar10") == data.eval_split("digits") == data.eval_split("folder:x") == "test"


def _jpegs(count, seed=0):
    """Encoded JPEGs cut from scikit-learn's photos, of every kind the crop meets: 4:2:0, 4:2:2 and 4:4:4
    RGB (cameras write 4:2:0), grayscale and CMYK; each `(bytes, kind)`."""
    import io

    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    kinds = [("RGB", 2), ("RGB", 1), ("RGB", 0), ("L", 0), ("CMYK", 2)]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        photo, (mode, subsampling) = photos[i % 2], kinds[i % len(kinds)]
        height, width = rng.integers(60, 300, 2)
        top, left = rng.integers(0, photo.shape[0] - height), rng.integers(0, photo.shape[1] - width)
        buffer = io.BytesIO()
        Image.fromarray(photo[top:top + height, left:left + width]).convert(mode).save(
            buffer, "JPEG", quality=90, subsampling=subsampling)
        out.append((buffer.getvalue(), f"{mode} {subsampling}"))
    return out


def test_the_fused_jpeg_crop_decodes_exactly_the_pixels_of_a_full_decode():
    """The box from the header is the box from the decoded image, and decoding only it gives its very pixels,
    for every chroma subsampling, grayscale and CMYK: training sees what it saw when every JPEG was decoded whole."""
    import tensorflow as tf

    for i, (encoded, kind) in enumerate(_jpegs(25)):
        data_ = tf.constant(encoded)
        for s in range(8):
            seed = tf.constant([i, s], tf.int64)
            fused = data._training_crop(data_, 48, seed)
            whole = data._training_crop(data_, 48, seed, fused_jpeg=False)
            assert fused.dtype == whole.dtype == tf.float32 and fused.shape == (48, 48, 3)
            np.testing.assert_array_equal(fused, whole, err_msg=f"{kind}, seed {s}")


def test_the_crop_boxes_follow_the_inception_distribution_and_the_seed():
    """8%-100% of the area (up to the whole image when 10 draws miss), aspect 3/4 to 4/3, the same box for the
    same seed, over 2,000 draws on a 300x400 image."""
    import tensorflow as tf

    shape = tf.constant([300, 400, 3])
    areas, aspects = [], []
    for i in range(2000):
        begin, size = data._crop_box(shape, tf.constant([7, i], tf.int64))
        again, same = data._crop_box(shape, tf.constant([7, i], tf.int64))
        assert (begin.numpy() == again.numpy()).all() and (size.numpy() == same.numpy()).all()
        (top, left, _), (height, width, _) = begin.numpy(), size.numpy()
        assert 0 <= top and top + height <= 300 and 0 <= left and left + width <= 400
        areas.append(height * width / (300 * 400))
        aspects.append(width / height)
    areas, aspects = np.array(areas), np.array(aspects)
    drawn = areas < 1  # the fallback is the whole image
    assert drawn.mean() > 0.8 and areas.min() >= 0.08 - 0.01
    assert aspects[drawn].min() >= 0.75 * 0.97 and aspects[drawn].max() <= 4 / 3 * 1.03
    assert 0.3 < np.median(areas[drawn]) < 0.7  # spread over the range, not at one end


def _mixed_folder(root):
    """Two classes of JPEGs of every kind, a PNG and a WebP among them."""
    import tensorflow as tf

    for i, (encoded, _) in enumerate(_jpegs(20)):
        folder = root / ("a", "b")[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.jpg").write_bytes(encoded)
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype="uint8")
    (root / "a" / "png.png").write_bytes(tf.io.encode_png(image).numpy())
    from PIL import Image

    Image.fromarray(image).save(root / "b" / "webp.webp")
    return root


def test_a_seeded_folder_pipeline_is_deterministic_and_uint8_is_its_float32_before_normalising(tmp_path):
    root = _mixed_folder(tmp_path / "pictures")
    options = dict(batch_size=4, image_size=64, seed=3, val_split=0.2)

    def batches(**more):
        ds, info = data.load_dataset(f"folder:{root}", "train", **options, **more)
        return [(x.numpy(), y.numpy()) for x, y in ds], info

    floats, info = batches()
    again, _ = batches()
    raw, _ = batches(dtype="uint8")
    assert len(floats) == len(raw) == 4  # 17 training pictures, batches of 4
    mean, std = np.array(info.mean) * 255, np.array(info.std) * 255
    for (x, y), (x2, y2), (r, yr) in zip(floats, again, raw):
        np.testing.assert_array_equal(x, x2)
        assert (y == y2).all() and (y == yr).all() and x.dtype == np.float32 and r.dtype == np.uint8
        # The same pixels, rounded: the color jitter's values past 0 or 255 clipped, which float32 keeps.
        assert np.abs(np.clip(x * std + mean, 0, 255) - r).max() <= 0.5 + 1e-3
    test, _ = data.load_dataset(f"folder:{root}", "test", batch_size=8, image_size=64, dtype="uint8")
    assert next(iter(test))[0].dtype == "uint8"
    with pytest.raises(ValueError, match="`dtype` must be one of"):
        data.load_dataset(f"folder:{root}", "train", dtype="float16")


def test_imagenet_is_read_without_decoding_and_cropped_from_the_file_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        train, _ = data.load_dataset("imagenet2012", "train", batch_size=2, seed=0, download=True, dtype="uint8")
        images, labels = next(iter(train))
    assert images.dtype == "uint8" and images.shape == (2, 224, 224, 3) and labels.shape == (2,)

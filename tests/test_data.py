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

"""The paper's recipes, weight decay, fine-tuning and precision helpers."""

import keras
import numpy as np
import pytest

from keras_resnext import training


def test_recipes_follow_the_paper():
    optimizer, loss = training.cifar_recipe(steps_per_epoch=100, epochs=300, batch_size=128)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(150 * 100 + 1)) == pytest.approx(0.01)
    assert float(schedule(225 * 100 + 1)) == pytest.approx(0.001)
    assert optimizer.weight_decay == pytest.approx(5e-4) and optimizer.momentum == pytest.approx(0.9)
    optimizer, _ = training.imagenet_recipe(steps_per_epoch=10, epochs=100, batch_size=512, warmup_epochs=5)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.2 / 50)  # warming up to 0.1 * 512 / 256
    assert float(schedule(60)) == pytest.approx(0.2)
    assert float(schedule(10 * 45)) == pytest.approx(0.02)  # / 10 at 30% of 100 epochs
    assert float(schedule(10 * 65)) == pytest.approx(0.002)  # and at 60%
    _, smooth = training.imagenet_recipe(10, label_smoothing=0.1)
    assert smooth.get_config()["label_smoothing"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule"):
        training.imagenet_recipe(10, schedule="linear")


def test_weight_decay_skips_batchnorm_and_biases():
    optimizer, _ = training.cifar_recipe(steps_per_epoch=1, epochs=1)  # lr 0.1, wd 5e-4
    kernel, gamma, bias = (keras.Variable(np.ones(3, "float32"), name=n) for n in ("kernel", "gamma", "bias"))
    optimizer.apply_gradients([(np.zeros(3, "float32"), v) for v in (kernel, gamma, bias)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), 1 - 0.1 * 5e-4, rtol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(gamma), 1.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bias), 1.0)


def test_finetune_freezes_the_backbone_and_keeps_batchnorm_in_inference(fixtures_dir):
    import keras_resnext as kr

    model = training.finetune_model(kr.ResNeXt50, 5, weights=None, input_shape=(64, 64, 3))
    trainable = [layer.name for layer in model.layers if layer.trainable_weights]
    assert trainable == ["predictions"]
    block = model.get_layer("stage1_block1")
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 64)).astype("float32")
    np.testing.assert_allclose(block(x, training=True), block(x, training=False), atol=1e-5)
    training.set_backbone_trainable(model, True)
    assert len(model.trainable_weights) > 100


def test_precision_auto_is_float32_on_cpu():
    try:
        assert training.set_precision("auto") == "float32"
        assert training.set_precision("mixed_bfloat16") == "mixed_bfloat16"
        import keras_resnext as kr

        model = kr.ResNeXt((1,), 2, 4, classes=3, input_shape=(32, 32, 3))
        assert model.get_layer("predictions").dtype_policy.name == "float32"  # float32 head
        with pytest.raises(ValueError, match="Unknown precision"):
            training.set_precision("int8")
    finally:
        keras.config.set_dtype_policy("float32")

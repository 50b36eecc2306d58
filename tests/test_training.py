"""The paper's recipes, weight decay, fine-tuning and precision helpers."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import ENV
from keras_resnext import devices, training


def test_recipes_follow_the_paper():
    optimizer, loss = training.cifar_recipe(steps_per_epoch=100, epochs=300, batch_size=128)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(150 * 100 + 1)) == pytest.approx(0.01)
    assert float(schedule(225 * 100 + 1)) == pytest.approx(0.001)
    assert optimizer.weight_decay == pytest.approx(5e-4) and optimizer.momentum == pytest.approx(0.9)
    assert isinstance(optimizer, training.TorchSGD) and optimizer.nesterov  # the paper's step
    assert float(schedule(150 * 100 - 1)) == pytest.approx(0.1)  # the drop lands on step 150 * 100, as PyTorch's
    assert float(schedule(150 * 100)) == pytest.approx(0.01)
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


@pytest.mark.parametrize("label_smoothing", [1.0, 2, -0.1, float("nan"), "0.1"])
def test_label_smoothing_outside_zero_to_one_is_refused_by_every_recipe(label_smoothing):
    from keras_resnext import recipes

    message = r"`label_smoothing` must be a fraction in \[0, 1\)"
    for make in (lambda: training.cifar_recipe(10, label_smoothing=label_smoothing),
                 lambda: training.imagenet_recipe(10, label_smoothing=label_smoothing),
                 lambda: training.torchvision_recipe(10, epochs=10, label_smoothing=label_smoothing),
                 lambda: recipes.PaperRecipe(label_smoothing=label_smoothing),
                 lambda: recipes.TorchvisionRecipe(label_smoothing=label_smoothing)):
        with pytest.raises(ValueError, match=message):
            make()


def test_the_papers_weight_decay_reaches_every_parameter_and_the_decoupled_one_skips_batchnorm_and_biases():
    def first_step(optimizer):
        kernel, gamma, bias = (keras.Variable(np.ones(3, "float32"), name=n) for n in ("kernel", "gamma", "bias"))
        optimizer.apply_gradients([(np.zeros(3, "float32"), v) for v in (kernel, gamma, bias)])
        return [keras.ops.convert_to_numpy(v) for v in (kernel, gamma, bias)]

    # lr 0.1, wd 5e-4. The paper's step: g = wd * w through the nesterov momentum, w -= lr * (g + 0.9 * g).
    for value in first_step(training.cifar_recipe(steps_per_epoch=10, epochs=1)[0]):
        np.testing.assert_allclose(value, 1 - 0.1 * 5e-4 * 1.9, rtol=1e-6)
    kernel, gamma, bias = first_step(training.cifar_recipe(steps_per_epoch=10, epochs=1, optimizer="decoupled")[0])
    np.testing.assert_allclose(kernel, 1 - 0.1 * 5e-4, rtol=1e-6)  # w -= lr * wd * w, outside the momentum
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(bias, 1.0)


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


AVX2 = {"avx2", "fma"}
AVX512_BF16 = AVX2 | {"avx512f", "avx512_vnni", "avx512_bf16"}  # AMD EPYC (Zen 4 and later)
AMX = AVX512_BF16 | {"amx_bf16", "amx_int8", "amx_tile"}  # Intel Xeon (Sapphire Rapids and later)


@pytest.mark.parametrize("device, flags, onednn, expected", [
    ("gpu", AVX2, True, "mixed_float16"),
    ("tpu", AVX2, True, "mixed_bfloat16"),
    (None, AVX2, True, "float32"),  # bfloat16 emulated: slower than float32
    (None, AVX512_BF16, True, "mixed_bfloat16"),
    (None, AMX, True, "mixed_bfloat16"),
    (None, AVX512_BF16, False, "float32"),  # TensorFlow's own kernels, without oneDNN's bfloat16 ones
])
def test_auto_training_precision_is_bfloat16_where_the_cpu_has_it(monkeypatch, device, flags, onednn, expected):
    monkeypatch.setattr(devices, "accelerator", lambda: device)
    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    monkeypatch.setattr(devices, "tf_onednn_enabled", lambda: onednn)
    monkeypatch.setattr(devices, "amx_usable", lambda: ("amx_tile" in flags, "yes" if "amx_tile" in flags else "no"))
    policy, why = devices.training_precision()
    assert policy == expected and why
    assert why.startswith("AMX") == (flags is AMX)  # says which unit makes bfloat16 fast
    try:
        assert training.set_precision("auto") == expected == keras.config.dtype_policy().name
    finally:
        keras.config.set_dtype_policy("float32")
    info = dict(devices.facts())
    assert info["training precision 'auto'"] == f"{policy} ({why})"


def test_onednn_held_below_bfloat16_keeps_float32(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 leaves oneDNN no bfloat16 convolution at all: auto must not pick it."""
    monkeypatch.setattr(devices, "accelerator", lambda: None)
    monkeypatch.setattr(devices, "cpu_flags", lambda: AVX512_BF16)
    monkeypatch.setattr(devices, "tf_onednn_enabled", lambda: True)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not devices.cpu_has_native_bf16() and devices.training_precision()[0] == "float32"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_bf16")
    assert devices.cpu_has_native_bf16() and devices.training_precision()[0] == "mixed_bfloat16"


def test_precision_names_a_policy_and_the_head_stays_float32():
    try:
        assert training.set_precision("mixed_bfloat16") == "mixed_bfloat16"
        import keras_resnext as kr

        model = kr.ResNeXt((1,), 2, 4, classes=3, input_shape=(32, 32, 3))
        assert model.get_layer("predictions").dtype_policy.name == "float32"  # float32 head
        with pytest.raises(ValueError, match="Unknown precision"):
            training.set_precision("int8")
    finally:
        keras.config.set_dtype_policy("float32")


def _sgd_reference():
    import json

    from helpers import FIXTURES

    return dict(np.load(FIXTURES / "tv_resnext_sgd.npz")), json.loads((FIXTURES / "tv_resnext_sgd.json").read_text())


def _replay(optimizer, reference, meta):
    """PyTorch's recorded gradients through `optimizer` from PyTorch's start, in the tiny model's own variables.

    The relative error of every kept tensor after every checkpoint step, `{(step, torch key): error}`.
    """
    import keras_resnext as kr
    from keras_resnext.weights import torch_layout

    model = kr.ResNeXt((1, 1, 1, 1), cardinality=4, bottleneck_width=4, classes=3, input_shape=(64, 64, 3))
    variables = torch_layout.layout(model)

    def keras_value(key, value):
        _, to_keras, _ = variables[key]
        return to_keras(value) if to_keras else value

    kept = [(key, variables[key][0]) for key in meta["kept"]]
    for key, variable in kept:
        variable.assign(keras_value(key, reference[f"start/{key}"]))
    errors = {}
    for step in range(meta["steps"]):
        optimizer.apply_gradients([(keras_value(key, reference[f"grad{step}/{key}"]), v) for key, v in kept])
        if step + 1 in meta["checkpoints"]:
            for key, variable in kept:
                expected = keras_value(key, reference[f"after{step + 1}/{key}"])
                errors[step + 1, key] = float(np.abs(keras.ops.convert_to_numpy(variable) - expected).max()
                                              / np.abs(expected).max())
    return errors


@pytest.mark.portable
def test_the_recipes_step_is_pytorchs_to_the_digit():
    reference, meta = _sgd_reference()
    lr = reference["lr"]  # 0.05 for steps 0..5, then 0.005: a drop at step 6
    schedule = training.MultiStepDecay(float(lr[0]), [6])
    assert [float(schedule(step)) for step in range(len(lr))] == pytest.approx(lr.tolist())
    errors = _replay(training.sgd(schedule, weight_decay=5e-4), reference, meta)
    assert len(errors) == len(meta["checkpoints"]) * len(meta["kept"])
    assert max(errors.values()) < 1e-5, max(errors.items(), key=lambda item: item[1])
    # Keras' SGD (the "decoupled" choice) takes another step: far off after the first one.
    keras_sgd = _replay(training.sgd(schedule, weight_decay=5e-4, optimizer="decoupled"), reference, meta)
    assert max(error for (step, _), error in keras_sgd.items() if step == 1) > 0.1


def test_torch_sgd_round_trips_its_config_and_rejects_bad_arguments():
    optimizer = training.TorchSGD(training.MultiStepDecay(0.1, [3, 5]), momentum=0.9, nesterov=True,
                                  weight_decay=1e-4)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, training.TorchSGD) and again.nesterov and again.momentum == pytest.approx(0.9)
    assert again.weight_decay == pytest.approx(1e-4)
    assert float(again._learning_rate(5)) == pytest.approx(0.001)
    with pytest.raises(ValueError, match="momentum"):
        training.TorchSGD(momentum=1.5)
    with pytest.raises(ValueError, match="Nesterov"):
        training.TorchSGD(momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="increasing"):
        training.MultiStepDecay(0.1, [5, 3])
    with pytest.raises(ValueError, match="`optimizer` must be one of \\('paper', 'decoupled'\\)"):
        training.sgd(0.1, 1e-4, optimizer="adam")


def _small_model_and_data():
    import keras_resnext as kr

    model = kr.ResNeXt((1,), 2, 4, classes=3, input_shape=(32, 32, 3))
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(8, 32, 32, 3)).astype("float32"), rng.integers(0, 3, 8)


def _buffers(optimizer):
    return [keras.ops.convert_to_numpy(v) for v in optimizer.momentum_buffers]


def test_torch_sgd_momentum_survives_the_saved_model_and_the_backup(tmp_path):
    model, x, y = _small_model_and_data()
    model.compile(optimizer=training.TorchSGD(0.1, nesterov=True, weight_decay=1e-4),
                  loss="sparse_categorical_crossentropy")
    backup = tmp_path / "backup"
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[training.AtomicBackupAndRestore(str(backup))])
    buffers = _buffers(model.optimizer)
    assert len(buffers) == len(model.trainable_weights) and any(np.abs(b).max() > 0 for b in buffers)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, training.TorchSGD) and loaded.optimizer.nesterov
    for saved, restored in zip(buffers, _buffers(loaded.optimizer)):
        np.testing.assert_array_equal(saved, restored)
    # A killed run's rerun: a fresh model and optimizer resume from the backup with its momentum.
    fresh, _, _ = _small_model_and_data()
    fresh.compile(optimizer=training.TorchSGD(0.1, nesterov=True, weight_decay=1e-4),
                  loss="sparse_categorical_crossentropy")
    fresh.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[training.AtomicBackupAndRestore(str(backup))])
    assert int(fresh.optimizer.iterations) == 2  # nothing left to train: the backup's 2 steps
    for saved, restored in zip(buffers, _buffers(fresh.optimizer)):
        np.testing.assert_array_equal(saved, restored)


LOAD_AFTER_THE_PACKAGE_ALONE = """
import sys, keras, keras_resnext
model = keras.models.load_model(sys.argv[1])
print(type(model.optimizer).__name__, type(model.optimizer._learning_rate).__name__,
      type(model.optimizer._learning_rate.schedule).__name__)
"""


def test_a_model_saved_with_the_recipes_optimizer_loads_after_importing_the_package_alone(tmp_path):
    """A new process: `import keras_resnext`, then `load_model`, without importing the optimizer's module by hand."""
    model, x, y = _small_model_and_data()
    optimizer, loss = training.imagenet_recipe(steps_per_epoch=2, epochs=4, batch_size=4, warmup_epochs=1)
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = subprocess.run([sys.executable, "-c", LOAD_AFTER_THE_PACKAGE_ALONE, str(tmp_path / "m.keras")],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split() == ["TorchSGD", "WarmupSchedule", "MultiStepDecay"]


def test_a_backup_of_another_optimizer_is_refused_not_resumed_with_the_wrong_momentum(tmp_path):
    import json

    model, x, y = _small_model_and_data()
    model.compile(optimizer=training.sgd(0.1, 1e-4, optimizer="decoupled"), loss="sparse_categorical_crossentropy")
    backup = tmp_path / "backup"
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[training.AtomicBackupAndRestore(str(backup))])
    metadata = json.loads((backup / "training_metadata.json").read_text())
    assert metadata["optimizer"] == "SGD"
    # Older versions recorded no optimizer: their backups hold Keras' SGD velocity.
    del metadata["optimizer"]
    (backup / "training_metadata.json").write_text(json.dumps(metadata))

    def resume(optimizer, epochs=2):
        fresh, _, _ = _small_model_and_data()
        fresh.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        fresh.fit(x, y, batch_size=4, epochs=epochs, verbose=0,
                  callbacks=[training.AtomicBackupAndRestore(str(backup))])
        return fresh

    with pytest.raises(ValueError, match="holds the state of Keras' SGD .*not of this run's keras_resnext>TorchSGD"
                                         ".*--optimizer decoupled.*--overwrite"):
        resume(training.sgd(0.1, 1e-4))
    resumed = resume(training.sgd(0.1, 1e-4, optimizer="decoupled"))  # the optimizer it started with resumes
    assert int(resumed.optimizer.iterations) == 4
    with pytest.raises(ValueError, match="holds the state of optimizer SGD, not of this run's keras_resnext>TorchSGD"):
        resume(training.sgd(0.1, 1e-4), epochs=3)  # a recorded optimizer is checked too

"""int8 inference behind `predict`: `kr.inference_model(model, "int8", calibration_data=...)` and the CLI's `--precision int8`."""

import json
import sys
import warnings

import keras
import numpy as np
import pytest

import keras_resnext as kr
from helpers import FIXTURES, TINY, command
from keras_resnext import cli as command_line
from keras_resnext import data, devices, int8, jobs

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="int8 converts with TensorFlow")


@pytest.fixture(scope="module")
def digits_run(main_job):
    """The main job's model, its digits test split as arrays, and an int8 predictor calibrated on its training data."""
    model = keras.models.load_model(main_job / "model.keras")
    test, _ = data.load_dataset("digits", "test", batch_size=128, training=False, image_size=32)
    x = np.concatenate([keras.ops.convert_to_numpy(images) for images, _ in test])
    y = np.concatenate([keras.ops.convert_to_numpy(labels) for _, labels in test])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = kr.inference_model(model, "int8", calibration_data=jobs.calibration_data("digits", model, 512))
    # Calibrated on its own training data, int8 agrees: no agreement warning. LiteRT on a CPU without VNNI
    # gets its own, which names the faster engine.
    assert not [w for w in caught if "agrees with float32" in str(w.message)]
    slow_engine = predictor.engine == "litert" and not devices.cpu_has_int8_dot_products()
    assert len([w for w in caught if w.category is UserWarning]) == int(slow_engine)  # not tf2onnx's FutureWarning
    return model, x, y, predictor


def test_int8_keeps_the_main_jobs_accuracy_and_agrees_with_float32(digits_run):
    model, x, y, predictor = digits_run
    reference = model.predict(x, verbose=0)
    outputs = predictor.predict(x, verbose=0)
    assert outputs.shape == reference.shape and outputs.dtype == np.float32
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, atol=0.02)  # the model's softmax output, as predict gives
    float_accuracy, int8_accuracy = np.mean(reference.argmax(1) == y), np.mean(outputs.argmax(1) == y)
    assert int8_accuracy >= float_accuracy - 0.01, (int8_accuracy, float_accuracy)
    assert np.mean(outputs.argmax(1) == reference.argmax(1)) >= 0.985
    assert predictor.agreement >= int8.MIN_AGREEMENT  # measured on the 102 held-out calibration images
    assert predictor.name == f"{model.name}_int8" and not isinstance(predictor, keras.Model)


def test_the_other_engine_keeps_the_main_jobs_accuracy_and_nan_in_gives_nan_out(digits_run):
    """The fixture's predictor runs on the engine "auto" picks here; this one on the other, so both are tested."""
    model, x, y, chosen = digits_run
    assert chosen.engine == devices.fastest_int8_engine()[0]
    other = "litert" if chosen.engine == "openvino" else "openvino"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LiteRT's notice on a CPU without VNNI
        predictor = kr.inference_model(model, "int8", calibration_data=jobs.calibration_data("digits", model, 512),
                                       engine=other)
    assert predictor.engine == other
    assert repr(predictor).startswith(f"<Int8Predictor '{model.name}_int8', engine='{other}', agreement=")
    reference, outputs = model.predict(x, verbose=0), predictor.predict(x, verbose=0)
    assert outputs.shape == reference.shape and outputs.dtype == np.float32
    assert np.mean(outputs.argmax(1) == y) >= np.mean(reference.argmax(1) == y) - 0.01
    assert np.mean(outputs.argmax(1) == reference.argmax(1)) >= 0.985
    assert predictor.agreement >= int8.MIN_AGREEMENT
    np.testing.assert_array_equal(predictor.predict(x[:50], batch_size=7, verbose=0), outputs[:50])  # any batch
    broken = x[:3].copy()
    broken[1, 0, 0, 1] = np.nan
    assert np.isnan(predictor(broken)[1]).all() and np.isfinite(predictor(broken)[[0, 2]]).all()


def test_auto_takes_the_engine_measured_fastest_on_each_cpu_kind(monkeypatch):
    kinds = {  # CPU flags, AMX usable: the engine BENCHMARKS.md shows fastest there
        "Intel Xeon with AMX": ({"avx2", "avx512_vnni", "amx_tile", "amx_int8"}, True, "openvino"),
        "AMD EPYC with AVX-512 VNNI": ({"avx2", "avx512f", "avx512_vnni"}, False, "litert"),
        "AMD EPYC with AVX2 only": ({"avx2", "fma"}, False, "openvino"),
    }
    for kind, (flags, amx, fastest) in kinds.items():
        monkeypatch.setattr(devices, "cpu_flags", lambda flags=flags: flags)
        monkeypatch.setattr(devices, "amx_usable", lambda amx=amx: (amx, "yes" if amx else "no"))
        assert devices.fastest_int8_engine()[0] == fastest, kind
        with monkeypatch.context() as without:
            without.setitem(sys.modules, "openvino", None)  # not installed: import fails
            engine, why = devices.fastest_int8_engine()
            assert engine == "litert", kind
            assert fastest == "litert" or "pip install 'keras-resnext[openvino]'" in why
    assert any(name == "int8 engine 'auto'" and value.startswith("openvino (") for name, value in devices.facts())


def test_without_openvino_the_openvino_engine_is_one_clear_error_and_auto_still_works(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_int8_dot_products", lambda: True)
    monkeypatch.setattr(devices, "amx_usable", lambda: (True, "yes"))
    monkeypatch.setitem(sys.modules, "openvino", None)
    model = kr.ResNeXt(**TINY, classes=10, input_shape=(32, 32, 3))
    images = np.random.default_rng(0).uniform(-1, 1, (10, 32, 32, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"engine='openvino' needs OpenVINO: pip install 'keras-resnext\[openvino\]'"):
        kr.inference_model(model, "int8", calibration_data=images, engine="openvino")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the agreement of an untrained model
        assert kr.inference_model(model, "int8", calibration_data=images).engine == "litert"
    with pytest.raises(ValueError, match="engine"):
        kr.inference_model(model, "int8", calibration_data=images, engine="tensorrt")
    with pytest.raises(ValueError, match="engine is for precision='int8' only"):
        kr.inference_model(model, "float32", engine="litert")


def test_predict_takes_arrays_datasets_and_any_batch_size_with_the_same_outputs(digits_run, capsys):
    import tensorflow as tf

    _, x, y, predictor = digits_run
    x = x[:100]
    expected = predictor.predict(x, verbose=0)  # batches of 32: 32, 32, 32, 4
    np.testing.assert_array_equal(predictor.predict(x, batch_size=7, verbose=0), expected)  # 14 x 7 + 2
    np.testing.assert_array_equal(predictor(x[:13]), expected[:13])
    images_only = tf.data.Dataset.from_tensor_slices(x).batch(9)
    labelled = tf.data.Dataset.from_tensor_slices((x, y[:100])).batch(25)
    np.testing.assert_array_equal(predictor.predict(images_only, verbose=0), expected)
    capsys.readouterr()
    np.testing.assert_array_equal(predictor.predict(labelled), expected)  # verbose="auto": a progress bar
    assert "4/4" in capsys.readouterr().out


def test_an_image_with_nan_or_inf_gets_nan_as_from_the_float_model(digits_run):
    model, x, _, predictor = digits_run
    broken = x[:4].copy()
    broken[1, 3, 3, 0], broken[2, 0, 0, 2] = np.nan, np.inf
    outputs = predictor(broken)
    assert np.isnan(outputs[1]).all() and np.isnan(outputs[2]).all()
    assert np.isfinite(outputs[[0, 3]]).all()
    np.testing.assert_array_equal(np.isnan(model.predict(broken, verbose=0)), np.isnan(outputs))


def test_low_agreement_warns_in_one_line_with_the_figure(monkeypatch):
    model = kr.ResNeXt(**TINY, classes=10, input_shape=(32, 32, 3), weights=FIXTURES / "tv_resnext_tiny.safetensors")
    monkeypatch.setattr(int8, "MIN_AGREEMENT", 1.01)  # no model reaches it: the warning must come
    calibration = np.random.default_rng(0).uniform(-1, 1, (20, 32, 32, 3)).astype("float32")
    monkeypatch.setattr(devices, "cpu_has_int8_dot_products", lambda: True)
    with pytest.warns(UserWarning, match=r"^int8 agrees with float32 on the top-1 class of \d+\.\d% of 4 held-out"):
        predictor = kr.inference_model(model, "int8", calibration_data=calibration)
    assert 0 <= predictor.agreement <= 1


def test_litert_on_a_cpu_without_int8_dot_products_names_the_faster_engine(monkeypatch):
    model = kr.ResNeXt(**TINY, classes=10, input_shape=(32, 32, 3))
    images = np.random.default_rng(0).uniform(-1, 1, (10, 32, 32, 3)).astype("float32")
    monkeypatch.setattr(int8, "MIN_AGREEMENT", 0)  # an untrained model's agreement is not this test's
    monkeypatch.setattr(devices, "cpu_has_int8_dot_products", lambda: False)
    with pytest.warns(UserWarning, match=r"no int8 dot products \(VNNI or AMX\), where LiteRT's int8 is little "
                                         r"faster .* use engine='openvino'"):
        kr.inference_model(model, "int8", calibration_data=images, engine="litert")
    monkeypatch.setattr(devices, "cpu_has_int8_dot_products", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kr.inference.resolve_precision("int8") == "int8"
        kr.inference_model(model, "int8", calibration_data=images, engine="litert")


def test_bad_int8_requests_say_what_to_pass(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_int8_dot_products", lambda: True)
    model = kr.ResNeXt(**TINY, classes=10, input_shape=(32, 32, 3))
    images = np.zeros((8, 32, 32, 3), "float32")
    with pytest.raises(ValueError, match="needs calibration_data: a few hundred images preprocessed"):
        kr.inference_model(model, "int8")
    with pytest.raises(ValueError, match="calibration_data is for precision='int8' only"):
        kr.inference_model(model, "float32", calibration_data=images)
    with pytest.raises(ValueError, match=r"calibration images must have shape \(N, 32, 32, 3\)"):
        kr.inference_model(model, "int8", calibration_data=np.zeros((8, 64, 64, 3), "float32"))
    assert kr.inference.resolve_precision("auto") != "int8"  # never picked unasked
    predictor = kr.inference_model(model, "int8", calibration_data=images)
    with pytest.raises(ValueError, match=r"takes batches of shape \(N, 32, 32, 3\); got \(32, 32, 3\)"):
        predictor(images[0])
    with pytest.raises(ValueError, match="Do not pass batch_size with a dataset"):
        predictor.predict(iter([images]), batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        predictor.predict(images, batch_size=0)
    with pytest.raises(TypeError, match="not a keras.Model"):
        predictor.fit(images, np.zeros(8))


def test_the_cli_evaluates_and_predicts_in_int8_calibrating_on_the_runs_training_data(main_job, tmp_path):
    result = command("evaluate", str(main_job / "model.keras"), "--precision", "int8")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["precision"] == "int8" and report["int8_engine"] == devices.fastest_int8_engine()[0]
    assert report["test_accuracy"] >= report["float32_test_accuracy"] - 0.01
    assert report["top1_agreement"] >= 0.985 and report["calibration_agreement"] >= 0.99

    folder = tmp_path / "digits"
    folder.mkdir()
    test, _ = data.load_dataset("digits", "test", batch_size=4, training=False, image_size=32)
    images, _ = next(iter(test))
    for i, image in enumerate(keras.ops.convert_to_numpy(images)):
        keras.utils.save_img(folder / f"{i}.png", (image - image.min()) / (image.max() - image.min()) * 255,
                             scale=False)
    predicted = command("predict", str(folder), "--model-file", str(main_job / "model.keras"), "--precision", "int8",
                        "--calibration-images", "64", "--csv", str(tmp_path / "p.csv"))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert predicted.stdout.count("%") == 4 * 5  # top 5 of each image


def test_int8_on_a_model_without_a_run_needs_a_calibration_set(capsys, tmp_path):
    image = tmp_path / "x.png"
    keras.utils.save_img(image, np.zeros((8, 8, 3)))
    model_file = tmp_path / "m.keras"
    kr.ResNeXt(**TINY, classes=10, input_shape=(32, 32, 3)).save(model_file)  # no run folder beside it
    status = command_line.main(["predict", str(image), "--model-file", str(model_file), "--precision", "int8"])
    assert status == 2
    assert "--precision int8 needs --calibration DATASET" in capsys.readouterr().err

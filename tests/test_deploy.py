"""Fast deployment: bfloat16 / float16 inference models, int8 ONNX, LiteRT, and serving from image bytes."""

import sys
import warnings

import keras
import numpy as np
import pytest

import keras_resnext as kr
from helpers import FIXTURES, TINY, command
from keras_resnext import devices, export

sys.path.insert(0, str(FIXTURES.parents[1] / "benchmarks"))
import deploy_accuracy  # noqa: E402

TF_ONLY = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="exports trace with TensorFlow")
GROUPED_CONVS_IN_TINY = 4  # one 3x3 grouped conv per block, four blocks


def tiny():
    return kr.ResNeXt(**TINY, classes=10, classifier_activation=None, input_shape=(64, 64, 3),
                      weights=FIXTURES / "tv_resnext_tiny.safetensors")


@pytest.mark.portable
@pytest.mark.parametrize("precision, tolerance", [("float32", 1e-5), ("bfloat16", 0.02), ("float16", 0.005)])
def test_an_inference_model_keeps_the_weights_and_matches_torchvision(precision, tolerance, tiny_io):
    model = tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 on a CPU without it warns that it is slow
        fast = kr.inference_model(model, precision)
    assert fast is not model and fast.get_layer("predictions").compute_dtype == "float32"
    assert fast.get_layer("stage2_block1").compute_dtype == precision
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), fast.get_weights()))
    logits = fast.predict(tiny_io["x_nhwc_64"], verbose=0)
    assert logits.dtype == np.float32
    # The stated tolerance: the largest logit error as a fraction of the largest logit.
    scale = np.abs(tiny_io["logits_64"]).max()
    assert np.abs(logits - tiny_io["logits_64"]).max() <= tolerance * scale


@pytest.mark.portable
def test_auto_precision_follows_the_hardware_and_bad_precisions_are_refused(monkeypatch):
    monkeypatch.setattr(devices, "accelerator", lambda: None)
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert kr.inference.resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert kr.inference.resolve_precision("auto") == "float32"
    with pytest.warns(UserWarning, match="no native bfloat16"):
        assert kr.inference.resolve_precision("bfloat16") == "bfloat16"
    monkeypatch.setattr(devices, "accelerator", lambda: "gpu")
    assert kr.inference.resolve_precision("auto") == "float16"
    with pytest.raises(ValueError, match="`precision` must be one of"):
        kr.inference_model(tiny(), "int4")


def _grouped_litert_convs(path):
    """The CONV_2D ops of a LiteRT file whose filter sees fewer channels than its input: grouped convs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    return [op for op in interpreter._get_ops_details()
            if op["op_name"] == "CONV_2D" and shapes[op["inputs"][0]][-1] != shapes[op["inputs"][1]][-1]]


@TF_ONLY
@pytest.mark.parametrize("quantize, tolerance", [(None, 1e-4), ("dynamic", 0.05), ("int8", 0.1)])
def test_litert_keeps_every_grouped_conv_grouped(quantize, tolerance, tiny_io, tmp_path):
    calibration = np.random.default_rng(0).normal(size=(16, 64, 64, 3)).astype("float32")
    path = export.to_litert(tiny(), tmp_path / "m.tflite", quantize=quantize, representative_data=calibration)
    assert len(_grouped_litert_convs(path)) == GROUPED_CONVS_IN_TINY
    out = deploy_accuracy.litert_outputs(path, tiny_io["x_nhwc_64"])
    scale = 1 if quantize is None else np.abs(tiny_io["logits_64"]).max()
    assert np.abs(out - tiny_io["logits_64"]).max() <= tolerance * scale


@TF_ONLY
def test_litert_float_fallback_has_no_grouped_conv_and_the_same_outputs(tiny_io, tmp_path):
    path = export.to_litert(tiny(), tmp_path / "dense.tflite", grouped=False)
    assert _grouped_litert_convs(path) == []
    out = deploy_accuracy.litert_outputs(path, tiny_io["x_nhwc_64"])
    np.testing.assert_allclose(out, tiny_io["logits_64"], atol=1e-4)


@TF_ONLY
def test_int8_onnx_is_qdq_with_grouped_convs_and_close_to_float(tiny_io, tmp_path):
    calibration = np.random.default_rng(0).normal(size=(16, 64, 64, 3)).astype("float32")
    proto = export.to_onnx(tiny(), tmp_path / "m.onnx", quantize="int8", calibration_data=calibration)
    ops = [node.op_type for node in proto.graph.node]
    groups = [a.i for node in proto.graph.node if node.op_type == "Conv" for a in node.attribute if a.name == "group"]
    assert sum(g > 1 for g in groups) == GROUPED_CONVS_IN_TINY
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    out = deploy_accuracy.onnx_outputs(str(tmp_path / "m.onnx"), tiny_io["x_nhwc_64"])
    assert np.abs(out - tiny_io["logits_64"]).max() <= 0.1 * np.abs(tiny_io["logits_64"]).max()


@TF_ONLY
def test_bad_quantization_requests_are_refused_before_anything_is_written(tmp_path):
    model = tiny()
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match="int8 quantization needs calibration data"):
        export.to_onnx(model, path, quantize="int8")
    with pytest.raises(ValueError, match=r"must have shape \(N, 64, 64, 3\) as the model's input; got \(2, 32, 32, 3\)"):
        export.to_onnx(model, path, quantize="int8", calibration_data=np.zeros((2, 32, 32, 3), "float32"))
    with pytest.raises(ValueError, match="must be floating point.*got dtype uint8"):
        export.to_litert(model, tmp_path / "m.tflite", quantize="int8",
                         representative_data=np.zeros((2, 64, 64, 3), "uint8"))
    with pytest.raises(ValueError, match="`quantize` must be one of"):
        export.to_onnx(model, path, quantize="dynamic")
    with pytest.raises(ValueError, match="`quantize` must be one of"):
        export.to_litert(model, tmp_path / "m.tflite", quantize="int4")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="/proc/no/such/m.tflite"):
        export.to_litert(model, "/proc/no/such/m.tflite")


@TF_ONLY
def test_the_saved_model_serves_encoded_image_bytes(tmp_path):
    import tensorflow as tf

    model = kr.ResNeXt(**TINY, classes=10, input_shape=(64, 64, 3), weights=FIXTURES / "tv_resnext_tiny.safetensors")
    export.to_saved_model(model, tmp_path / "sm")
    served = tf.saved_model.load(str(tmp_path / "sm"))
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 80, 96, 3), dtype="uint8")
    encoded = tf.constant([tf.io.encode_png(p).numpy() for p in pixels] + [tf.io.encode_jpeg(pixels[0]).numpy()])
    from_bytes = served.signatures["serving_bytes"](image_bytes=encoded)["probabilities"].numpy()
    from_pixels = served.signatures["serving_default"](images=tf.constant(pixels))["probabilities"].numpy()
    np.testing.assert_allclose(from_bytes[:2], from_pixels, atol=1e-5)  # PNG is lossless
    assert from_bytes.shape == (3, 10) and np.allclose(from_bytes[2].sum(), 1, atol=1e-5)  # JPEG decodes too


@TF_ONLY
@pytest.mark.slow
def test_every_deployment_path_keeps_the_main_jobs_accuracy(main_job):
    rows = {r["path"]: r for r in deploy_accuracy.measure_run(str(main_job / "model.keras"))}
    deploy_accuracy.print_rows("main job on digits", rows.values())
    for name, row in rows.items():
        assert row["accuracy"] >= row["float32_accuracy"] - 0.01, row
        assert row["agreement"] >= (0.995 if "float32" in name or "bfloat16" in name else 0.98), row
    for name in ("onnx float32", "litert float32"):
        assert rows[name]["max_abs_diff"] <= 1e-4, rows[name]


@TF_ONLY
@pytest.mark.slow
def test_the_cli_exports_int8_and_evaluates_in_bfloat16(main_job, tmp_path):
    tflite = tmp_path / "m.tflite"
    result = command("export", str(main_job / "model.keras"), "--format", "litert", "--quantize", "int8",
                     "--calibration", "digits", "--calibration-images", "64", "--output", str(tflite))
    assert result.returncode == 0 and tflite.stat().st_size > 0, result.stderr[-3000:]
    assert len(_grouped_litert_convs(tflite)) > 0
    missing = command("export", str(main_job / "model.keras"), "--format", "onnx", "--quantize", "int8",
                      "--output", str(tmp_path / "m.onnx"))
    assert missing.returncode == 2 and "--quantize int8 needs --calibration" in missing.stderr
    evaluated = command("evaluate", str(main_job / "model.keras"), "--precision", "bfloat16")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    accuracy = float(evaluated.stdout.split('"test_accuracy": ')[1].split(",")[0])
    assert accuracy > 0.8

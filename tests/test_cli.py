"""The command line as a user meets it: each command's output, files and errors, in subprocesses."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from helpers import cli
from keras_resnext import data


@pytest.mark.slow
def test_evaluate_and_predict_use_the_saved_run(main_job, tmp_path):
    result = cli("evaluate", str(main_job / "model.keras"), "--dataset", "digits")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["test_accuracy"] >= 0.95
    import tensorflow as tf

    x, y = data.digits_arrays("test")
    pngs = []
    for i in range(3):
        path = tmp_path / f"digit_{y[i]}.png"
        path.write_bytes(tf.io.encode_png(x[i]).numpy())
        pngs.append(path)
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not an image")
    result = cli("predict", str(pngs[0]), str(not_image), str(pngs[1]), str(pngs[2]),
                 "--model-file", str(main_job / "model.keras"), "--top", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert f"{not_image}: error: not a readable image" in out
    top1 = [line.split()[-1] for line in out.splitlines() if line.startswith("  ")][::3]
    assert top1 == [str(label) for label in y[:3]]


def test_cli_exports_a_saved_keras_model_and_refuses_bad_options(tiny_model, tmp_path, tiny_io):
    source = tmp_path / "model.keras"
    tiny_model.save(source)
    result = cli("export", str(source), "--format", "onnx", "--output", str(tmp_path / "m.onnx"))
    assert result.returncode == 0, result.stderr[-2000:]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"images": tiny_io["x_nhwc_64"]})[0], tiny_io["logits_64"],
                               atol=1e-4)
    bad_opset = cli("export", str(source), "--format", "onnx", "--opset", "5", "--output", str(tmp_path / "x.onnx"))
    assert bad_opset.returncode != 0 and "Unsupported ONNX opset 5" in bad_opset.stderr
    assert "Traceback" not in bad_opset.stderr
    bad_format = cli("export", str(source), "--format", "tflite", "--output", str(tmp_path / "x"))
    assert bad_format.returncode == 2 and "invalid choice: 'tflite'" in bad_format.stderr


def test_cli_summary_prints_exact_totals():
    result = cli("summary", "ResNeXt50")
    assert result.returncode == 0, result.stderr[-2000:]
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    assert "25,097,128" in total and "4,230,480,872" in total
    assert "trainable parameters: 25,028,904" in result.stdout
    unknown = cli("summary", "ResNeXt49")
    assert unknown.returncode != 0 and "unknown model 'ResNeXt49'" in unknown.stderr


def test_cli_summary_prints_the_feature_levels_of_a_backbone():
    result = cli("summary", "ResNeXt50", "--features", "--output-stride", "16")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("P")]
    assert [(r[0], r[1], r[-2], r[-1]) for r in rows] == [
        ("P1", "stem_relu", "64", "2"), ("P2", "stage1_block3", "256", "4"), ("P3", "stage2_block4", "512", "8"),
        ("P4", "stage3_block6", "1024", "16"), ("P5", "stage4_block3", "2048", "16")]
    assert "(14, 14, 2048)" in result.stdout  # stage 4 dilated: still 14x14 at 224
    bad = cli("summary", "ResNeXt50", "--features", "--output-stride", "4")
    assert bad.returncode == 2 and "invalid choice: 4" in bad.stderr

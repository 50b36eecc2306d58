"""The command line as a user meets it: each command's output, files and errors.

Through the entry point in this process (`helpers.command`), and in a real process where only one
shows it (a traceback never reaching the terminal; the quiet start is test_startup.py's).
"""

import json
import os
import pathlib
import zipfile

import numpy as np
import onnxruntime as ort
import pytest

from helpers import cli, command, shapes_only
from keras_resnext import data


@pytest.mark.slow
def test_evaluate_and_predict_use_the_saved_run(main_job, tmp_path):
    result = command("evaluate", str(main_job / "model.keras"), "--dataset", "digits")
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
    result = command("predict", str(pngs[0]), str(not_image), str(pngs[1]), str(pngs[2]),
                     "--model-file", str(main_job / "model.keras"), "--top", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert f"{not_image}: error: not a readable image" in out
    top1 = [line.split()[-1] for line in out.splitlines() if line.startswith("  ")][::3]
    assert top1 == [str(label) for label in y[:3]]


def test_cli_exports_a_saved_keras_model_and_refuses_bad_options(tiny_model, tmp_path, tiny_io):
    source = tmp_path / "model.keras"
    tiny_model.save(source)
    result = command("export", str(source), "--format", "onnx", "--output", str(tmp_path / "m.onnx"))
    assert result.returncode == 0, result.stderr[-2000:]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"images": tiny_io["x_nhwc_64"]})[0], tiny_io["logits_64"],
                               atol=1e-4)
    bad_opset = command("export", str(source), "--format", "onnx", "--opset", "5", "--output", str(tmp_path / "x.onnx"))
    assert bad_opset.returncode != 0 and "Unsupported ONNX opset 5" in bad_opset.stderr
    assert "Traceback" not in bad_opset.stderr
    bad_format = command("export", str(source), "--format", "tflite", "--output", str(tmp_path / "x"))
    assert bad_format.returncode == 2 and "invalid choice: 'tflite'" in bad_format.stderr


def test_named_search_specs_ship_with_the_package_and_are_found_from_any_directory(tmp_path, monkeypatch):
    from keras_resnext import cli as command_line

    monkeypatch.chdir(tmp_path)
    assert command_line.spec_names() == ["cifar10_resnext29", "digits_20m", "imagenet_resnet50_budget"]
    spec = command_line.load_spec("digits_20m")
    assert spec["tuner"] == "grid" and spec["dataset"] == "digits" and "description" not in spec
    with pytest.raises(ValueError, match="one of: cifar10_resnext29, digits_20m, imagenet_resnet50_budget"):
        command_line.load_spec("nosuch")
    repository_specs = pathlib.Path(__file__).parents[1] / "tuning" / "specs"
    assert os.path.samefile(repository_specs, command_line.SPECS_DIR)  # one source, no copies
    assert "digits_20m" in command("tune", "--help", cwd=tmp_path).stdout


def test_cli_summary_prints_exact_totals():
    result = command("summary", "ResNeXt50")
    assert result.returncode == 0, result.stderr[-2000:]
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    assert "25,097,128" in total and "4,230,480,872" in total
    assert "trainable parameters: 25,028,904" in result.stdout
    unknown = command("summary", "ResNeXt49")
    assert unknown.returncode != 0 and "unknown model 'ResNeXt49'" in unknown.stderr


def test_summary_takes_every_model_name_train_takes(capsys):
    """`default` (the demo's model), `depths:C:d` and named constructors, in this process."""
    import keras_resnext as kr
    from keras_resnext import cli as command_line

    assert command_line.main(["summary", "default"]) == 0
    assert capsys.readouterr().out.startswith("resnext11_8x4d  input 224x224x3")
    assert command_line.main(["summary", "1,1,1,1:8:4", "--input-size", "64"]) == 0
    total = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("total")).split()
    with shapes_only():
        params = kr.ResNeXt((1, 1, 1, 1), 8, 4, input_shape=(64, 64, 3)).count_params()
    assert int(total[1].replace(",", "")) == params
    assert command_line.main(["summary", "1,1:x:4"]) == 2
    assert "Cannot read model '1,1:x:4': give depths:C:d" in capsys.readouterr().err


def test_cli_summary_prints_the_feature_levels_of_a_backbone():
    result = command("summary", "ResNeXt50", "--features", "--output-stride", "16")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("P")]
    assert [(r[0], r[1], r[-2], r[-1]) for r in rows] == [
        ("P1", "stem_relu", "64", "2"), ("P2", "stage1_block3", "256", "4"), ("P3", "stage2_block4", "512", "8"),
        ("P4", "stage3_block6", "1024", "16"), ("P5", "stage4_block3", "2048", "16")]
    assert "(14, 14, 2048)" in result.stdout  # stage 4 dilated: still 14x14 at 224
    bad = command("summary", "ResNeXt50", "--features", "--output-stride", "4")
    assert bad.returncode == 2 and "invalid choice: 4" in bad.stderr


def _edge_case_files(tmp_path, main_job):
    """The files the edge cases below name: a corrupt and an empty model, a run with broken metrics, ..."""
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "no_images").mkdir()
    (tmp_path / "no_images" / "notes.txt").write_text("no images here")
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 this is not a Keras archive")
    (tmp_path / "empty.keras").write_bytes(b"")
    broken = tmp_path / "broken_run"
    broken.mkdir()
    (broken / "model.keras").write_bytes((main_job / "model.keras").read_bytes())
    (broken / "metrics.json").write_text('{"status": "completed", "test_accuracy": NaN')
    (tmp_path / "spec.json").write_text(json.dumps({"budget": "20M", "cardinalitys": [1, 2]}))
    (tmp_path / "zero_cardinality.json").write_text(json.dumps({"budget": "20M", "cardinalities": [0, 8]}))
    (tmp_path / "flat_depths.json").write_text(json.dumps({"budget": "20M", "depth_options": [3]}))  # not [[3]]
    model = (main_job / "model.keras").read_bytes()
    (tmp_path / "truncated.keras").write_bytes(model[:len(model) // 2])  # a zip whose directory is cut off
    with zipfile.ZipFile(tmp_path / "other_zip.keras", "w") as archive:  # a whole zip, but not Keras'
        archive.writestr("notes.txt", "not a model")
    (tmp_path / "image.png").write_bytes(b"")
    legacy = tmp_path / "legacy_run" / "backup"  # a run killed under an older version: Keras' SGD velocity
    legacy.mkdir(parents=True)
    (legacy / "training_metadata.json").write_text('{"epoch": 0, "batch": -1, "weights": "epoch00000.weights.h5"}')
    (legacy.parent / "metrics.json").write_text('{"status": "running"}')


# (arguments, exit status, what the one-line message says); {tmp} is a folder of prepared files.
EDGE_CASES = [
    (["train", "--epochs", "0"], 2, "argument --epochs: must be at least 1, got 0"),
    (["train", "--batch-size", "0"], 2, "argument --batch-size: must be at least 1, got 0"),
    (["train", "--epochs", "two"], 2, "argument --epochs: expected a positive integer, got 'two'"),
    (["train", "--output", "{tmp}/a_file"], 2, "is a file; give a folder for the run"),
    (["train", "--epochs", "2", "--freeze-epochs", "2", "--output", "{tmp}/r"], 2,
     "`freeze_epochs` must be 0 to epochs - 1 (1); received 2"),
    (["train", "--optimizer", "adam"], 2, "argument --optimizer: invalid choice: 'adam'"),
    (["train", "--epochs", "2", "--output", "{tmp}/legacy_run"], 2,
     "holds the state of Keras' SGD (an older keras-resnext), not of this run's keras_resnext>TorchSGD"),
    (["train", "--val-split", "1.5", "--output", "{tmp}/r"], 2,
     "`val_split` must be a fraction in (0, 1); received val_split=1.5"),
    (["train", "--label-smoothing", "2", "--output", "{tmp}/r"], 2,
     "`label_smoothing` must be a fraction in [0, 1); received label_smoothing=2.0"),
    (["tune", "--budget", "0", "--output", "{tmp}/tune"], 2, "The budget must be at least 1 MAC"),
    (["tune", "--tolerance", "-1", "--output", "{tmp}/tune"], 2, "`tolerance` must be a fraction in (0, 1)"),
    (["tune", "--val-split", "0", "--output", "{tmp}/tune"], 2,
     "`val_split` must be a fraction in (0, 1); received val_split=0.0"),
    (["tune", "--spec", "{tmp}/spec.json"], 2, "unknown keys cardinalitys"),
    (["tune", "--cardinalities", "0,8"], 2,
     "argument --cardinalities: expected positive integers joined by ',', such as 1,2,4,8; got '0,8'"),
    (["tune", "--depths", "3-x"], 2, "argument --depths: expected positive integers joined by '-', such as 3-4-6-3"),
    (["tune", "--spec", "{tmp}/zero_cardinality.json", "--output", "{tmp}/tune"], 2,
     "`cardinalities` must be positive integers; received cardinalities=[0, 8]"),
    (["tune", "--spec", "{tmp}/flat_depths.json", "--output", "{tmp}/tune"], 2,
     "`depths` must be positive block counts per stage; received depths=3"),
    (["predict", "{tmp}/image.png", "--top", "0"], 2, "argument --top: must be at least 1, got 0"),
    (["predict", "{tmp}/image.png", "--top", "-1"], 2, "argument --top: must be at least 1, got -1"),
    (["predict", "{tmp}/image.png", "--model", "NoSuch"], 2, "unknown model 'NoSuch'"),
    (["predict", "{tmp}/no_images", "--model-file", "{run}/model.keras"], 2, "No image files to predict"),
    (["weights", "--model", "nosuch"], 2, "no pretrained weights for model 'nosuch'"),
    (["evaluate", "{tmp}/corrupt.keras"], 2, "corrupt.keras' is not a readable Keras model: a .keras file is a zip"),
    (["evaluate", "{tmp}/empty.keras"], 2, "empty.keras' is not a readable Keras model: a .keras file is a zip"),
    (["evaluate", "{tmp}/truncated.keras"], 2, "truncated.keras' is not a readable Keras model: a .keras file is a "
                                              "zip archive, and this is not a whole one"),
    (["evaluate", "{tmp}/other_zip.keras"], 2, "other_zip.keras' is not a readable Keras model (KeyError: "),
    (["evaluate", "{tmp}/missing.keras"], 2, "No model file"),
    (["evaluate", "{tmp}/broken_run/model.keras"], 2, "metrics.json is not readable JSON"),
    (["export", "{run}/model.keras", "--format", "onnx", "--output", "/proc/no/such/dir/m.onnx"], 1,
     "/proc/no/such/dir/m.onnx"),
    (["export", "{run}/model.keras", "--format", "saved_model", "--output", "{tmp}/a_file/sm"], 1,
     "a_file/sm"),
]


@pytest.mark.slow
@pytest.mark.parametrize("args, status, message", EDGE_CASES, ids=[" ".join(c[0])[:60] for c in EDGE_CASES])
def test_each_bad_argument_or_file_is_one_line_and_its_exit_status(args, status, message, tmp_path, main_job):
    _edge_case_files(tmp_path, main_job)
    result = command(*[a.format(tmp=tmp_path, run=main_job) for a in args])
    ours = [line for line in result.stderr.splitlines()
            if line.startswith("keras-resnext") and not line.startswith("keras-resnext: warning: ")]
    assert result.returncode == status, result.stderr[-3000:]
    assert len(ours) == 1 and message in ours[0], result.stderr[-3000:]


def test_a_bad_argument_in_a_real_process_is_one_line_without_a_traceback(tmp_path):
    result = cli("train", "--epochs", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "keras-resnext train: error: argument --epochs: must be at least 1, got 0")

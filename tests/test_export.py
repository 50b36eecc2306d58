import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tensorflow as tf

import keras_resnext as kr
from helpers import TINY
from keras_resnext.export import to_onnx, to_saved_model


def test_onnx_export_matches_keras_with_grouped_convs_as_single_nodes(tiny_model, tmp_path, tiny_io):
    path = tmp_path / "tiny.onnx"
    proto = to_onnx(tiny_model, path)
    onnx.checker.check_model(proto)
    ops = [n.op_type for n in proto.graph.node]
    groups = [a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert groups.count(8) == 4  # one Conv(group=8) per block, no split/concat expansion
    assert "BatchNormalization" not in ops and "Split" not in ops and "Concat" not in ops
    assert [i.name for i in proto.graph.input] == ["images"] and proto.graph.output[0].name == "logits"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = tiny_io["x_nhwc_64"]
    for batch in (x[:1], np.concatenate([x, x, x])):  # dynamic batch dimension
        (logits,) = session.run(None, {"images": batch})
        np.testing.assert_allclose(logits, tiny_model.predict(batch, verbose=0), atol=1e-4)
    np.testing.assert_allclose(session.run(None, {"images": x})[0], tiny_io["logits_64"], atol=1e-4)


def test_onnx_fixed_batch_and_feature_output(tmp_path):
    model = kr.ResNeXt(**TINY, include_top=False, pooling="avg", input_shape=(32, 32, 3))
    proto = to_onnx(model, tmp_path / "f.onnx", opset=17, batch_size=2)
    assert proto.graph.output[0].name == "features"
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 32, 32, 3]
    assert proto.opset_import[0].version == 17


@pytest.mark.parametrize("opset", [7, 99, "17"])
def test_unsupported_opsets_are_refused_clearly(tiny_model, tmp_path, opset):
    with pytest.raises(ValueError, match="Unsupported ONNX opset"):
        to_onnx(tiny_model, tmp_path / "x.onnx", opset=opset)
    assert not (tmp_path / "x.onnx").exists()


def test_saved_model_serves_uint8_images_with_preprocessing(tiny_model, tmp_path):
    to_saved_model(tiny_model, tmp_path / "sm")
    serving = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype="uint8")
    out = serving(images=tf.constant(images))["logits"].numpy()
    expected = tiny_model.predict(kr.preprocess_input(images), verbose=0)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    bigger = np.random.default_rng(1).integers(0, 256, (1, 100, 80, 3), dtype="uint8")
    assert serving(images=tf.constant(bigger))["logits"].shape == (1, 10)  # resized to 64x64

import keras
import numpy as np
import pytest

import keras_resnext as kr

pytestmark = pytest.mark.portable


def test_preprocess_input_uses_torchvision_mean_and_std():
    pixel = np.array([[[[255, 0, 128]]]], dtype="uint8")
    out = kr.preprocess_input(pixel)
    expected = (np.array([1.0, 0.0, 128 / 255]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert out.dtype == np.float32 and out.shape == (1, 1, 1, 3)
    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(kr.preprocess_input(pixel.astype("float32")), out)  # float [0, 255] too
    tensor_out = kr.preprocess_input(keras.ops.convert_to_tensor(pixel))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor_out), out, rtol=1e-6)


def test_preprocess_input_rejects_non_rgb():
    with pytest.raises(ValueError, match="channels-last RGB"):
        kr.preprocess_input(np.zeros((1, 3, 8, 8)))


def test_decode_predictions_works_offline():
    preds = np.zeros((2, 1000), "float32")
    preds[0, 207], preds[0, 1] = 0.9, 0.1
    preds[1, 0] = 1.0
    decoded = kr.decode_predictions(preds, top=2)
    assert decoded[0] == [("n02099601", "golden_retriever", pytest.approx(0.9)), ("n01443537", "goldfish", pytest.approx(0.1))]
    assert decoded[1][0][:2] == ("n01440764", "tench")
    with pytest.raises(ValueError, match="\\(samples, 1000\\)"):
        kr.decode_predictions(np.zeros((2, 10)))


def test_public_api_resolves():
    for name in kr.__all__:
        assert getattr(kr, name) is not None, name
    with pytest.raises(AttributeError):
        kr.not_a_module

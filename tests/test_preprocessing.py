"""`include_preprocessing=True`: raw pixels in, the same outputs as today's normalised input on every path."""

import numpy as np
import pytest

import keras_resnext as kr
from helpers import FIXTURES, TINY
from keras_resnext import jobs, models

PIXELS = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype="uint8")


@pytest.fixture(scope="module")
def twins():
    """The torchvision fixture twice, with the same weights: taking normalised input, and raw pixels."""
    options = dict(**TINY, classes=10, input_shape=(64, 64, 3), weights=FIXTURES / "tv_resnext_tiny.safetensors")
    return kr.ResNeXt(**options), kr.ResNeXt(**options, include_preprocessing=True)


@pytest.mark.portable
def test_the_normalisation_is_one_weightless_float32_layer_first(twins):
    today, raw = twins
    assert raw.layers[1].name == "preprocessing" and models.includes_preprocessing(raw)
    assert not models.includes_preprocessing(today)
    assert raw.count_params() == today.count_params() and raw.layers[-1].name == "predictions"
    assert kr.flops.count_macs(raw) == kr.flops.count_macs(today)
    np.testing.assert_allclose(raw.predict(PIXELS, verbose=0), today.predict(kr.preprocess_input(PIXELS), verbose=0),
                               atol=1e-6)
    fast = kr.inference_model(raw, "bfloat16")  # the normalisation stays float32 in mixed precision
    assert fast.get_layer("preprocessing").compute_dtype == "float32"
    with pytest.raises(ValueError, match="must be True, False or a \\(mean, std\\) pair"):
        kr.ResNeXt(**TINY, include_preprocessing=((0.5, 0.5), (0.2,)))


def test_exports_and_int8_agree_with_todays_outputs(twins, tmp_path):
    import onnxruntime as ort
    import tensorflow as tf

    from keras_resnext.export import to_onnx, to_saved_model

    today, raw = twins
    normalised = kr.preprocess_input(PIXELS)
    expected = today.predict(normalised, verbose=0)
    to_onnx(raw, tmp_path / "raw.onnx")
    onnx_out = ort.InferenceSession(str(tmp_path / "raw.onnx")).run(None, {"images": PIXELS.astype("float32")})[0]
    np.testing.assert_allclose(onnx_out, expected, atol=1e-5)
    to_saved_model(raw, tmp_path / "sm")  # normalises once: in the model, not again in the signature
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"](images=tf.constant(PIXELS))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    calibration = np.random.default_rng(1).integers(0, 256, (64, 64, 64, 3), dtype="uint8")
    int8 = kr.inference_model(raw, "int8", calibration_data=calibration, engine="litert")  # uint8 batches calibrate
    reference = kr.inference_model(today, "int8", calibration_data=kr.preprocess_input(calibration), engine="litert")
    assert (int8.predict(PIXELS).argmax(-1) == reference.predict(normalised).argmax(-1)).mean() >= 5 / 6


def test_predict_feeds_each_model_what_it_takes(twins, tmp_path):
    import keras

    today, raw = twins
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i, image in enumerate(PIXELS[:3]):
        keras.utils.save_img(folder / f"{i}.png", image)
    results = []
    for model in twins:
        model.save(tmp_path / f"{model.name}-{len(results)}.keras")
        results.append(jobs.predict([str(folder)], model_path=str(tmp_path / f"{model.name}-{len(results)}.keras")))
    for path in results[0]:
        (name, p), (name2, p2) = results[0][path][0], results[1][path][0]
        assert name == name2 and p == pytest.approx(p2, abs=1e-5)


@pytest.mark.parametrize("height, width", [(150, 233), (241, 170), (231, 231), (232, 300)])
def test_the_evaluation_crop_resizes_and_crops_as_torchvision(height, width):
    """Shorter side to floor(224 / 0.875) = 256, the longer to int(256 * long / short), then the central 224 with
    torchvision's offset (rounded half to even); the same with sizes known (eager) and unknown (a tf.data graph)."""
    import tensorflow as tf

    from keras_resnext.evaluation_crop import EvaluationCrop

    crop = EvaluationCrop(224, 0.875)
    short, long = min(height, width), max(height, width)
    resized = (256, int(256 * long / short)) if height <= width else (int(256 * long / short), 256)
    image = np.random.default_rng(0).uniform(0, 255, (height, width, 3)).astype("float32")
    top, left = (round((side - 224) / 2) for side in resized)
    whole = tf.image.resize(image, resized, antialias=True).numpy()
    np.testing.assert_allclose(crop(image), whole[top:top + 224, left:left + 224], atol=1e-4)
    graph = tf.function(crop, input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    np.testing.assert_array_equal(graph(image), crop(image))

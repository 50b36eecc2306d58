"""Exporting models for serving: ONNX (tf2onnx; int8 with onnxruntime), LiteRT (TFLite) and TF SavedModel.

All of them use Keras' own exporters (`model.export`), tracing the model with
every grouped conv on the `"direct"` path, a plain `tf.nn.conv2d`: tf2onnx turns
it into one `Conv(group=C)` node and folds BatchNorm, and the LiteRT converter
into one grouped `CONV_2D`, whereas Keras' `Conv2D(groups=...)` hides in an XLA
function that neither can inline. Both trace through TensorFlow, so they need the TensorFlow backend
(`KERAS_BACKEND=tensorflow`); a model trained on another backend can be saved as
`.keras` and exported from a TensorFlow-backend process.

Quantized exports calibrate on images preprocessed as the model's input:
`calibration_data` / `representative_data` is an array `(N, H, W, C)`, an
iterable of such batches, or a dataset of `(images, labels)` batches.
"""

import os
import tempfile

import numpy as np

from keras_resnext import files, grouped_conv
from keras_resnext.config import check_choice
from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD
from keras_resnext.models import classifier_layer, outputs_probabilities

MIN_OPSET = 13  # the first opset whose ops cover every layer of these models
ONNX_QUANTIZE = (None, "int8")
LITERT_QUANTIZE = (None, "dynamic", "int8")
MAX_CALIBRATION_IMAGES = 512  # min/max calibration settles long before this


def _max_opset():
    from tf2onnx import constants

    return max(constants.OPSET_TO_IR_VERSION)


def _output_name(model):
    """'probabilities', 'logits' or 'features': what the model's output is."""
    if classifier_layer(model) is None:
        return "features"
    return "probabilities" if outputs_probabilities(model) else "logits"


def _require_tensorflow_backend(what):
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"{what} traces the model with TensorFlow, so it needs the TensorFlow backend; the active "
            f"backend is {keras.backend.backend()!r}. Save the model (.keras) and export it from a "
            "process with KERAS_BACKEND=tensorflow."
        )


def _input_spec(model, batch_size, dtype="float32"):
    import tensorflow as tf

    shape = (batch_size, *model.inputs[0].shape[1:])
    return tf.TensorSpec(shape, dtype, name="images")


def to_onnx(model, path, opset=None, batch_size=None, quantize=None, calibration_data=None):
    """Writes `model` to `path` as ONNX and returns the `onnx.ModelProto`.

    Args:
        model: a keras_resnext model (any Keras model of TF-traceable layers).
        path: the `.onnx` file to write (atomically).
        opset: ONNX opset, `MIN_OPSET` to the newest tf2onnx supports;
            `None` takes tf2onnx's preferred opset.
        batch_size: a fixed batch size, or `None` for a dynamic batch dimension.
        quantize: `None` (float32) or `"int8"`: onnxruntime's static quantization,
            QDQ format, int8 weights per output channel (7-bit range, safe on
            CPUs without VNNI), uint8 activations whose ranges come from
            `calibration_data` (min/max). Grouped convs stay
            one `Conv(group=C)` each. Needs onnxruntime.
        calibration_data: with `quantize="int8"`, images preprocessed as the
            model's input (see the module's documentation); up to 512 are used.

    The graph's input is `images` (NHWC float32, preprocessed as by
    `keras_resnext.preprocess_input`, or raw pixels in [0, 255] for a model built
    with `include_preprocessing=True`, which normalises them in the graph); its
    output is `probabilities`, `logits` or `features`, by what the model returns.
    """
    _require_tensorflow_backend("to_onnx")
    import onnx

    if opset is not None and not (isinstance(opset, int) and MIN_OPSET <= opset <= _max_opset()):
        raise ValueError(
            f"Unsupported ONNX opset {opset!r}: this exporter supports opsets {MIN_OPSET} to {_max_opset()}."
        )
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"`batch_size` must be None (dynamic) or a positive integer; received {batch_size!r}.")
    check_choice("quantize", quantize, ONNX_QUANTIZE)
    batches = calibration_batches(model, calibration_data, "to_onnx") if quantize else None
    # Keras' own ONNX exporter (tf2onnx on TensorFlow) gives the graph we want once the grouped
    # convs are plain tf.nn.conv2d calls: one Conv(group=C) each, BatchNorm folded, a dynamic batch.
    with grouped_conv.force_implementation("direct"), tempfile.TemporaryDirectory() as tmp:
        exported = os.path.join(tmp, "model.onnx")
        model.export(exported, format="onnx", verbose=False, opset_version=opset,
                     input_signature=[_input_spec(model, batch_size)])
        if quantize == "int8":
            exported = _quantize_onnx_int8(exported, batches)
        proto = onnx.load(exported)
    _rename_output(proto, _output_name(model))
    files.write_bytes(path, proto.SerializeToString())
    return proto


def calibration_batches(model, data, what):
    """`data` as float32 batches `(n, H, W, C)` that fit `model`'s input, up to 512 images, checked."""
    if data is None:
        raise ValueError(f"{what}: int8 quantization needs calibration data: images preprocessed as the "
                         "model's input (an array, an iterable of batches or a dataset of (images, labels)).")
    import keras

    batches, count = [], 0
    for batch in [data] if isinstance(data, np.ndarray) else data:
        batch = keras.ops.convert_to_numpy(batch[0] if isinstance(batch, (tuple, list)) else batch)
        _check_calibration_batch(model, batch, what)
        batches.append(batch[: MAX_CALIBRATION_IMAGES - count].astype("float32"))
        count += len(batches[-1])
        if count >= MAX_CALIBRATION_IMAGES:
            break
    if not count:
        raise ValueError(f"{what}: the calibration data holds no images.")
    return batches


def _check_calibration_batch(model, batch, what):
    from keras_resnext.models import includes_preprocessing

    expected = tuple(model.inputs[0].shape[1:])
    raw_pixels = batch.dtype == np.uint8 and includes_preprocessing(model)  # such a model takes them
    if batch.dtype.kind != "f" and not raw_pixels:
        raise ValueError(f"{what}: calibration images must be floating point, preprocessed as the model's input "
                         f"(or uint8 pixels, for a model built with include_preprocessing=True); got dtype "
                         f"{batch.dtype}.")
    if not fits_input(expected, batch.shape):
        raise ValueError(f"{what}: calibration images must have shape (N, {', '.join(map(str, expected))}) "
                         f"as the model's input; got {batch.shape}.")


def fits_input(expected, shape):
    """Whether `shape` is a batch of images of `expected` (the model's input shape without its batch axis)."""
    return len(shape) == 4 and all(e is None or e == a for e, a in zip(expected, shape[1:]))


def _quantize_onnx_int8(source, batches):
    """onnxruntime's static QDQ quantization of the ONNX file `source`, calibrated on `batches`: the new file's path."""
    try:
        from onnxruntime import quantization
    except ImportError:
        raise ValueError("int8 ONNX export needs onnxruntime: pip install 'keras-resnext[onnxruntime]'.") from None

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self._feeds = iter({"images": b} for b in batches)

        def get_next(self):
            return next(self._feeds, None)

    target = os.path.join(os.path.dirname(source), "int8.onnx")
    quantization.quantize_static(
        source, target, Reader(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
        activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
        calibrate_method=quantization.CalibrationMethod.MinMax,
        # 7-bit weights: x86 CPUs without VNNI saturate u8*s8 products of full-range weights
        # (the main job lost 2.8 points of accuracy that way on an AVX2 CPU); the file may run on one.
        reduce_range=True,
    )
    return target


def to_litert(model, path, quantize=None, representative_data=None, grouped=True):
    """Writes `model` to `path` as a LiteRT (TFLite) flatbuffer, with Keras' own exporter.

    Args:
        quantize: `None` (float32), `"dynamic"` (int8 weights, float activations)
            or `"int8"` (int8 weights and activations, ranges from
            `representative_data`; the input and output stay float32).
        representative_data: with `quantize="int8"`, images preprocessed as the
            model's input (see the module's documentation).
        grouped: keep each grouped conv as one grouped `CONV_2D`, which LiteRT's
            builtin and XNNPACK kernels run. `False` writes it as a dense conv
            with a block-diagonal kernel, for runtimes without grouped conv
            (C times those convs' MACs).

    The input is `images` (NHWC float32, dynamic batch); only LiteRT builtin ops
    are used, so the file runs without the TensorFlow (Flex) delegate.
    """
    _require_tensorflow_backend("to_litert")
    import tensorflow as tf

    check_choice("quantize", quantize, LITERT_QUANTIZE)
    batches = calibration_batches(model, representative_data, "to_litert") if quantize == "int8" else None
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if quantize == "int8" else []
    options = {"target_spec": {"supported_ops": ops + [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantize:
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if batches:
        options["representative_dataset"] = lambda: ([b[i:i + 1]] for b in batches for i in range(len(b)))
    with grouped_conv.force_implementation("direct" if grouped else "block_diagonal"):
        with files.atomic_path(path) as tmp:
            model.export(tmp, format="litert", verbose=False, input_signature=[_input_spec(model, None)], **options)
    return os.fspath(path)


def _rename_output(proto, name):
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
    proto.graph.output[0].name = name


def to_saved_model(model, path, mean=IMAGENET_MEAN, std=IMAGENET_STD, image_size=224):
    """Writes a TF SavedModel for TF Serving with two signatures, both preprocessing inside the graph.

    - `serving_default(images: uint8[N, H, W, 3])`: RGB pixels, resized to the
      model's input size when that is fixed.
    - `serving_bytes(image_bytes: string[N])`: encoded JPEG, PNG, GIF or BMP files
      (what TF Serving's REST API sends as `{"b64": ...}`), decoded and resized
      to the model's input size (`image_size` when the model's is not fixed).

    Both apply `preprocess_input`'s normalisation (`mean`/`std`), unless the model
    normalises its input itself (`include_preprocessing`), run the model and
    return `{name: output}` with name as in `to_onnx`.
    """
    _require_tensorflow_backend("to_saved_model")
    import keras
    import tensorflow as tf

    serve, serve_bytes = _serving_functions(model, mean, std, image_size)
    archive = keras.export.ExportArchive()
    archive.track(model)
    with grouped_conv.force_implementation("direct"):
        archive.add_endpoint(name="serving_default", fn=serve,
                             input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")])
        archive.add_endpoint(name="serving_bytes", fn=serve_bytes,
                             input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
        with files.atomic_dir(path) as tmp:
            archive.write_out(tmp, verbose=False)
    return path


def _serving_functions(model, mean, std, image_size):
    """The two serving functions of `to_saved_model`: from uint8 pixels, and from encoded image files."""
    import tensorflow as tf

    from keras_resnext.models import includes_preprocessing

    height, width = model.inputs[0].shape[1:3]
    size = (height or image_size, width or image_size)
    scale = tf.constant(255.0 * np.asarray(std, "float32"))
    offset = tf.constant(np.asarray(mean, "float32") / np.asarray(std, "float32"))
    output_name = _output_name(model)

    def run(pixels):
        if includes_preprocessing(model):  # the model normalises its input itself
            return {output_name: model(pixels, training=False)}
        return {output_name: model(pixels / scale - offset, training=False)}

    def serve(images):
        x = tf.cast(images, tf.float32)
        if height is not None and width is not None:
            x = tf.image.resize(x, (height, width), method="bilinear", antialias=True)
        return run(x)

    def decode(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape((None, None, 3))
        return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear", antialias=True)

    def serve_bytes(image_bytes):
        return run(tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec((*size, 3), tf.float32)))

    return serve, serve_bytes

"""Exporting models for serving: ONNX (through tf2onnx) and TensorFlow SavedModel.

Both trace the model with every grouped conv on the `"direct"` path, a plain
`tf.nn.conv2d`: tf2onnx turns it into one `Conv(group=C)` node and folds
BatchNorm, whereas Keras' own grouped conv hides in an XLA function that tf2onnx
cannot inline. Both trace through TensorFlow, so they need the TensorFlow backend
(`KERAS_BACKEND=tensorflow`); a model trained on another backend can be saved as
`.keras` and exported from a TensorFlow-backend process.
"""

import numpy as np

from keras_resnext import files, grouped_conv
from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD
from keras_resnext.models import classifier_layer, outputs_probabilities

MIN_OPSET = 13  # the first opset whose ops cover every layer of these models


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


def to_onnx(model, path, opset=None, batch_size=None):
    """Writes `model` to `path` as ONNX and returns the `onnx.ModelProto`.

    Args:
        model: a keras_resnext model (any Keras model of TF-traceable layers).
        path: the `.onnx` file to write (atomically).
        opset: ONNX opset, `MIN_OPSET` to the newest tf2onnx supports;
            `None` takes tf2onnx's preferred opset.
        batch_size: a fixed batch size, or `None` for a dynamic batch dimension.

    The graph's input is `images` (NHWC float32, preprocessed as by
    `keras_resnext.preprocess_input`); its output is `probabilities`, `logits` or
    `features`, by what the model returns.
    """
    _require_tensorflow_backend("to_onnx")
    import tensorflow as tf
    import tf2onnx

    if opset is not None and not (isinstance(opset, int) and MIN_OPSET <= opset <= _max_opset()):
        raise ValueError(
            f"Unsupported ONNX opset {opset!r}: this exporter supports opsets {MIN_OPSET} to {_max_opset()}."
        )
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"`batch_size` must be None (dynamic) or a positive integer; received {batch_size!r}.")
    with grouped_conv.force_implementation("direct"):
        fn = tf.function(lambda images: model(images, training=False))
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=(_input_spec(model, batch_size),), opset=opset)
    _rename_output(proto, _output_name(model))
    files.write_bytes(path, proto.SerializeToString())
    return proto


def _rename_output(proto, name):
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
    proto.graph.output[0].name = name


def to_saved_model(model, path, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Writes a TF SavedModel whose `serving_default` takes uint8 RGB images.

    The signature `serving_default(images: uint8[N, H, W, 3])` resizes to the
    model's input size when that is fixed, applies `preprocess_input`'s
    normalisation (`mean`/`std`), runs the model and returns `{name: output}`
    with name as in `to_onnx`. Ready for TF Serving.
    """
    _require_tensorflow_backend("to_saved_model")
    import keras
    import tensorflow as tf

    height, width = model.inputs[0].shape[1:3]
    scale = tf.constant(255.0 * np.asarray(std, "float32"))
    offset = tf.constant(np.asarray(mean, "float32") / np.asarray(std, "float32"))
    output_name = _output_name(model)

    def serve(images):
        x = tf.cast(images, tf.float32)
        if height is not None and width is not None:
            x = tf.image.resize(x, (height, width), method="bilinear", antialias=True)
        return {output_name: model(x / scale - offset, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    with grouped_conv.force_implementation("direct"):
        archive.add_endpoint(
            name="serving_default",
            fn=serve,
            input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")],
        )
        with files.atomic_dir(path) as tmp:
            archive.write_out(tmp, verbose=False)
    return path

"""int8 inference behind Keras' `predict`: the model quantized for the CPU's fastest int8 engine, in one call.

    fast = kr.inference_model(model, precision="int8", calibration_data=train_images[:512])
    fast.predict(test_images)            # what model.predict(test_images) gives, about 3x faster on a VNNI CPU

Two engines (`engine=`): `"litert"` converts the model to a LiteRT int8 flatbuffer (int8
weights per output channel, int8 activations whose ranges come from the calibration
images), run by XNNPACK's kernels, which use VNNI where the CPU has it; `"openvino"`
quantizes the package's ONNX export the same way (QDQ) and runs it in OpenVINO's CPU
runtime, whose oneDNN kernels use AMX. `"auto"` picks by the CPU's features
(`keras_resnext.devices.fastest_int8_engine`). The predictor is not a `keras.Model`: it
predicts, it does not train or save (export with `keras_resnext.export` for that).

Calibration images are preprocessed as the model's input, as for the package's int8
exports (up to 512 are used). A part of them is held out: after conversion the
predictor compares its top-1 class with the float model's on those images, and
warns if they agree on less than 99%.
"""

import math
import os
import tempfile
import warnings

import keras
import numpy as np

from keras_resnext import devices, export
from keras_resnext.config import INT8_ENGINES, NONFINITE_GUARD, check_choice
from keras_resnext.models import classifier_layer

MIN_AGREEMENT = 0.99
MAX_HELD_OUT = 128  # images kept out of calibration to check agreement; enough for a 1% resolution
WHAT = "inference_model(precision='int8')"


class Int8Predictor:
    """A model's int8 twin, run by LiteRT or OpenVINO, with Keras' `predict` signature.

    Args:
        model: the float Keras model.
        calibration_data: images preprocessed as the model's input (an array, batches or a
            dataset; up to 512 are used, a fifth of them held out to check agreement).
        num_threads: the engine's threads; default every core.
        engine: `"auto"` (the fastest engine measured on this kind of CPU, see
            `keras_resnext.devices.fastest_int8_engine`), `"litert"` or `"openvino"`.

    Attributes:
        name: the model's name with `_int8`.
        engine: the engine that runs it, `"litert"` or `"openvino"`.
        agreement: top-1 agreement with the float model on the held-out calibration
            images (None for a model without a classifier).
        pretrained_cfg, class_names: the model's, where it has them.
    """

    def __init__(self, model, calibration_data, num_threads=None, engine="auto"):
        check_choice("engine", engine, INT8_ENGINES)
        self.engine = devices.fastest_int8_engine()[0] if engine == "auto" else engine
        if self.engine == "litert" and not devices.cpu_has_int8_dot_products():
            warnings.warn("This CPU has no int8 dot products (VNNI or AMX), where LiteRT's int8 is little faster "
                          "than float32 (1.2x on an AVX2 EPYC) and OpenVINO's ran 2.2x (BENCHMARKS.md): use "
                          "engine='openvino' (pip install 'keras-resnext[openvino]').", stacklevel=3)
        images = np.concatenate(export.calibration_batches(model, calibration_data, WHAT))
        held_out = min(MAX_HELD_OUT, len(images) // 5)
        calibration, check = (images[:-held_out], images[-held_out:]) if held_out else (images, images)
        self.name = f"{model.name}_int8"
        self.input_shape = tuple(model.inputs[0].shape)
        self.output_shape = tuple(model.outputs[0].shape)
        for attribute in ("pretrained_cfg", "class_names"):
            if hasattr(model, attribute):
                setattr(self, attribute, getattr(model, attribute))
        self._run = ENGINES[self.engine](without_nonfinite_guard(model), calibration, num_threads or os.cpu_count())
        self.agreement = None
        if classifier_layer(model) is not None:
            self.agreement = top1_agreement(model.predict(check, verbose=0), self(check))
            if self.agreement < MIN_AGREEMENT:
                warnings.warn(f"int8 agrees with float32 on the top-1 class of {self.agreement:.1%} of {len(check)} "
                              f"held-out calibration images (below {MIN_AGREEMENT:.0%}); give more or more "
                              "representative calibration_data, or use float32.", stacklevel=3)

    def __call__(self, images, training=None):
        """The outputs for one batch `(n, H, W, C)`, as a float32 NumPy array (`training` as Keras': inference)."""
        if training:
            raise ValueError(f"{self.name} runs inference only; it cannot be called with training=True.")
        images = np.asarray(keras.ops.convert_to_numpy(images), dtype="float32")
        self._check(images)
        outputs = self._run(images)
        # The float model's NaN guard (PropagateNonFinite), applied here: in the int8 graph it would
        # cost a dequantize/quantize pair, and int8 has no NaN to carry.
        finite = np.isfinite(images).reshape(len(images), -1).all(axis=1)
        outputs[~finite] = np.nan
        return outputs

    def predict(self, x, batch_size=None, verbose="auto"):
        """Keras' `predict`: outputs for a NumPy array of images or a `tf.data.Dataset` of batches.

        A dataset may yield `images` or `(images, labels[, weights])`, as for `Model.predict`.
        """
        batches, steps = _batches(x, batch_size)
        progress = keras.utils.Progbar(steps, verbose=1 if verbose == "auto" else verbose) if verbose else None
        outputs = []
        for step, batch in enumerate(batches, start=1):
            outputs.append(self(batch))
            if progress:
                progress.update(step, finalize=step == steps)
        if not outputs:
            raise ValueError(f"{self.name}.predict: the input holds no images.")
        return np.concatenate(outputs)

    def __repr__(self):
        agreement = "" if self.agreement is None else f", agreement={self.agreement:.3f}"
        return f"<Int8Predictor {self.name!r}, engine={self.engine!r}{agreement}>"

    def fit(self, *args, **kwargs):
        raise TypeError(f"{self.name} is an int8 predictor, not a keras.Model: train the float model, then "
                        "call kr.inference_model(model, 'int8', calibration_data=...) again.")

    def _check(self, images):
        expected = self.input_shape[1:]
        if not export.fits_input(expected, images.shape):
            raise ValueError(f"{self.name} takes batches of shape (N, {', '.join(map(str, expected))}); "
                             f"got {images.shape}.")


def _batches(x, batch_size):
    """`(iterable of image batches, number of batches or None)` for an array or a dataset."""
    if hasattr(x, "element_spec") or not hasattr(x, "shape"):  # a tf.data.Dataset or another iterable of batches
        if batch_size is not None:
            raise ValueError("Do not pass batch_size with a dataset: its batches are used as they are.")
        steps = _cardinality(x)
        return (batch[0] if isinstance(batch, (tuple, list)) else batch for batch in x), steps
    batch_size = 32 if batch_size is None else batch_size  # Keras' default
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    return (x[i:i + batch_size] for i in range(0, len(x), batch_size)), math.ceil(len(x) / batch_size)


def _cardinality(dataset):
    try:
        steps = int(dataset.cardinality())
    except (AttributeError, TypeError):
        return None
    return steps if steps >= 0 else None  # unknown or infinite


def top1_agreement(reference, outputs):
    """The fraction of rows whose top class is the same in both."""
    return float(np.mean(np.argmax(reference, axis=-1) == np.argmax(outputs, axis=-1)))


def without_nonfinite_guard(model):
    """`model` with its NaN guard left out (the predictor checks the input itself); `model` if it has none."""
    try:
        guard = model.get_layer(NONFINITE_GUARD)
    except ValueError:
        return model
    after, x = model.layers[model.layers.index(guard) + 1:], guard.output
    for layer in after:
        if layer.input is not x:
            return model  # not a plain head after the guard (features_only): keep the graph as it is
        x = layer.output
    if x is not model.outputs[0] or len(model.outputs) != 1:
        return model
    x = guard.input[0]
    for layer in after:
        x = layer(x)
    return keras.Model(model.inputs, x, name=model.name)


class _LiteRT:
    """The model as a LiteRT int8 flatbuffer, run by XNNPACK (LiteRT's default CPU delegate)."""

    def __init__(self, model, calibration, num_threads):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ValueError("engine='litert' needs LiteRT: pip install 'keras-resnext[litert]'.") from None
        with tempfile.TemporaryDirectory() as folder:
            path = export.to_litert(model, os.path.join(folder, "int8.tflite"), quantize="int8",
                                    representative_data=calibration)
            with open(path, "rb") as f:
                self._interpreter = Interpreter(model_content=f.read(), num_threads=num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch_shape = None

    def __call__(self, images):
        if images.shape != self._batch_shape:  # LiteRT plans its buffers for one input shape
            self._interpreter.resize_tensor_input(self._input, images.shape)
            self._interpreter.allocate_tensors()
            self._batch_shape = images.shape
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


class _OpenVINO:
    """The package's int8 ONNX export (QDQ), compiled by OpenVINO's CPU plugin (oneDNN: VNNI, AMX)."""

    def __init__(self, model, calibration, num_threads):
        try:
            import openvino
        except ImportError:
            raise ValueError("engine='openvino' needs OpenVINO: pip install 'keras-resnext[openvino]'.") from None
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "int8.onnx")
            export.to_onnx(model, path, quantize="int8", calibration_data=calibration)
            core = openvino.Core()
            # One request for a whole batch, on every thread: what predict() asks of it.
            compiled = core.compile_model(core.read_model(path), "CPU", {
                "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": num_threads})
        self._request = compiled.create_infer_request()

    def __call__(self, images):
        return np.array(self._request.infer([images])[0], dtype="float32")


ENGINES = {"litert": _LiteRT, "openvino": _OpenVINO}

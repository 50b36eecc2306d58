"""Accuracy of every deployment path of a trained model, next to float32's, and top-1 agreement with it.

Paths: Keras float32 (the reference), Keras bfloat16 (`inference_model`), ONNX
float32 and static int8 (onnxruntime), LiteRT float32, dynamic-range and int8, and
`inference_model(model, "int8", ...)`, the int8 predictor on each engine (LiteRT, OpenVINO).
The int8 paths calibrate on 128 training images; accuracy is on the test split.

    python benchmarks/deploy_accuracy.py RUN/model.keras [--dataset digits]
    python benchmarks/deploy_accuracy.py --train-64   # also trains a small ResNeXt on digits at 64x64

tests/test_deploy.py runs `measure` on the main job's model and asserts the bounds
(int8: accuracy within 1 point, agreement >= 98%; bf16: agreement >= 99.5%).
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_resnext as kr  # noqa: E402 - before Keras: it turns oneDNN on where TensorFlow would not
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_resnext import data, devices, export  # noqa: E402


def split_arrays(dataset, split, image_size, limit=None):
    """`(images, labels)` of a data set's split as arrays, preprocessed as training did."""
    ds, _ = data.load_dataset(dataset, split, batch_size=256, training=False, image_size=image_size)
    xs, ys = zip(*((keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)) for x, y in ds))
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x[:limit], y[:limit]) if limit else (x, y)


def litert_outputs(path, x):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's own interpreter, deprecated in favour of ai-edge-litert
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def onnx_outputs(path, x):
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]


def path_outputs(model, x, calibration, folder):
    """`{path name: outputs on x}` for every deployment path of `model`."""
    outputs = {"keras float32": model.predict(x, verbose=0)}
    bf16 = kr.inference_model(model, "bfloat16")
    outputs["keras bfloat16"] = bf16.predict(x, verbose=0)
    for quantize in (None, "int8"):
        path = os.path.join(folder, f"model-{quantize}.onnx")
        export.to_onnx(model, path, quantize=quantize, calibration_data=calibration)
        outputs[f"onnx {quantize or 'float32'}"] = onnx_outputs(path, x)
    for quantize in (None, "dynamic", "int8"):
        path = os.path.join(folder, f"model-{quantize}.tflite")
        export.to_litert(model, path, quantize=quantize, representative_data=calibration)
        outputs[f"litert {quantize or 'float32'}"] = litert_outputs(path, x)
    # int8 behind Keras' predict, in one call, on each engine (calibration holds a fifth out to check itself).
    for engine in (("litert", "openvino") if devices.openvino_installed() else ("litert",)):
        predictor = kr.inference_model(model, "int8", calibration_data=calibration, engine=engine)
        outputs[f"int8 predictor ({engine})"] = predictor.predict(x, verbose=0)
    return outputs


def measure(model, x, y, calibration):
    """One row per path: accuracy, accuracy of float32, agreement with float32, max |difference| of outputs."""
    import warnings

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 on a CPU without it is slow, and says so
        outputs = path_outputs(model, x, calibration, folder)
    reference = outputs["keras float32"]
    rows = []
    for name, out in outputs.items():
        rows.append({"path": name, "accuracy": float(np.mean(out.argmax(-1) == y)),
                     "float32_accuracy": float(np.mean(reference.argmax(-1) == y)),
                     "agreement": float(np.mean(out.argmax(-1) == reference.argmax(-1))),
                     "max_abs_diff": float(np.abs(out.astype("float32") - reference).max())})
    return rows


def measure_run(model_path, dataset="digits"):
    model = kr.jobs.load_run_model(model_path)[0]
    size = model.inputs[0].shape[1]
    x, y = split_arrays(dataset, "test", size)
    calibration, _ = split_arrays(dataset, "train", size, limit=128)
    return measure(model, x, y, calibration)


def print_rows(title, rows):
    print(f"\n{title}")
    print(f"{'path':25s} {'accuracy':>9s} {'float32':>8s} {'agreement':>10s} {'max |diff|':>11s}")
    for r in rows:
        print(f"{r['path']:25s} {r['accuracy']:9.4f} {r['float32_accuracy']:8.4f} {r['agreement']:10.4f} "
              f"{r['max_abs_diff']:11.2e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_file", nargs="?", help="a model.keras written by train (default: train the main job)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--train-64", action="store_true", help="also train and measure a 1,1,1,1:8:4 model at 64x64")
    args = parser.parse_args(argv)
    runs = tempfile.mkdtemp()
    model_file = args.model_file
    if model_file is None:
        main = kr.jobs.train(run=kr.jobs.RunOptions(os.path.join(runs, "main"), verbose=0))
        model_file = main["output"] + "/model.keras"
    print_rows(f"{model_file} on {args.dataset}", measure_run(model_file, args.dataset))
    if args.train_64:
        run = kr.jobs.train(model="1,1,1,1:8:4", dataset=kr.jobs.TrainingData("digits", image_size=64), epochs=20,
                            run=kr.jobs.RunOptions(os.path.join(runs, "r64"), verbose=0))
        print_rows("1,1,1,1:8:4 at 64x64 on digits", measure_run(run["output"] + "/model.keras"))


if __name__ == "__main__":
    main()

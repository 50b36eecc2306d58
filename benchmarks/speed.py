"""Inference and training img/s of ResNeXt50 against keras.applications.ResNet50, side by side.

Rows: keras.applications.ResNet50; keras_resnext.ResNeXt50 (grouped convs on the
"auto" path, BatchNorm trained with one fused kernel); the same ResNeXt50 training
with Keras' own BatchNorm ops (`fused=False`), which shows what the fused kernel
gives; on a CPU with native bfloat16 (or with --bf16), both models and the unfused
ResNeXt50 trained under `mixed_bfloat16` (what `train --precision auto` picks
there); the same ResNeXt50 on the "native" path, which is what
`keras.layers.Conv2D(groups=32)` runs (XLA on TensorFlow); and, with --onnx, the
same ResNeXt50 exported by `keras_resnext.export.to_onnx` in onnxruntime. With
--deploy, the deployment rows (inference only): both models as
`kr.inference_model(..., "bfloat16")`, ResNeXt50 in onnxruntime in float32 and
static int8, in LiteRT (XNNPACK) in float32 and int8, and `kr.inference_model(...,
"int8")`, the int8 predictor on each engine installed (LiteRT; OpenVINO, beside OpenVINO
running the same int8 ONNX file on its own). It prints whether the
CPU has native bfloat16: without it bfloat16 is emulated, and slow. A row without the
NaN check (PropagateNonFinite, before the head) shows what checking the input costs.
It starts with `kr.devices.report()`: versions, CPU features, oneDNN and the
grouped-conv path, so every figure is labelled with the machine it ran on.

Every round times each row once, in turn (interleaved), so machine noise hits
all alike; medians over rounds are printed, with ratios to ResNet50. Training
steps use compile() defaults (jit_compile="auto") and SGD.

    python benchmarks/speed.py [--batch 16] [--rounds 5] [--native-train-batch 2] [--onnx] [--deploy] [--bf16]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_resnext as kr  # noqa: E402 - before Keras: it turns oneDNN on where TensorFlow would not
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_resnext import devices  # noqa: E402
from keras_resnext.config import CLASSIFIER, NONFINITE_GUARD  # noqa: E402
from keras_resnext.flops import count_macs  # noqa: E402

BASELINE = "ResNet50 (keras.applications)"


def compiled(model):
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    return model


def onnx_runner(model):
    import onnxruntime as ort

    from keras_resnext.export import to_onnx

    path = os.path.join(tempfile.mkdtemp(), "resnext50.onnx")
    to_onnx(model, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})


def litert_runner(model, quantize, calibration):
    from keras_resnext.export import to_litert

    path = os.path.join(tempfile.mkdtemp(), f"resnext50-{quantize}.tflite")
    to_litert(model, path, quantize=quantize, representative_data=calibration)
    return litert_file_runner(path, num_threads=os.cpu_count())


def litert_file_runner(path, **options):
    """`run(x)` for the LiteRT file at `path`: the interpreter (with `options`), resized to each new batch shape."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, **options)
    index, output = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    state = {"shape": None}

    def run(x):
        if state["shape"] != x.shape:
            interpreter.resize_tensor_input(index, x.shape)
            interpreter.allocate_tensors()
            state["shape"] = x.shape
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(output)

    return run


def deploy_rows(resnet, resnext, calibration):
    """The deployment rows: `{name: (infer, 0, None, MACs)}`, inference only."""
    import warnings

    import onnxruntime as ort

    from keras_resnext.export import to_onnx

    macs = count_macs(resnext)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 (int8) on a CPU without it says it is slow; we measure how slow
        resnet_bf16, resnext_bf16 = kr.inference_model(resnet, "bfloat16"), kr.inference_model(resnext, "bfloat16")
        # What a user gets in one call, on each engine: every core, the NaN guard checked outside the graph.
        predictors = {engine: kr.inference_model(resnext, "int8", calibration_data=calibration, engine=engine)
                      for engine in (("litert", "openvino") if devices.openvino_installed() else ("litert",))}
    path = os.path.join(tempfile.mkdtemp(), "resnext50-int8.onnx")
    to_onnx(resnext, path, quantize="int8", calibration_data=calibration)
    int8 = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    engines = {f"ResNeXt50 int8 predictor ({engine})": (p, 0, None, macs) for engine, p in predictors.items()}
    if "openvino" in predictors:
        engines["ResNeXt50 OpenVINO int8 (same ONNX)"] = (openvino_runner(path), 0, None, macs)
    # The same layers and weights without PropagateNonFinite (before the head): what the NaN check costs.
    trunk = resnext.get_layer(NONFINITE_GUARD).input[0]
    head = resnext.get_layer(CLASSIFIER)(resnext.get_layer("avg_pool")(trunk))
    unguarded = keras.Model(resnext.inputs, head)
    return {
        "ResNeXt50 without the NaN check": (unguarded.predict_on_batch, 0, None, macs),
        "ResNet50 bfloat16 (inference_model)": (resnet_bf16.predict_on_batch, 0, None, count_macs(resnet)),
        "ResNeXt50 bfloat16 (inference_model)": (resnext_bf16.predict_on_batch, 0, None, macs),
        "ResNeXt50 onnxruntime float32": (onnx_runner(resnext), 0, None, macs),
        "ResNeXt50 onnxruntime int8 (QDQ)": (lambda x: int8.run(None, {"images": x}), 0, None, macs),
        "ResNeXt50 LiteRT float32": (litert_runner(resnext, None, None), 0, None, macs),
        "ResNeXt50 LiteRT int8": (litert_runner(resnext, "int8", calibration), 0, None, macs),
        **engines,
    }


def openvino_runner(path):
    """OpenVINO on its own: the ONNX file compiled by its CPU plugin with its defaults, one request per batch."""
    import openvino

    compiled = openvino.Core().compile_model(path, "CPU")
    request = compiled.create_infer_request()
    return lambda x: request.infer([x])


def unfused(model):
    """`model` with every TorchBatchNormalization training on Keras' own ops, recompiled: the pre-fusion step."""
    for layer in model._flatten_layers():
        if isinstance(layer, kr.layers.TorchBatchNormalization):
            layer.fused = False
    return compiled(model)


def training_rows(resnext, args, include_bf16):
    """Training-only rows: ResNeXt50 on Keras' BatchNorm ops (TensorFlow, where the fused kernel is);
    with `include_bf16`, the models under mixed_bfloat16."""
    macs = count_macs(resnext)
    fusing = keras.backend.backend() == "tensorflow"
    rows = {}
    if fusing:
        rows["ResNeXt50, Keras' BatchNorm ops"] = (None, args.batch, unfused(kr.ResNeXt50(weights=None)).train_on_batch,
                                                   macs)
    if not include_bf16:
        return rows
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        resnet = compiled(keras.applications.ResNet50(weights=None))
        fused = compiled(kr.ResNeXt50(weights=None))
        keras_ops = unfused(kr.ResNeXt50(weights=None)) if fusing else None
    finally:
        keras.config.set_dtype_policy("float32")
    rows["ResNet50 mixed_bfloat16"] = (None, args.batch, resnet.train_on_batch, count_macs(resnet))
    rows["ResNeXt50 mixed_bfloat16"] = (None, args.batch, fused.train_on_batch, macs)
    if fusing:
        rows["ResNeXt50 mixed_bfloat16, Keras' BN"] = (None, args.batch, keras_ops.train_on_batch, macs)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--native-train-batch", type=int, default=2,
                        help="batch of the native build's training step (0 skips it; it is ~50x slower on CPU)")
    parser.add_argument("--no-native", action="store_true", help="leave out the native grouped-conv build")
    parser.add_argument("--onnx", action="store_true", help="add ResNeXt50 in onnxruntime (inference)")
    parser.add_argument("--deploy", action="store_true", help="add bfloat16, int8 and LiteRT rows (inference)")
    parser.add_argument("--no-train", action="store_true", help="time inference only")
    parser.add_argument("--bf16", action="store_true",
                        help="add the mixed_bfloat16 training rows on a CPU without native bfloat16 (emulated, slow)")
    args = parser.parse_args(argv)
    devices.report()  # the machine: CPU features, oneDNN, the grouped-conv path "auto" takes

    resnet = compiled(keras.applications.ResNet50(weights=None))
    resnext = compiled(kr.ResNeXt50(weights=None))
    macs = count_macs(resnext)
    rows = {  # name: (infer(x) or None, train batch size, train(x, y) or None, MACs)
        BASELINE: (resnet.predict_on_batch, args.batch, resnet.train_on_batch, count_macs(resnet)),
        "ResNeXt50 (keras_resnext)": (resnext.predict_on_batch, args.batch, resnext.train_on_batch, macs),
    }
    if not args.no_train:
        rows.update(training_rows(resnext, args, include_bf16=args.bf16 or devices.cpu_has_native_bf16()))
    if not args.no_native:
        native = compiled(kr.ResNeXt((3, 4, 6, 3), 32, 4, name="native", conv_implementation="native"))
        native.set_weights(resnext.get_weights())
        rows["ResNeXt50 (native grouped conv)"] = (
            native.predict_on_batch, args.native_train_batch, native.train_on_batch, count_macs(native),
        )
    if args.onnx and not args.deploy:
        rows["ResNeXt50 (onnxruntime)"] = (onnx_runner(resnext), 0, None, count_macs(resnext))
    rng = np.random.default_rng(0)
    if args.deploy:
        rows.update(deploy_rows(resnet, resnext, rng.uniform(-1, 1, (16, 224, 224, 3)).astype("float32")))
    if args.no_train:
        rows = {name: (infer, 0, None, macs) for name, (infer, _, _, macs) in rows.items()}

    def batch_of(n):
        return rng.uniform(-1, 1, (n, 224, 224, 3)).astype("float32"), rng.integers(0, 1000, (n,))

    def timed(fn, *a):
        start = time.perf_counter()
        fn(*a)
        return time.perf_counter() - start

    x, _ = batch_of(args.batch)
    for infer, n, train, _ in rows.values():  # warm-up: tracing and first-call costs
        if infer:
            infer(x)
        if train and n:
            train(*batch_of(n))
    results = {name: {"infer": [], "train": []} for name in rows}
    for _ in range(args.rounds):
        for name, (infer, n, train, _) in rows.items():
            if infer:
                results[name]["infer"].append(args.batch / timed(infer, x))
            if train and n:
                results[name]["train"].append(n / timed(train, *batch_of(n)))

    base = {k: statistics.median(v) for k, v in results[BASELINE].items() if v}
    print(f"backend={keras.backend.backend()} batch={args.batch} rounds={args.rounds} "
          f"cores={os.cpu_count()} (median img/s; ratio = x {BASELINE.split()[0]})")
    print(f"{'model':38s} {'GMACs':>6s} {'infer':>8s} {'ratio':>6s} {'train':>8s} {'ratio':>6s}")
    for name, r in results.items():
        line = f"{name:38s} {rows[name][3] / 1e9:6.2f}"
        if r["infer"]:
            infer = statistics.median(r["infer"])
            line += f" {infer:8.2f} {infer / base['infer']:6.2f}"
        else:
            line += f" {'':8s} {'':6s}"
        if r["train"]:
            train = statistics.median(r["train"])
            line += f" {train:8.3f} {train / base['train']:6.3f}"
        print(line)


if __name__ == "__main__":
    main()

"""What the int8 path leaves on the table: LiteRT int8 ResNeXt50 with and without the NaN guard, by thread count.

Rows, side by side in one run (medians of interleaved rounds, ratio to keras ResNet50 float32):
keras ResNet50 and ResNeXt50 in float32; LiteRT int8 of ResNeXt50 as `export.to_litert`
writes it (the NaN guard in the graph) and as the int8 predictor converts it (the guard
left to NumPy), on every core, on LiteRT's default thread count (one), and with XNNPACK's
latest features. It starts with `kr.devices.report()`: VNNI is what int8 needs to pay off.

    python benchmarks/int8_options.py [--batch 16] [--rounds 4]
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

from keras_resnext import devices, export, int8  # noqa: E402
from speed import litert_file_runner  # noqa: E402 - benchmarks/ is this script's folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    devices.report()
    resnet, resnext = keras.applications.ResNet50(weights=None), kr.ResNeXt50(weights=None)
    rng = np.random.default_rng(0)
    calibration = rng.uniform(-1, 1, (16, 224, 224, 3)).astype("float32")  # speed only
    x = rng.uniform(-1, 1, (args.batch, 224, 224, 3)).astype("float32")
    folder = tempfile.mkdtemp()
    guarded = export.to_litert(resnext, os.path.join(folder, "guarded.tflite"), quantize="int8",
                               representative_data=calibration)
    unguarded = export.to_litert(int8.without_nonfinite_guard(resnext), os.path.join(folder, "unguarded.tflite"),
                                 quantize="int8", representative_data=calibration)
    cores = os.cpu_count()
    rows = {
        "ResNet50 float32 (keras)": resnet.predict_on_batch,
        "ResNeXt50 float32 (keras)": resnext.predict_on_batch,
        f"int8, guard in the graph, {cores} threads": litert_file_runner(guarded, num_threads=cores),
        f"int8, guard in NumPy, {cores} threads": litert_file_runner(unguarded, num_threads=cores),
        f"int8, guard in NumPy, {cores} threads, latest": litert_file_runner(
            unguarded, num_threads=cores, experimental_default_delegate_latest_features=True),
        "int8, guard in NumPy, LiteRT's default threads": litert_file_runner(unguarded),
    }
    for run in rows.values():  # warm-up
        run(x)
    rates = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, run in rows.items():
            start = time.perf_counter()
            run(x)
            rates[name].append(args.batch / (time.perf_counter() - start))
    base = statistics.median(rates["ResNet50 float32 (keras)"])
    print(f"batch={args.batch} rounds={args.rounds} cores={cores} (median img/s; ratio = x ResNet50 float32)")
    for name, r in rates.items():
        print(f"{name:48s} {statistics.median(r):7.2f} {statistics.median(r) / base:6.2f}")


if __name__ == "__main__":
    main()

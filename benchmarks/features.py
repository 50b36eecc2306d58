"""Backbone features cost nothing extra: a features_only ResNeXt50 against the include_top=False model.

Both are built from the same weights at 512x512 (a detection-sized input); the
features model returns P1..P5, the headless model only the last stage. Every
round times each row once, in turn (interleaved), so machine noise hits both
alike; medians over rounds are printed, with the ratio to the headless model.

    python benchmarks/features.py [--batch 2] [--rounds 5] [--size 512]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_resnext as kr  # noqa: E402 - before Keras: it turns oneDNN on where TensorFlow would not
import keras  # noqa: E402
import numpy as np  # noqa: E402


BASELINE = "ResNeXt50 include_top=False"


def _same_weights(model, source):
    model.set_weights(source.get_weights())
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)

    shape = (args.size, args.size, 3)
    headless = kr.ResNeXt50(weights=None, include_top=False, input_shape=shape)
    features = kr.ResNeXt50(weights=None, features_only=True, input_shape=shape)
    _same_weights(features, headless)
    rows = {
        BASELINE: headless.predict_on_batch,
        "ResNeXt50 features_only (P1..P5)": features.predict_on_batch,
        "ResNeXt50 features_only (P2..P5)": _same_weights(
            kr.ResNeXt50(weights=None, features_only=True, out_indices=(1, 2, 3, 4), input_shape=shape), headless
        ).predict_on_batch,
        "ResNeXt50 features_only, output_stride=16": _same_weights(
            kr.ResNeXt50(weights=None, features_only=True, output_stride=16, input_shape=shape), headless
        ).predict_on_batch,
    }
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, *shape)).astype("float32")
    for infer in rows.values():  # warm-up: tracing and first-call costs
        infer(x)
    results = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, infer in rows.items():
            start = time.perf_counter()
            infer(x)
            results[name].append(args.batch / (time.perf_counter() - start))
    kr.devices.report()
    base = statistics.median(results[BASELINE])
    implementation = headless.get_layer("stage1_block1").conv2.resolved_implementation
    print(f"backend={keras.backend.backend()} batch={args.batch} size={args.size} rounds={args.rounds} "
          f"cores={os.cpu_count()} grouped conv={implementation} (median img/s; ratio = x {BASELINE})")
    for name, r in results.items():
        print(f"{name:44s} {statistics.median(r):8.3f} {statistics.median(r) / base:6.2f}")


if __name__ == "__main__":
    main()

"""ResNeXt50 vs keras.applications.ResNet50 vs a native grouped-conv build: img/s, side by side.

Every round times each model once, in turn (interleaved), so machine noise hits
all of them alike; the median over rounds is reported, with ratios to ResNet50.
Training uses compile() defaults (jit_compile="auto"), SGD and batch statistics.

    python benchmarks/speed.py [--batch 16] [--rounds 5] [--native-train-batch 2]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_resnext as kr  # noqa: E402


def build_models(native):
    models = {
        "ResNet50 (keras.applications)": keras.applications.ResNet50(weights=None),
        "ResNeXt50 (keras_resnext, auto)": kr.ResNeXt50(weights=None),
    }
    if native:
        # keras.ops.conv with a grouped kernel is what keras.layers.Conv2D(groups=32) runs.
        models["ResNeXt50 (native grouped conv)"] = kr.ResNeXt(
            (3, 4, 6, 3), 32, 4, name="resnext50_native", conv_implementation="native"
        )
    for model in models.values():
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    return models


def img_per_s(fn, batch):
    start = time.perf_counter()
    fn()
    return batch / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--native-train-batch", type=int, default=2,
                        help="batch for the native build's training step (0 skips it: it is ~50x slower)")
    parser.add_argument("--no-native", action="store_true", help="leave out the native grouped-conv build")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    models = build_models(native=not args.no_native)

    def batch_of(n):
        return rng.uniform(-1, 1, (n, 224, 224, 3)).astype("float32"), rng.integers(0, 1000, (n,))

    def train_batch(name):
        return args.native_train_batch if "native" in name else args.batch

    x, _ = batch_of(args.batch)
    results = {name: {"infer": [], "train": []} for name in models}
    for name, model in models.items():  # warm-up: tracing and first-call costs
        model.predict_on_batch(x)
        if train_batch(name):
            model.train_on_batch(*batch_of(train_batch(name)))
    for _ in range(args.rounds):
        for name, model in models.items():
            results[name]["infer"].append(img_per_s(lambda: model.predict_on_batch(x), args.batch))
            n = train_batch(name)
            if n:
                xt, yt = batch_of(n)
                results[name]["train"].append(img_per_s(lambda: model.train_on_batch(xt, yt), n))

    base = {k: statistics.median(v) for k, v in results["ResNet50 (keras.applications)"].items()}
    print(f"backend={keras.backend.backend()} batch={args.batch} rounds={args.rounds} (median img/s)")
    print(f"{'model':34s} {'infer img/s':>12s} {'x ResNet50':>10s} {'train img/s':>12s} {'x ResNet50':>10s}")
    for name, r in results.items():
        infer = statistics.median(r["infer"])
        line = f"{name:34s} {infer:12.2f} {infer / base['infer']:10.2f}"
        if r["train"]:
            train = statistics.median(r["train"])
            line += f" {train:12.3f} {train / base['train']:10.3f}"
        print(line)


if __name__ == "__main__":
    main()

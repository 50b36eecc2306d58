"""What the import order costs, and the grouped-conv path the package takes when oneDNN is off.

Each row runs in a fresh process and prints one line: which module was imported first, whether
TensorFlow runs with oneDNN, the path `"auto"` picks, and ResNeXt50's inference img/s against
keras.applications.ResNet50 in the same process (batch 16, 224 px, random weights, median of
`--rounds` interleaved rounds).

- `order`: `import keras_resnext` first (the documented order), `import keras` first (every Keras
  tutorial), `import tensorflow` first. TensorFlow turns oneDNN on by itself only on CPUs with
  AVX-512 VNNI/BF16 or AMX; elsewhere the package turns it on, if it is imported first.
- `path`: with oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`, what a late import leaves on an AVX2 CPU),
  ResNeXt50 on each grouped-conv implementation, to check that `"auto"`'s fallback is the fastest
  correct one without oneDNN.

    python benchmarks/import_order.py [--rounds 3]
"""

import argparse
import json
import os
import subprocess
import sys

ROW = """
import json, os, statistics, sys, time
first, implementation, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
__import__(first)
import keras_resnext as kr, keras, numpy as np
from keras_resnext import devices
x = np.random.default_rng(0).uniform(0, 255, (16, 224, 224, 3)).astype("float32")
resnet = keras.applications.ResNet50(weights=None)
resnext = kr.ResNeXt50(weights=None, conv_implementation=implementation)
times = {"resnet": [], "resnext": []}
for net in (resnet, resnext):
    net.predict_on_batch(x)
for _ in range(rounds):
    for name, net in (("resnet", resnet), ("resnext", resnext)):
        start = time.perf_counter()
        net.predict_on_batch(x)
        times[name].append(time.perf_counter() - start)
speed = {name: 16 / statistics.median(t) for name, t in times.items()}
print(json.dumps({"onednn": devices.tf_onednn_enabled(), "auto": devices.fastest_grouped_conv("tensorflow"),
                  "resnet": speed["resnet"], "resnext": speed["resnext"]}))
"""


def row(first, implementation, rounds, onednn=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", ROW, first, implementation, str(rounds)], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        return {"failed": done.stderr.strip().splitlines()[-1][:80]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from keras_resnext import devices

    devices.report()
    print(f"ResNeXt50 inference, batch 16, 224 px, median of {args.rounds} rounds, each row a fresh process")
    print(f"{'imported first':16s} {'oneDNN':7s} {'path':15s} {'ResNet50':>9s} {'ResNeXt50':>9s} {'x ResNet50':>10s}")
    rows = [(first, "auto", None) for first in ("keras_resnext", "keras", "tensorflow")]
    rows += [("tensorflow", path, "0") for path in ("split", "direct", "block_diagonal", "native")]
    for first, implementation, onednn in rows:
        result = row(first, implementation, args.rounds, onednn)
        if "failed" in result:
            print(f"{first:16s} {'False':7s} {implementation:15s} failed: {result['failed']}")
            continue
        path = result["auto"] if implementation == "auto" else implementation
        print(f"{first:16s} {str(result['onednn']):7s} {path:15s} {result['resnet']:9.2f} {result['resnext']:9.2f} "
              f"{result['resnext'] / result['resnet']:10.2f}")


if __name__ == "__main__":
    main()

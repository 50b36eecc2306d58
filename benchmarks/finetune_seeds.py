"""Fine-tuning (and training from scratch) on a small folder, over many seeds: pass count, mean, minimum.

The job is the suite's own (tests/test_folders.py): 3 colour classes, 50 pictures
each at 40 px (2 broken files), the torchvision fixture checkpoint
(`tv_resnext_tiny`, 1,1,1,1:8:4), 64 px, batch 16, 4 epochs, `keras-resnext train`'s
defaults for everything else. Each seed is one whole `jobs.train`, the seed setting
the split, the shuffling, the augmentation and the new head's initial weights.
One number per seed, the test accuracy of the final model; a seed "passes" at >= 0.8.

    python benchmarks/finetune_seeds.py [--seeds 20] [--from-scratch] [--export DIR]

`--export DIR` also writes each seed's decoded, augmented training batches (every
epoch's, in order) and its test images to `DIR/seed<N>.npz`, for
`benchmarks/finetune_seeds_torch.py` to train the same job in PyTorch on the same data.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # the suite's picture folder and fixture checkpoint

import keras_resnext as kr  # noqa: E402,F401 - before Keras: it turns oneDNN on where TensorFlow would not
import keras  # noqa: E402
import numpy as np  # noqa: E402

from helpers import FIXTURES, colour_folder  # noqa: E402
from keras_resnext import devices, jobs  # noqa: E402

PASS = 0.8
JOB = dict(model="1,1,1,1:8:4", epochs=4, batch_size=16)
CHECKPOINT = str(FIXTURES / "tv_resnext_tiny.safetensors")


def export_batches(dataset, seed, path):
    """The training batches of each epoch and the test split of `seed`'s run, as the package makes them."""
    keras.utils.set_random_seed(seed)
    options = dict(image_size=JOB["image_size"], seed=seed, data_dir=None, download=False, val_split=0.2)
    train_ds, test_ds, info, _ = jobs.run_inputs._fitting_batches(dataset, JOB["batch_size"], options)
    epochs = [[(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)) for x, y in train_ds]
              for _ in range(JOB["epochs"])]
    test = [(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)) for x, y in test_ds]
    np.savez(path, train_x=np.stack([[x for x, _ in e] for e in epochs]),
             train_y=np.stack([[y for _, y in e] for e in epochs]),
             test_x=np.concatenate([x for x, _ in test]), test_y=np.concatenate([y for _, y in test]),
             classes=info.num_classes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0 .. N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--from-scratch", action="store_true", help="random initial weights, no checkpoint")
    parser.add_argument("--export", metavar="DIR", help="write each seed's batches for the PyTorch script")
    parser.add_argument("--json", metavar="PATH", help="write the per-seed results here")
    args = parser.parse_args(argv)

    print(f"CPU: {devices.cpu_name()}; keras {keras.__version__}; job {JOB}, "
          f"{'from scratch' if args.from_scratch else 'fine-tuning ' + os.path.basename(CHECKPOINT)}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = f"folder:{colour_folder(pathlib.Path(tmp, 'images'))}"
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            if args.export:
                os.makedirs(args.export, exist_ok=True)
                export_batches(dataset, seed, os.path.join(args.export, f"seed{seed}.npz"))
            keras.utils.clear_session()
            start = time.perf_counter()
            metrics = jobs.train(dataset=jobs.TrainingData(dataset, image_size=64),
                                 weights=None if args.from_scratch else CHECKPOINT,
                                 run=jobs.RunOptions(os.path.join(tmp, f"run{seed}"), seed=seed, verbose=0), **JOB)
            accuracy = metrics["test_accuracy"]
            results.append({"seed": seed, "test_accuracy": accuracy})
            print(f"seed {seed:2d}: test accuracy {accuracy:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    accuracies = [r["test_accuracy"] for r in results]
    print(f"passes (>= {PASS}): {sum(a >= PASS for a in accuracies)} of {len(accuracies)}; "
          f"mean {statistics.mean(accuracies):.3f}; min {min(accuracies):.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()

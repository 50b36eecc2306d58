"""Where the paper's colour augmentation runs: what the host feeds, and what the training step pays for it.

On a folder of JPEGs (benchmarks/pipeline.py's), measured side by side in one run:

- the host pipeline of `load_dataset(..., "train", dtype="uint8")` (random-resized crop to
  224, flip, batch 64) with the crop and flip alone; with the paper's colour on the host
  (`PaperRecipe(color="host")`, the default on a CPU); and as `train` loads it with the
  colour on the device (`PaperRecipe(color="device")`, the default on a GPU or TPU): img/s
  and the ratio to crop-and-flip (target: the host with the colour >= 0.8x; with the
  colour on the device, crop-and-flip's speed);
- a training step of a ResNeXt on those uint8 batches with and without
  `PaperColorAugmentation` in front of it (`color_augmentation.with_color_on_device`):
  the median step time of each, alternating, and the share of the step the colour costs.

    python benchmarks/color_placement.py [--images 512] [--rounds 5] [--batches 8] [--model resnext50]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_resnext as kr  # noqa: E402 - first: oneDNN before TensorFlow
import keras  # noqa: E402

from keras_resnext import data, devices, recipes  # noqa: E402
from keras_resnext.color_augmentation import with_color_on_device  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline import BATCH, SIZE, images_per_second, make_folder  # noqa: E402

MODELS = {  # a step a 2-core CPU takes in seconds, and the paper's own
    "small": lambda: kr.ResNeXt((1, 1, 1, 1), 8, 4, input_shape=(SIZE, SIZE, 3), include_preprocessing=True),
    "resnext50": lambda: kr.ResNeXt50(weights=None, input_shape=(SIZE, SIZE, 3), include_preprocessing=True),
}


def host_pipelines(folder):
    """The host's training pipelines: crop and flip alone, and as `train` loads them for each colour placement."""
    rows = {"crop and flip alone": "crop_flip"}
    for place in ("host", "device"):
        rows[f"paper recipe, colour on the {place}"] = recipes.PaperRecipe(color=place).data_options(
            f"folder:{folder}")["augmentation"]
    return {name: data.load_dataset(f"folder:{folder}", "train", batch_size=BATCH, image_size=SIZE, seed=0,
                                    val_split=0.01, dtype="uint8", augmentation=augmentation)[0]
            for name, augmentation in rows.items()}


def step_seconds(model, images, labels, steps):
    """The median time of `steps` training steps after a warm-up step."""
    model.train_on_batch(images, labels)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(images, labels)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_steps(batch, model_name, rounds, steps):
    """Median step seconds of the model alone and behind the colour layer, alternating over `rounds`."""
    images, labels = batch
    net = MODELS[model_name]()
    trainers = {"model alone": net, "colour layer, then the model": with_color_on_device(net, seed=0)}
    for trainer in trainers.values():
        trainer.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                        loss=keras.losses.SparseCategoricalCrossentropy())
    times = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            times[name].append(step_seconds(trainer, images, labels, steps))
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=8, help="batches timed per pipeline and round")
    parser.add_argument("--model", default="small", choices=sorted(MODELS))
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per model and round")
    args = parser.parse_args(argv)
    devices.report()
    with tempfile.TemporaryDirectory() as scratch:
        folder = make_folder(os.path.join(scratch, "jpegs"), args.images)
        pipelines = host_pipelines(folder)
        speeds = {name: [] for name in pipelines}
        for _ in range(args.rounds):
            for name, ds in pipelines.items():
                speeds[name].append(images_per_second(ds, args.batches))
        batch = next(iter(pipelines["crop and flip alone"]))
    print(f"host pipeline: folder of {args.images} JPEGs, batch {BATCH}, {SIZE} px, uint8, {args.rounds} rounds x "
          f"{args.batches} batches, {os.cpu_count()} cores (median img/s)")
    base = statistics.median(speeds["crop and flip alone"])
    for name, values in speeds.items():
        print(f"  {name:40s} {statistics.median(values):8.0f} img/s {statistics.median(values) / base:6.2f}x")
    steps = training_steps(batch, args.model, args.rounds, args.steps)
    alone = steps["model alone"]
    print(f"training step, {args.model}, batch {BATCH} (median of {args.rounds} x {args.steps} steps):")
    for name, seconds in steps.items():
        print(f"  {name:40s} {seconds * 1000:8.1f} ms  {(seconds - alone) / alone:+7.1%}")


if __name__ == "__main__":
    main()

"""ResNeXt50 against ResNet50 (and timm's ResNeXt50) on a GPU, under XLA and mixed precision: img/s.

Rows, for each of `mixed_bfloat16` and `mixed_float16`, a training step (forward, loss,
gradients, SGD update) and an inference step each:

- `keras.applications.ResNet50` and `keras_resnext.ResNeXt50` (grouped convs on the
  `"auto"` path), compiled with `jit_compile=True` (XLA on JAX; on the torch backend
  Keras' default, eager);
- with the torch backend, timm's `resnext50_32x4d` in PyTorch as a user would run it:
  channels_last, `torch.autocast`, `torch.compile`, SGD (a GradScaler for float16):
  the peer a user would pick instead.

Every round times each row once, in turn (interleaved), after warm-up steps that
compile; medians over rounds are printed with ratios to ResNet50 (and, for timm, to
ResNeXt50), beside the device and the versions. Inputs are random and already on the
device.

    KERAS_BACKEND=jax python benchmarks/accelerator.py [--batch 128] [--size 224] [--rounds 5]
    KERAS_BACKEND=torch python benchmarks/accelerator.py        # adds the timm rows
    ... --implementations auto,split                             # a ResNeXt50 row per grouped-conv path
    python benchmarks/accelerator.py --smoke                    # the same code on a CPU in seconds

`--implementations` adds a ResNeXt50 row for each grouped-conv implementation named beside
`"auto"` (what `"auto"` picks is the row without a suffix), so one call can tell whether the
path `"auto"` picks on this device is the fastest there.

`--smoke` runs every row once on a tiny ResNeXt and ResNet-like pair at 32 px, batch 2
(the timm rows only where torch and timm are installed): the suite runs it so the script
keeps working between the days a GPU is at hand. `benchmarks/accelerator.sh` carries what
a GPU machine without Keras lacks and runs both backends in one command.
"""

import argparse
import functools
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))  # the package from this checkout, installed or not

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_resnext as kr  # noqa: E402

PRECISIONS = ("mixed_bfloat16", "mixed_float16")
BASELINE = "ResNet50 (keras.applications)"
RESNEXT = "ResNeXt50 (keras_resnext)"
TIMM = "timm resnext50_32x4d (torch.compile)"


def resnext_row(implementation):
    """The row name of ResNeXt50 with grouped convs on `implementation` (`"auto"`: the plain row)."""
    return RESNEXT if implementation == "auto" else f"{RESNEXT[:-1]}, {implementation})"


def keras_models(smoke, size, classes, implementations=("auto",)):
    """`{row: model}` for the Keras rows, ResNeXt50 once per grouped-conv implementation; tiny stand-ins of the
    same families with --smoke."""
    shape = (size, size, 3)
    if smoke:
        models = {BASELINE: kr.ResNeXt((1,), 1, 16, classes=classes, input_shape=shape, name="resnet_like")}
        resnext = functools.partial(kr.ResNeXt, (1,), 8, 4, classes=classes, input_shape=shape)
    else:
        models = {BASELINE: keras.applications.ResNet50(weights=None, input_shape=shape, classes=classes)}
        resnext = functools.partial(kr.ResNeXt50, weights=None, input_shape=shape, classes=classes)
    for implementation in implementations:
        models[resnext_row(implementation)] = resnext(conv_implementation=implementation)
    return models


def keras_steps(model, x, y):
    """`(train, infer)` for a Keras model: one `train_on_batch` and one `predict_on_batch` (both wait for the device)."""
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=True if keras.backend.backend() == "jax" else "auto")
    return (lambda: model.train_on_batch(x, y)), (lambda: model.predict_on_batch(x))


def timm_steps(precision, x, y, smoke, classes):
    """`(train, infer)` for timm's resnext50_32x4d, as a PyTorch user runs it; None without torch and timm."""
    try:
        import timm
        import torch
    except ImportError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if precision == "mixed_bfloat16" else torch.float16
    name = "resnet10t" if smoke else "resnext50_32x4d"  # resnet10t: timm's smallest, for the CPU smoke run
    model = timm.create_model(name, pretrained=False, num_classes=classes).to(device, memory_format=torch.channels_last)
    images = torch.as_tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last).to(device)
    labels = torch.as_tensor(np.asarray(y)).long().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device, enabled=dtype == torch.float16 and device == "cuda")
    train_model, infer_model = (model, model) if smoke else (torch.compile(model), torch.compile(model))

    def sync(value):
        if device == "cuda":
            torch.cuda.synchronize()
        return value

    def train():
        model.train()
        with torch.autocast(device, dtype=dtype):
            loss = torch.nn.functional.cross_entropy(train_model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return sync(loss)

    def infer():
        model.eval()
        with torch.no_grad(), torch.autocast(device, dtype=dtype):
            return sync(infer_model(images))

    return train, infer


def rows_for(precision, args):
    """`{row name: step}` for one precision: each model's training and inference steps."""
    keras.config.set_dtype_policy(precision)
    try:
        rng = np.random.default_rng(0)
        x_host = rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype("float32")
        y_host = rng.integers(0, args.classes, args.batch)
        x, y = keras.ops.convert_to_tensor(x_host), keras.ops.convert_to_tensor(y_host)  # on the device
        rows = {}
        for name, model in keras_models(args.smoke, args.size, args.classes, args.implementations).items():
            rows[f"{name} train"], rows[f"{name} infer"] = keras_steps(model, x, y)
        if keras.backend.backend() == "torch":
            steps = timm_steps(precision, x_host, y_host, args.smoke, args.classes)
            if steps:
                rows[f"{TIMM} train"], rows[f"{TIMM} infer"] = steps
        return rows
    finally:
        keras.config.set_dtype_policy("float32")


def measure(rows, batch, rounds, warmup):
    """Median img/s of each row over `rounds` interleaved rounds, after `warmup` calls each (compilation)."""
    for step in rows.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in rows}
    for _ in range(rounds):
        for name, step in rows.items():
            start = time.perf_counter()
            step()
            times[name].append(batch / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in times.items()}


def device_line():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"jax {jax.__version__}: {device.platform} {getattr(device, 'device_kind', '')}"
    if backend == "torch":
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
        return f"torch {torch.__version__}: {gpu}"
    return f"{backend}: {kr.devices.accelerator() or 'CPU'}"


def report(precision, speeds):
    """Printed rows for one precision: img/s, and the ratio to ResNet50 (timm's also to ResNeXt50)."""
    lines = [f"{precision}:"]
    for name, speed in speeds.items():
        kind = name.rsplit(" ", 1)[1]
        ratio = f"{speed / speeds[f'{BASELINE} {kind}']:.2f}x ResNet50"
        if name.startswith(TIMM):
            ratio += f", ResNeXt50 (keras_resnext) at {speeds[f'{RESNEXT} {kind}'] / speed:.2f}x timm"
        lines.append(f"  {name:48s} {speed:9.1f} img/s  {ratio}")
    return lines


def implementations(parser, text):
    """`("auto", ...)` from --implementations, `"auto"` first; a usage error for a path that is not one here."""
    names = ["auto"] + [name for name in text.split(",") if name != "auto"]
    for name in names:
        try:
            kr.grouped_conv.validate_implementation(name)  # "direct" only on TensorFlow, say
        except ValueError as error:
            parser.error(f"--implementations: {error}")
    return tuple(dict.fromkeys(names))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls of each row first (they compile)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--implementations", default="auto",
                        help="grouped-conv paths of ResNeXt50, joined by ',': auto (always), native, split, ...")
    parser.add_argument("--smoke", action="store_true", help="tiny models, 32 px, batch 2, one round: a CPU check")
    args = parser.parse_args(argv)
    args.implementations = implementations(parser, args.implementations)
    if args.smoke:
        args.batch, args.size, args.rounds, args.warmup, args.classes = 2, 32, 1, 1, 10
    print(f"{device_line()}; keras {keras.__version__} ({keras.backend.backend()}); python "
          f"{platform.python_version()}; batch {args.batch}, {args.size} px, median of {args.rounds} rounds"
          f"{'; smoke: one-stage stand-ins of both models' if args.smoke else ''}", flush=True)
    results = {}
    for precision in args.precisions.split(","):
        if precision not in PRECISIONS:
            raise SystemExit(f"accelerator.py: unknown precision {precision!r}; expected {', '.join(PRECISIONS)}")
        keras.utils.clear_session()
        results[precision] = measure(rows_for(precision, args), args.batch, args.rounds, args.warmup)
        print("\n".join(report(precision, results[precision])), flush=True)
    return results


if __name__ == "__main__":
    main()

"""The `keras-resnext` command line: one small parser builder and one handler per command.

Modules that pull in TensorFlow, Keras or keras-tuner are imported inside the
handlers, so `keras-resnext --help` and argument errors answer at once.
"""

import argparse
import json
import math
import os
import sys
import warnings

from keras_resnext import config, startup
from keras_resnext.config import (
    COLOR_PLACES, DATASETS, INFERENCE_PRECISIONS, INT8_ENGINES, OPTIMIZERS, OUTPUT_STRIDES, RECIPES, STEMS, STRATEGIES,
    TUNERS,
)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (`prog: error: ...`, exit 2) and no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text):
    """An argparse type: `config.positive_int`'s rule, in argparse's words."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    try:
        return config.positive_int("value", value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}") from None


def positive_ints(separator, example):
    """An argparse type: positive integers joined by `separator` (`1,2,4` or `3-4-6-3`), as a list."""

    def parse(text):
        try:
            return [positive_int(part) for part in text.split(separator)]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected positive integers joined by {separator!r}, such as {example}; got {text!r}") from None

    return parse


def cmd_summary(args):
    import keras

    from keras_resnext import config, models

    constructor = models.constructor_for(args.model)
    if args.input_size is None:  # the stem's own size: a named variant's, or the one given to ResNeXt
        variant = getattr(constructor, "variant", None)
        stem = (config.VARIANTS[variant] if variant else constructor.keywords).get("stem", "imagenet")
        args.input_size = config.STEM_GEOMETRY[stem]["input_size"]
    shape = (args.input_size, args.input_size, 3)
    # The tables read shapes only, so the weights are never drawn (nearly all of building a large
    # model: ResNeXt101_32x32d is summarized in 1 s instead of 11).
    with keras.StatelessScope(initialize_variables=False):
        if args.features:
            model = constructor(weights=None, input_shape=shape, features_only=True, output_stride=args.output_stride)
            _print_features(model, args.input_size)
        else:
            _print_layers(constructor(weights=None, input_shape=shape, output_stride=args.output_stride), args.input_size)


def _print_layers(model, input_size):
    """The layer table: output shape, parameters and exact MACs of every layer."""
    import keras

    from keras_resnext.flops import layer_macs

    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shape = (1, *keras.tree.flatten(layer.input)[0].shape[1:])
        rows.append((layer.name, type(layer).__name__, str(tuple(layer.output.shape[1:])),
                     layer.count_params(), layer_macs(layer, shape)))
    width = max(len(r[0]) for r in rows)
    print(f"{model.name}  input {input_size}x{input_size}x3")
    print(f"{'layer':{width}s}  {'type':20s} {'output':18s} {'params':>12s} {'MACs':>15s}")
    for name, kind, out, params, macs in rows:
        print(f"{name:{width}s}  {kind:20s} {out:18s} {params:12,d} {macs:15,d}")
    trainable = sum(math.prod(v.shape) for v in model.trainable_weights)
    print(f"{'total':{width}s}  {'':20s} {'':18s} {model.count_params():12,d} {sum(r[4] for r in rows):15,d}")
    print(f"trainable parameters: {trainable:,d}")


def _print_features(model, input_size):
    """The feature levels of a backbone: key, layer, output shape, channels and stride."""
    print(f"{model.name}  input {input_size}x{input_size}x3  feature levels (pyramid_outputs / feature_info)")
    print(f"{'level':6s} {'layer':16s} {'output':20s} {'channels':>8s} {'stride':>6s}")
    for info in model.feature_info:
        shape = str(tuple(model.get_layer(info["module"]).output.shape[1:]))
        print(f"{info['key']:6s} {info['module']:16s} {shape:20s} {info['num_chs']:8d} {info['reduction']:6d}")


def progress_verbosity():
    """Keras' `verbose` for `fit`: progress bars on a terminal, one line per epoch into a file or a pipe
    (a bar's redraws, carriage returns and escapes, made a log of the main job 100 KB)."""
    return 1 if sys.stdout.isatty() else 2


def cmd_train(args):
    from keras_resnext import jobs, recipes

    recipe = recipes.named(args.recipe, schedule=args.schedule, label_smoothing=args.label_smoothing,
                           optimizer=args.optimizer, color=args.color_augmentation)
    data = jobs.TrainingData(args.dataset, image_size=args.image_size, val_split=args.val_split, strict=args.strict,
                             class_weight=args.class_weight, data_dir=args.data_dir, download=args.download,
                             service=args.data_service)
    run = jobs.RunOptions(output=args.output, overwrite=args.overwrite, seed=args.seed, strategy=args.strategy,
                          precision=args.precision, verbose=progress_verbosity())
    metrics = jobs.train(args.model, data, epochs=args.epochs, batch_size=args.batch_size, weights=args.weights,
                         freeze_epochs=args.freeze_epochs, recipe=recipe, run=run)
    if "test_accuracy" not in metrics:  # another process of a JAX run spanning processes
        epochs = metrics["epochs_run_here"]
        print(f"process {metrics['process']}: trained {epochs} epoch{'s' * (epochs != 1)}; process 0 tests the "
              f"model and writes the run folder {metrics['output']}")
        return
    if metrics.get("already_complete"):
        print(f"{metrics['output']} is a completed run (pass --overwrite to train it again):")
    print(f"test accuracy {metrics['test_accuracy']:.4f} after {metrics['epochs']} epochs "
          f"({metrics['seconds']:.0f} s); run folder: {metrics['output']}")


def cmd_evaluate(args):
    from keras_resnext import jobs

    result = jobs.evaluate(args.model_file, dataset=args.dataset, data_dir=args.data_dir, download=args.download,
                           precision=args.precision, calibration=args.calibration,
                           calibration_images=args.calibration_images, int8_engine=args.int8_engine)
    print(json.dumps(result, indent=2))


def cmd_predict(args):
    from keras_resnext import jobs

    if not args.model_file and not args.model:
        raise ValueError("give --model-file RUN/model.keras, or --model NAME [--weights TAG].")
    results = jobs.predict(args.images, model_path=args.model_file, model=args.model, weights=args.weights,
                           top=args.top, show_progress=sys.stdout.isatty(), precision=args.precision,
                           explain_dir=args.explain,
                           calibration=args.calibration, calibration_images=args.calibration_images,
                           int8_engine=args.int8_engine)
    csv_path = args.csv or ("predictions.csv" if any(os.path.isdir(p) for p in args.images) else None)
    if csv_path:
        jobs.write_predictions_csv(csv_path, results)
        print(f"wrote {csv_path} ({len(results)} images)")
    if args.explain:
        print(f"wrote Grad-CAM overlays to {args.explain}")
    failed = 0
    for path, result in results.items():
        if isinstance(result, str):
            failed += 1
            print(f"{path}: {result}")
            continue
        print(f"{path}:")
        for name, p in result:
            print(f"  {p:7.2%}  {name}")
    return 1 if failed == len(results) else 0


def cmd_export(args):
    from keras_resnext import export, jobs, models

    if args.source.endswith(".keras"):
        model = jobs.load_run_model(args.source)[0]
    else:
        model = models.constructor_for(args.source)(weights=args.weights)
    calibration = _calibration_data(args, model)
    if args.format == "onnx":
        export.to_onnx(model, args.output, opset=args.opset, batch_size=args.batch_size, quantize=args.quantize,
                       calibration_data=calibration)
    elif args.format == "litert":
        export.to_litert(model, args.output, quantize=args.quantize, representative_data=calibration,
                         grouped=not args.no_grouped_conv)
    else:
        if args.quantize:
            raise ValueError("--quantize applies to --format onnx and litert; a SavedModel keeps float32.")
        export.to_saved_model(model, args.output)
    print(f"wrote {args.output} ({args.format}{', ' + args.quantize if args.quantize else ''})")


def _calibration_data(args, model):
    """The batches `--calibration DATASET` names, preprocessed for `model`, or None when not quantizing to int8."""
    if args.quantize != "int8":
        return None
    if not args.calibration:
        raise ValueError("--quantize int8 needs --calibration DATASET (digits, folder:PATH or a tfds name): "
                         "images to measure the activations' ranges on.")
    from keras_resnext import jobs

    return jobs.calibration_data(args.calibration, model, args.calibration_images)


# The named search specs ship inside the package (tuning/specs/ in the repository links here).
SPECS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "specs")


def spec_names():
    """The names `tune --spec NAME` accepts."""
    return sorted(f[:-5] for f in os.listdir(SPECS_DIR) if f.endswith(".json"))


def load_spec(name):
    """A search spec by path or by name (`spec_names()`): JSON of `jobs.tune` arguments."""
    path = name if os.path.exists(name) else os.path.join(SPECS_DIR, f"{name}.json")
    if not os.path.isfile(path):
        raise ValueError(f"No search spec {name!r}; give a JSON file or one of: {', '.join(spec_names())}.")
    try:
        with open(path) as f:
            spec = json.load(f)
    except ValueError as e:
        raise ValueError(f"Search spec {path} is not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"Search spec {path} must be a JSON object of tune arguments.")
    spec.pop("description", None)
    _check_spec_keys(path, spec)
    return spec


SPEC_KEYS = ("dataset", "budget", "max_trials", "epochs", "output", "tuner", "cardinalities", "depth_options",
             "stem", "batch_size", "data_dir", "tolerance", "seed", "image_size", "val_split", "repeats", "recipe",
             "precision", "schedule", "optimizer", "label_smoothing", "max_latency_ms")


def _check_spec_keys(path, spec):
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"Search spec {path} has unknown keys {', '.join(unknown)}; "
                         f"accepted: description, {', '.join(SPEC_KEYS)}.")


def _tune_arguments(args):
    """`jobs.tune` keyword arguments: the spec's, overridden by the flags given."""
    kwargs = load_spec(args.spec) if args.spec else {}
    given = {
        "dataset": args.dataset, "budget": args.budget, "max_trials": args.max_trials, "epochs": args.epochs,
        "output": args.output, "tuner": args.tuner, "stem": args.stem, "batch_size": args.batch_size,
        "data_dir": args.data_dir, "tolerance": args.tolerance, "image_size": args.image_size,
        "seed": args.seed, "val_split": args.val_split, "repeats": args.repeats, "recipe": args.recipe,
        "precision": args.precision, "schedule": args.schedule, "optimizer": args.optimizer,
        "label_smoothing": args.label_smoothing, "max_latency_ms": args.max_latency_ms,
        "cardinalities": args.cardinalities,
        "depth_options": args.depths,
    }
    kwargs.update({k: v for k, v in given.items() if v is not None})
    return kwargs


def cmd_tune(args):
    from keras_resnext import jobs

    kwargs = _tune_arguments(args)
    summary = jobs.tune(**kwargs, download=args.download, overwrite=args.overwrite, verbose=progress_verbosity())
    if summary is None:
        return
    print(f"budget {summary['budget_macs']:,} MACs; selected on {summary['splits']['validation']} held-out images, "
          f"{summary['repeats']} seed(s) per candidate (mean and 95% interval):")
    for row in summary["candidates"]:
        measured = (f"latency {row['latency_ms']:7.2f} ms  train {row['train_images_per_second'] or 0:8.1f} img/s"
                    if row.get("latency_ms") is not None else "")
        accuracy = ("pruned (latency)" if row["pruned"] else "not trained" if not row["repeats"] else
                    f"val_accuracy {row['val_accuracy_mean']:.4f} [{row['val_accuracy_ci_low']:.4f}, "
                    f"{row['val_accuracy_ci_high']:.4f}]")
        print(f"  C={row['cardinality']:<3d} d={row['bottleneck_width']:<4d} depths={row['depths']:<9s} "
              f"MACs={row['macs']:>13,d} params={row['params']:>11,d} {measured}  {accuracy}")
    best, runner_up = summary["best"], summary["runner_up"]
    if best:
        verdict = ("its interval is above the runner-up's" if summary["separated"] else
                   "not separated from the runner-up: indistinguishable at this budget and data" if runner_up else
                   "the only candidate trained")
        print(f"best: C={best['cardinality']} d={best['bottleneck_width']} ({verdict}); "
              f"test accuracy {summary['test_accuracy']:.4f} on {summary['splits']['test']} images, seen once")
    print(f"wrote {kwargs.get('output', 'tune-run')}/trials.csv, candidates.csv, summary.json, best_model.keras, "
          "accuracy_vs_cardinality.png, accuracy_vs_speed.png")


def cmd_info(args):
    from keras_resnext import devices

    devices.report()


def cmd_weights(args):
    from keras_resnext.weights import format_table, list_weights

    rows = list_weights(args.model)
    if not rows:
        known = sorted({row["model"] for row in list_weights()})
        raise ValueError(f"no pretrained weights for model {args.model!r}; models with weights: {', '.join(known)}.")
    print(format_table(rows))
    print("\nfb_* weights are CC-BY-NC-4.0: non-commercial use only.")


def _add_data_arguments(p, dataset_default="digits"):
    p.add_argument("--dataset", default=dataset_default, help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    p.add_argument("--download", action="store_true", help="let tfds download and prepare the data set")


def _train_parser(sub):
    p = sub.add_parser("train", help="train a model (default: a small ResNeXt on the embedded digits)")
    p.add_argument("--model", default="default",
                   help="'default' (resnext11_8x4d), a constructor (ResNeXt50), or depths:C:d (3,4,6,3:32:4)")
    _add_data_arguments(p)
    p.add_argument("--epochs", type=positive_int, default=None, help="default: 20 for digits, 300 for CIFAR, 90 otherwise")
    p.add_argument("--batch-size", type=positive_int, default=64, help="per replica; the lr scales with the global batch")
    p.add_argument("--output", default=None, help="run folder (default: a new folder under runs/)")
    p.add_argument("--weights", default=None, help="start from pretrained weights (tag or file) to fine-tune")
    p.add_argument("--strategy", default="auto", choices=STRATEGIES)
    p.add_argument("--precision", default="auto",
                   help="auto (default: mixed_bfloat16 on a CPU with native bfloat16 and on TPUs, mixed_float16 on "
                        "GPUs, float32 elsewhere; keras-resnext info says which), float32, mixed_float16 or "
                        "mixed_bfloat16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default="paper", choices=RECIPES,
                   help="paper: the paper's SGD, schedule and augmentation (fb.resnet.torch's); torchvision: the recipe "
                        "behind torchvision's v2 weights (cosine with warmup, label smoothing, MixUp/CutMix, "
                        "TrivialAugmentWide, random erasing, an EMA of the weights)")
    p.add_argument("--schedule", default="step", choices=("step", "cosine"))
    p.add_argument("--optimizer", default="paper", choices=OPTIMIZERS,
                   help="paper: the paper's SGD step (PyTorch's: nesterov, weight decay in the gradient of every "
                        "parameter); decoupled: Keras' SGD, decoupled weight decay on kernels only")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--color-augmentation", default="auto", choices=COLOR_PLACES,
                   help="the paper recipe's color jitter and PCA lighting of ImageNet-style images: in the input "
                        "pipeline (host), in the training step after the batch crossed (device), or auto: the "
                        "device when it is a GPU or TPU, else the host")
    p.add_argument("--image-size", type=positive_int, default=None, help="training image side (default: the data set's)")
    p.add_argument("--freeze-epochs", type=int, default=None,
                   help="fine-tuning: epochs with the backbone frozen before training all layers "
                        "(default 1, none when --epochs is 1)")
    p.add_argument("--val-split", type=float, default=0.2,
                   help="folder:<root> without a test split: the stratified fraction held out (default 0.2)")
    p.add_argument("--strict", action="store_true", help="refuse image files that do not decode (default: skip)")
    p.add_argument("--class-weight", default=None, choices=("balanced",), help="weigh the loss by 1 / class frequency")
    p.add_argument("--overwrite", action="store_true", help="train afresh in a run folder that holds a finished run")
    p.add_argument("--data-service", default=None, metavar="grpc://HOST:PORT",
                   help="run the training pipeline on a tf.data service's workers (python -m keras_resnext.service); "
                        "no authentication: private networks only")
    p.set_defaults(func=cmd_train)
    return p


def _evaluate_parser(sub):
    p = sub.add_parser("evaluate", help="test accuracy of a saved model")
    p.add_argument("model_file", help="a model.keras written by train")
    _add_data_arguments(p)
    _add_precision_argument(p)
    p.set_defaults(func=cmd_evaluate)
    return p


def _add_precision_argument(p):
    p.add_argument("--precision", default="float32", choices=INFERENCE_PRECISIONS,
                   help="inference precision; auto: bfloat16 on a CPU with native bf16, float16 on a GPU; "
                        "int8: the CPU's fastest int8 engine, calibrated on the run's training data")
    p.add_argument("--int8-engine", default="auto", choices=INT8_ENGINES,
                   help="with --precision int8: auto (the fastest measured on this kind of CPU; keras-resnext info "
                        "says which), litert or openvino")
    _add_calibration_arguments(p, "with --precision int8: a data set to calibrate on (default: the run's own)", 512)


def _add_calibration_arguments(p, what, images):
    p.add_argument("--calibration", default=None, metavar="DATASET", help=what)
    p.add_argument("--calibration-images", type=positive_int, default=images,
                   help=f"images to calibrate on (default {images})")


def _predict_parser(sub):
    p = sub.add_parser("predict", help="top-k classes of image files")
    p.add_argument("images", nargs="+")
    p.add_argument("--model-file", default=None, help="a model.keras written by train")
    p.add_argument("--model", default=None, help="or a constructor name with --weights")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--top", type=positive_int, default=5)
    p.add_argument("--csv", default=None, help="write the predictions as CSV (default predictions.csv for a folder)")
    p.add_argument("--explain", default=None, metavar="DIR",
                   help="write a Grad-CAM overlay per image to DIR: where the model looked for its top class")
    _add_precision_argument(p)
    p.set_defaults(func=cmd_predict)
    return p


def _export_parser(sub):
    p = sub.add_parser("export", help="export to ONNX, LiteRT (TFLite) or a TF SavedModel")
    p.add_argument("source", help="a .keras file, or a constructor name such as ResNeXt50")
    p.add_argument("--format", required=True, choices=("onnx", "litert", "saved_model"))
    p.add_argument("--quantize", default=None, choices=("int8", "dynamic"),
                   help="int8 (onnx, litert; needs --calibration) or dynamic (litert: int8 weights only)")
    _add_calibration_arguments(p, "with --quantize int8: a data set to calibrate on", 128)
    p.add_argument("--no-grouped-conv", action="store_true",
                   help="litert: write grouped convs as dense convs, for runtimes without grouped conv")
    p.add_argument("--output", required=True)
    p.add_argument("--weights", default=None, help="with a constructor name: a tag or file")
    p.add_argument("--opset", type=int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=None, help="fixed batch (default: dynamic)")
    p.set_defaults(func=cmd_export)
    return p


def _tune_parser(sub):
    p = sub.add_parser("tune", help="search cardinality vs width at a fixed MAC budget (keras-tuner)")
    p.add_argument("--spec", default=None, help=f"a search spec: a JSON file or one of {', '.join(spec_names())}")
    _add_data_arguments(p, dataset_default=None)
    p.add_argument("--budget", default=None, help="MACs: 20M, 4.2G, or a model name such as ResNet50 (default 20M)")
    p.add_argument("--image-size", type=positive_int, default=None,
                   help="image side searched at (default: the data set's; 224 for an image folder)")
    p.add_argument("--max-trials", type=positive_int, default=None)
    p.add_argument("--epochs", type=positive_int, default=None, help="per trial (Hyperband: the most per trial)")
    p.add_argument("--output", default=None, help="default tune-run; run again to resume")
    p.add_argument("--tuner", default=None, choices=TUNERS)
    p.add_argument("--cardinalities", type=positive_ints(",", "1,2,4,8"), default=None,
                   help="comma-separated, default 1,2,4,8,16,32")
    p.add_argument("--depths", type=positive_ints("-", "3-4-6-3"), action="append", default=None,
                   help="a depth template such as 3-4-6-3; repeatable")
    p.add_argument("--stem", default=None, choices=STEMS)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--tolerance", type=float, default=None, help="budget tolerance, default 0.05")
    p.add_argument("--val-split", type=float, default=None,
                   help="the stratified fraction of the training split held out to rank candidates on (default 0.1); "
                        "the test split is used once, on the selected candidate")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help="seeds per candidate (default 3): each candidate's accuracy comes with a 95%% interval")
    p.add_argument("--seed", type=int, default=None, help="the first seed (default 0); also the held-out split's")
    p.add_argument("--recipe", default=None, choices=RECIPES, help="train's recipe for every candidate (default paper)")
    p.add_argument("--precision", default=None, help="as train's (default auto)")
    p.add_argument("--schedule", default=None, choices=("step", "cosine"), help="as train's (default step)")
    p.add_argument("--optimizer", default=None, choices=OPTIMIZERS, help="as train's (default paper)")
    p.add_argument("--label-smoothing", type=float, default=None, help="as train's (default 0)")
    p.add_argument("--max-latency-ms", type=float, default=None,
                   help="prune candidates whose single-image latency, measured here before training, is over this")
    p.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")
    p.set_defaults(func=cmd_tune)
    return p


def _weights_parser(sub):
    p = sub.add_parser("weights", help="the table of pretrained weights")
    p.add_argument("--model", default=None, help="only this variant, e.g. resnext50_32x4d")
    p.set_defaults(func=cmd_weights)
    return p


def _summary_parser(sub):
    p = sub.add_parser("summary", help="layer, parameter and MAC table of a model")
    p.add_argument("model", help="default, a constructor (ResNeXt50), or depths:C:d (1,1,1,1:8:4), as train --model")
    p.add_argument("--input-size", type=positive_int, default=None, help="image side (default: the model's)")
    p.add_argument("--features", action="store_true", help="the feature levels (a backbone's view) instead of layers")
    p.add_argument("--output-stride", type=int, default=32, choices=OUTPUT_STRIDES, help="dilate instead of striding")
    p.set_defaults(func=cmd_summary)
    return p


def _info_parser(sub):
    p = sub.add_parser("info", help="what runs here: versions, CPU features, oneDNN, grouped-conv paths, accelerators")
    p.set_defaults(func=cmd_info)
    return p


COMMANDS = (_train_parser, _evaluate_parser, _predict_parser, _export_parser, _tune_parser, _weights_parser,
            _summary_parser, _info_parser)


def make_parser():
    parser = _Parser(prog="keras-resnext", description="ResNeXt for Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        command = add_command(sub)
        # Read before TensorFlow loads (keras_resnext.startup); here so every command accepts it.
        command.add_argument("--verbose", action="store_true", help="also show TensorFlow's own log lines")
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    startup.start_command(args.verbose)  # only now, with good arguments, does TensorFlow load
    with warnings.catch_warnings():  # the API's callers keep Python's warnings; the command speaks to people
        warnings.showwarning = _show_warning
        try:
            return args.func(args) or 0  # the exit status, for scripts that call main()
        except ValueError as e:  # bad input: say what was wrong, without a traceback; exit 2 as argparse does
            print(f"keras-resnext {args.command}: {_one_line(e)}", file=sys.stderr)
            return 2
        except (OSError, RuntimeError) as e:  # a run that failed (a file not writable, a diverged run): exit 1
            print(f"keras-resnext {args.command}: {_one_line(e)}", file=sys.stderr)
            return 1


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line, `keras-resnext: warning: ...`: no source path, no line of code."""
    print(f"keras-resnext: warning: {_one_line(message)}", file=file or sys.stderr)


def _one_line(error):
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())

"""The command line's jobs as functions: train, evaluate, predict, tune."""

import contextlib
import dataclasses
import datetime
import functools
import os
import shutil
import time
import warnings

import keras
import numpy as np

from keras_resnext import data, distribute, files, fitting, int8, models, plots, recipes, run_folder, training
from keras_resnext.config import eval_split, positive_int
from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD, imagenet_class_names
from keras_resnext.inference import inference_model
from keras_resnext.weights import registry as weights_registry

TRIAL_COLUMNS = ["trial", "seed", "epochs", "cardinality", "bottleneck_width", "depths", "macs", "params",
                 "val_accuracy", "val_loss"]

DEFAULT_EPOCHS = {"digits": 20, "cifar10": 300, "cifar100": 300}
SMALL_IMAGE_DATASETS = ("digits", "cifar10", "cifar100")


def build_model(name, classes, image_size, weights=None, include_preprocessing=False):
    """The model `name` (see `models.constructor_for`) for `classes` classes of `image_size` images.

    Pretrained weights with another class count keep their backbone and get a new
    head for `classes` (one warning says so). `include_preprocessing` is the
    constructors' (`keras_resnext.ResNeXt`).
    """
    constructor = models.constructor_for(name)
    input_shape = (image_size, image_size, 3)
    if weights is not None and classes != 1000:
        warnings.warn(f"Fine-tuning: the pretrained classifier is replaced by a new {classes}-class head.",
                      stacklevel=2)
        return training.finetune_model(constructor, classes, weights=weights, input_shape=input_shape,
                                       freeze_backbone=False, include_preprocessing=include_preprocessing)
    return constructor(weights=weights, classes=classes, input_shape=input_shape,
                       include_preprocessing=include_preprocessing)


def train(
    model="default",
    dataset="digits",
    epochs=None,
    batch_size=64,
    output=None,
    weights=None,
    data_dir=None,
    download=False,
    strategy="auto",
    precision="auto",
    seed=0,
    schedule="step",
    label_smoothing=0.0,
    verbose="auto",
    val_split=0.2,
    strict=False,
    class_weight=None,
    image_size=None,
    freeze_epochs=None,
    overwrite=False,
    optimizer="paper",
    data_service=None,
    recipe="paper",
):
    """Trains, evaluates and writes a run folder; returns the metrics dict.

    For `dataset="folder:<root>"`, `val_split` is the stratified fraction held out
    when the folder has no test split (the same on every rerun), `strict` refuses
    files that do not decode instead of skipping them, and `class_weight="balanced"`
    weighs the loss by inverse class frequency.

    Fine-tuning (`weights` with another class count than theirs) replaces the head
    and trains in two phases: `freeze_epochs` with the backbone frozen, so the new
    head settles without disturbing the pretrained features, then all layers to
    `epochs`. By default 1 epoch is frozen, none in a 1-epoch run; `freeze_epochs=0`
    trains everything from the start.

    `recipe` is a `keras_resnext.recipes.Recipe` (say
    `recipes.TorchvisionRecipe(mixup_alpha=0.8)`, or a user's own), or a name:
    `"paper"` (`recipes.PaperRecipe`: the paper's optimizer, schedule and augmentation,
    with `schedule`, `label_smoothing` and `optimizer`) or `"torchvision"`
    (`recipes.TorchvisionRecipe`, the recipe behind torchvision's v2 weights: its EMA is
    what is evaluated and saved). A recipe object carries its own settings: `schedule`,
    `label_smoothing` and `optimizer` stay at their defaults beside it. metrics.json
    records the recipe with its values. `optimizer` is the paper recipe's
    (`training.sgd`): `"paper"`, the paper's step, or `"decoupled"`, Keras' SGD with
    decoupled weight decay.

    `data_service` (`"grpc://host:port"`) runs the training pipeline on a tf.data
    service's workers (see `keras_resnext.service`); evaluation stays here.

    `precision` is a Keras dtype policy, or `"auto"`: the fastest here
    (`keras_resnext.devices.training_precision`), `mixed_bfloat16` on a CPU with
    native bfloat16, `mixed_float16` on a GPU, float32 on other CPUs.

    The folder holds metrics.json, model.keras, curves.png, log.csv, tensorboard/
    and, while the run is in progress, backup/. A run killed at any instant,
    started again with the same arguments, resumes from its last finished epoch.
    `metrics.json` says how the run ended in `status`: "completed", "diverged"
    (the loss became NaN: `RunDiverged` is raised) or "failed" (with the error).
    A completed run folder is reported, not trained again, unless `overwrite`.
    """
    recipe = recipes.resolve(recipe, schedule=schedule, label_smoothing=label_smoothing, optimizer=optimizer)
    epochs, batch_size = _checked_arguments(dataset, epochs, batch_size)
    run_dir = distribute.process_folder(output or _default_output(model, dataset))
    # Only the process that writes the folder clears it: another would clear what process 0 is writing.
    if (finished := run_folder.previous_run(run_dir, overwrite, clear=distribute.is_chief())) is not None:
        return finished
    keras.utils.set_random_seed(seed)
    strat = distribute.make_strategy(strategy)  # first: a multi-worker strategy must configure the runtime
    training.set_precision(precision)  # which may ask for the devices, starting the runtime
    recipe_inputs = _recipe_data_options(recipe, dataset, model, weights)
    train_ds, test_ds, info, global_batch = _fitting_batches(dataset, batch_size * strat.num_replicas_in_sync, dict(
        image_size=_image_size(image_size, model, dataset), seed=seed, data_dir=data_dir, download=download,
        val_split=val_split, strict=strict, one_hot=recipe.one_hot_labels, dtype="uint8", data_service=data_service,
        **recipe_inputs))
    finetuning, phases = _finetuning_phases(weights, info, epochs, freeze_epochs)
    net = _build_for_run(strat, model, info, weights, any_size=bool(recipe_inputs["train_size"]))
    options = dict(phases=phases, verbose=verbose, class_weight=_class_weights(info, class_weight), seed=seed,
                   precise_bn=finetuning, writes=distribute.writes_files(strat))
    recorded = dict(dataset=dataset, strategy=strategy, class_weight=class_weight,
                    optimizer=getattr(recipe, "optimizer", None), data_service=data_service)
    return _run(net, strat, recipe.for_data(info.image_size, info.num_examples, dataset), global_batch, train_ds,
                test_ds, info, run_dir, options, recorded)


def _run(net, strat, recipe, global_batch, train_ds, test_ds, info, run_dir, options, recorded):
    """The run proper: fits, evaluates and writes the run folder (`recorded`: the arguments metrics.json keeps);
    returns the metrics. Only now, with the data and the model known to be good, is anything written: bad input
    writes nothing."""
    writes = options["writes"]
    with run_folder.recording(run_dir) if writes else contextlib.nullcontext(), distribute.run_scope(strat):
        net, metrics = _fit_phases(net, strat, recipe, global_batch, train_ds, test_ds, info, run_dir, options)
        if not writes:  # another process of a JAX run: process 0 evaluates and writes
            return metrics
        metrics.update(recorded)
        with distribute.once_trained(strat):
            _write_run(run_dir, net, metrics)
    return metrics


def _checked_arguments(dataset, epochs, batch_size):
    """`(epochs, batch_size)` of a run, checked (epochs by default the data set's); a ValueError for bad ones."""
    epochs = DEFAULT_EPOCHS.get(dataset, 90) if epochs is None else positive_int("epochs", epochs)
    return epochs, positive_int("batch_size", batch_size)


def _recipe_data_options(recipe, dataset, model, weights):
    """What the recipe asks of the data (`Recipe.data_options`), the evaluation crop by default that of the
    model's pretrained weights, or ImageNet's 0.875."""
    options = recipe.data_options(dataset, weights)
    return dict(options, crop_pct=options["crop_pct"] or eval_crop(model, weights))


def _build_for_run(strat, model, info, weights, any_size=False):
    """The run's model, built under its strategy, taking the uint8 batches `train` feeds it (a quarter of the
    bytes to move) and normalising them on its device with the data set's mean and std; `any_size`: images of
    any size (it trains at another size than it is evaluated at)."""
    with strat.scope():
        return build_model(model, info.num_classes, None if any_size else info.image_size, weights,
                           include_preprocessing=(info.mean, info.std))


def _fit_phases(net, strat, recipe, global_batch, train_ds, test_ds, info, run_dir, options):
    """The training phases of `train` (a frozen-backbone warm-up when fine-tuning, then all layers).

    Returns the model to save and the run's metrics (see `_fit_and_report`).

    `recipe(steps_per_epoch, epochs=..., batch_size=...)` gives each phase's optimizer and loss.
    """
    phases = options["phases"]
    # Across processes each must evaluate in step with the others, on equal shards: the test split is evaluated
    # once, at the end, by process 0 alone.
    fit_phase = functools.partial(fitting.fit, recipe=recipe, train_ds=train_ds,
                                  steps_per_epoch=max(info.num_examples // global_batch, 1), batch_size=global_batch,
                                  num_classes=info.num_classes, seed=options["seed"], strategy=strat,
                                  validation_data=None if distribute.spans_processes(strat) else test_ds,
                                  class_weight=options["class_weight"], verbose=options["verbose"])
    net, metrics = _fit_and_report(net, fit_phase, phases, train_ds, test_ds, info, strat, run_dir, options)
    metrics.update(batch_size=global_batch, phases=[dict(start=a, end=b, backbone_frozen=f) for a, b, f in phases])
    return net, metrics


def _finetuning_phases(weights, info, epochs, freeze_epochs):
    """`(fine-tuning?, phases)`: pretrained weights for another class count fine-tune, by default with the
    backbone frozen for one epoch (none in a 1-epoch run)."""
    finetuning = weights is not None and info.num_classes != 1000
    return finetuning, _phases(epochs, int(finetuning and epochs > 1) if freeze_epochs is None else freeze_epochs)


def _phases(epochs, freeze_epochs):
    """`[(first epoch, end epoch, backbone frozen)]`: a frozen warm-up phase, if any, then the rest."""
    if isinstance(freeze_epochs, bool) or not isinstance(freeze_epochs, int) or not 0 <= freeze_epochs < epochs:
        raise ValueError(f"`freeze_epochs` must be 0 to epochs - 1 ({epochs - 1}); received {freeze_epochs!r}.")
    return ([(0, freeze_epochs, True)] if freeze_epochs else []) + [(freeze_epochs, epochs, False)]


def _fit_and_report(net, fit_phase, phases, train_ds, test_ds, info, strat, run_dir, options):
    """Fits `net` phase by phase with the run's callbacks, then evaluates it: `(model to save, metrics)`.

    `fit_phase` is `fitting.fit` with the run's recipe and data. Each phase resumes
    after a kill from its own backup; a finished phase leaves its weights in backup/,
    so a rerun continues with the next phase from them. With `options["precise_bn"]`
    the BatchNorm statistics are recomputed from the final weights before the
    evaluation (`training.recompute_batchnorm_statistics`). The model saved and
    evaluated computes in float32, whatever precision it trained in (`_float32_model`).
    A process that does not write (`options["writes"]`, see `distribute.writes_files`)
    reads the backups and returns `(model, its process's summary)` once trained.
    """
    start, epochs_run, recipe_data, writes = time.perf_counter(), 0, None, options["writes"]
    for i, (first, end, frozen) in enumerate(phases, start=1):
        finished = os.path.join(run_dir, "backup", f"phase{i}.weights.h5")
        if os.path.exists(finished):
            net.load_weights(finished)
            continue
        backup = "backup" if len(phases) == 1 else os.path.join("backup", f"phase{i}")
        # The recipe's EMA (if any) is saved with the backup, and goes into the model after the last phase.
        history, recipe_data = fit_phase(net, initial_epoch=first, epochs=end, frozen=frozen,
                                         apply_ema=i == len(phases),
                                         callbacks=functools.partial(training.default_callbacks, run_dir,
                                                                     backup_dir=backup, write=writes))
        epochs_run += len(history.epoch)
        run_folder.check_diverged(history, first)
        if i < len(phases) and writes:
            with files.atomic_path(finished) as tmp, distribute.this_process_only():
                net.save_weights(tmp)
    net = distribute.process_local_copy(net, strat)  # from here on, process 0 goes on alone
    if not writes:
        return net, {"output": run_dir, "process": distribute.task()[1], "epochs_run_here": epochs_run}
    with distribute.once_trained(strat):
        # A short fine-tuning run ends with BatchNorm statistics of weights it no longer has: recompute them.
        bn_batches = training.recompute_batchnorm_statistics(net, train_ds) if options["precise_bn"] else 0
        seconds = time.perf_counter() - start
        trained_in, net = net.dtype_policy.name, _float32_model(net, strat)
        metrics = dict(output=run_dir, **_run_metrics(net, test_ds, info, strat), precision=trained_in,
                       epochs=phases[-1][1], batchnorm_recomputed_batches=bn_batches,
                       epochs_run_here=epochs_run, seconds=round(seconds, 1), data=info.details,
                       recipe=recipe_data.settings if recipe_data else None)
        metrics["per_class"] = per_class_report(net, test_ds, info.class_names,
                                                os.path.join(run_dir, "confusion_matrix.png"))
    return net, metrics


def _float32_model(net, strat):
    """`net`, computing in float32: what a run saves and evaluates, whatever precision it trained in.

    Mixed precision is a way to train, as PyTorch's autocast is: the variables stay
    float32, and the saved model computes in float32 like any keras.applications
    model, so `predict --precision float32` means it on every machine and bfloat16 or
    int8 stay choices made at inference (`inference_model`). The copy keeps the
    compiled optimizer, whose state model.keras saves.
    """
    if net.dtype_policy.name == "float32":
        return net
    with distribute.copy_scope(strat):
        copy = inference_model(net, "float32")
        copy.compile(optimizer=net.optimizer, loss=net.loss, metrics=["accuracy"])
    return copy


def _run_metrics(net, test_ds, info, strat):
    """What a finished run reports in metrics.json, besides its arguments."""
    test_loss, test_accuracy = net.evaluate(test_ds, verbose=0)
    return {
        "model": net.name,
        "replicas": strat.num_replicas_in_sync,
        "strategy_class": distribute.describe(strat)["class"],
        "distribution": distribute.describe(strat),
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "parameters": int(net.count_params()),
        "class_names": list(info.class_names),
        "preprocessing": {"image_size": info.image_size, "mean": list(info.mean), "std": list(info.std),
                          "crop_pct": info.crop_pct, "in_model": models.includes_preprocessing(net)},
        # Sums of |w|: equal on every worker of a synchronous multi-worker run.
        "trainable_checksum": _checksum(net.trainable_weights),
        "weights_checksum": _checksum(net.weights),
    }


def _default_output(model, dataset):
    stamp = f"{datetime.datetime.now():%Y%m%d-%H%M%S}"
    return os.path.join("runs", f"{stamp}-{model}-{_safe(dataset)}")


def _safe(dataset):
    """A data set name as part of a file name (`folder:/a/b` -> `folder__a_b`)."""
    return dataset.replace(":", "_").replace("/", "_")


def _image_size(image_size, model, dataset):
    """The training image side: as given, else the data set's for the default model and small images, else 224."""
    if image_size is None and not (model in (None, "default") or dataset in SMALL_IMAGE_DATASETS):
        return 224
    return image_size


def eval_crop(model, weights):
    """The evaluation crop of pretrained `weights` (their registry `test_crop_pct`), else ImageNet's 0.875."""
    variant = getattr(models.constructor_for(model), "variant", None)
    entry = weights_registry.find(variant, weights)
    return entry["test_crop_pct"] if entry else 0.875


def _fitting_batches(dataset, batch_size, data_options):
    """`_train_and_test_data` with the batch lowered to the training set's size if it is smaller (to a
    multiple of the recipe's augmentation repeats).

    Training drops the last partial batch, so a set smaller than a batch would train on nothing.
    """
    repeats = data_options.get("augment_repeats", 1)
    if batch_size % repeats:
        raise ValueError(f"The torchvision recipe puts each image {repeats} times in a batch (its repeated "
                         f"augmentation): the batch size must be a multiple of {repeats}; received {batch_size}.")
    train_ds, test_ds, info = _train_and_test_data(dataset, batch_size, **data_options)
    if 0 < info.num_examples < batch_size:
        lowered = max(info.num_examples // repeats * repeats, repeats)
        print(f"keras-resnext: {info.num_examples} training images, fewer than a batch of {batch_size}; "
              f"training with batches of {lowered}.")
        batch_size = lowered
        train_ds, test_ds, info = _train_and_test_data(dataset, batch_size, **data_options)
    return train_ds, test_ds, info, batch_size


def _train_and_test_data(dataset, batch_size, image_size, seed, data_dir, download, one_hot=False, val_split=0.2,
                         strict=False, crop_pct=0.875, dtype="float32", data_service=None, augmentation="paper",
                         train_size=None, augment_repeats=1):
    """The training and evaluation pipelines of `dataset` (the first through `data_service`, if given, and at
    `train_size` if given), and its `DatasetInfo` (the evaluation's image size)."""
    common = dict(batch_size=batch_size, data_dir=data_dir, download=download, image_size=image_size,
                  cache=dataset == "digits", val_split=val_split, split_seed=seed, strict=strict, crop_pct=crop_pct,
                  dtype=dtype)
    train_ds, info = data.load_dataset(dataset, "train", seed=seed, data_service=data_service,
                                       augmentation=augmentation, augment_repeats=augment_repeats,
                                       **dict(common, image_size=train_size or image_size))
    if info.details:
        counts = info.details["counts"]["train"]
        print("keras-resnext: training images per class: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    test_ds, evaluation = data.load_dataset(dataset, eval_split(dataset), **common)
    info = dataclasses.replace(info, image_size=evaluation.image_size)
    if one_hot:  # label smoothing needs one-hot targets
        def encode(x, y):
            return x, keras.ops.one_hot(y, info.num_classes)

        train_ds, test_ds = train_ds.map(encode), test_ds.map(encode)
    return train_ds, test_ds, info


def _class_weights(info, class_weight):
    """`{label: weight}` for `fit`: None, or "balanced" (n / (classes * n_c), scikit-learn's rule)."""
    if class_weight is None:
        return None
    if class_weight != "balanced":
        raise ValueError(f"`class_weight` must be None or 'balanced'; received {class_weight!r}.")
    if not info.details:
        raise ValueError("class_weight='balanced' needs per-class counts: an image folder (folder:<root>).")
    counts = list(info.details["counts"]["train"].values())
    return {label: sum(counts) / (len(counts) * n) for label, n in enumerate(counts) if n}


def per_class_report(net, dataset, class_names, png=None):
    """Per-class precision, recall, F1 and support on `dataset` (scikit-learn), and the confusion matrix PNG."""
    truth, (predicted,) = _truth_and_outputs(dataset, net, keep=lambda out: out.argmax(-1))
    return per_class_results(truth, predicted, class_names, png)


def _truth_and_outputs(dataset, *nets, keep=lambda out: out):
    """The class ids of `dataset`'s labels and `keep` of each net's outputs on its images, in one pass."""
    truth, outputs = [], [[] for _ in nets]
    for images, labels in dataset:
        labels = keras.ops.convert_to_numpy(labels)
        truth.append(labels.argmax(-1) if labels.ndim > 1 else labels)
        for net, out in zip(nets, outputs):
            # A plain call, not predict: under a distribution strategy each batch is computed once, here.
            out.append(keep(keras.ops.convert_to_numpy(net(images, training=False))))
    return np.concatenate(truth), [np.concatenate(out) for out in outputs]


def per_class_results(truth, predicted, class_names, png=None):
    """Per-class precision, recall, F1 and support of `predicted` class ids against `truth`, and the PNG."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels,
                                                                     zero_division=0)
    if png:
        plots.confusion_matrix(confusion_matrix(truth, predicted, labels=labels), class_names, png)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])} for i, name in enumerate(class_names)}


def _write_run(run_dir, net, metrics):
    """The run folder's results, each written atomically; metrics.json, which marks the run complete, last.

    The backup goes only after that: a kill before it leaves a run that resumes
    at its end and writes the results again.
    """
    with files.atomic_path(os.path.join(run_dir, "model.keras")) as tmp:
        net.save(tmp)
    plots.training_curves(os.path.join(run_dir, "log.csv"), os.path.join(run_dir, "curves.png"))
    run_folder.write_status(run_dir, "completed", **metrics)
    shutil.rmtree(os.path.join(run_dir, "backup"), ignore_errors=True)


def _checksum(variables):
    return float(sum(np.abs(keras.ops.convert_to_numpy(v)).astype("float64").sum() for v in variables))


def load_run_model(path):
    """A model saved by `train` (`model.keras`) and its run's metrics, if present."""
    if not os.path.isfile(path):
        raise ValueError(f"No model file {path!r}: give the model.keras of a run folder.")
    try:
        model = keras.models.load_model(path)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds for a broken archive
        raise ValueError(f"{path!r} is not a readable Keras model ({type(e).__name__}: {str(e)[:200]}).") from None
    metrics = run_folder.read_metrics(os.path.dirname(os.path.abspath(path))) or {}
    return model, metrics


def evaluate(model_path, dataset="digits", batch_size=128, data_dir=None, download=False, precision="float32",
             calibration=None, calibration_images=512, int8_engine="auto"):
    """Test accuracy, loss and per-class results of a saved model on a data set's test split.

    An image folder is split as the run that trained the model split it (its
    metrics.json records the fraction and seed). The confusion matrix is written
    beside the model as `confusion_matrix_<dataset>.png`. `precision` is as
    in `keras_resnext.inference_model`; `"int8"` calibrates on `calibration_images`
    training images of `calibration` (default: the data set the run trained on)
    and reports float32's accuracy and the top-1 agreement beside its own, and the engine
    that ran it (`int8_engine`, as `engine` in `keras_resnext.inference_model`).
    """
    model, metrics = load_run_model(model_path)
    net = at_precision(model, precision, calibration, metrics, calibration_images, data_dir=data_dir,
                       int8_engine=int8_engine)
    size = model.inputs[0].shape[1]
    split = metrics.get("data") or {}
    ds, info = data.load_dataset(dataset, eval_split(dataset), batch_size=batch_size, data_dir=data_dir,
                                 download=download, image_size=size, val_split=split.get("val_split", 0.2),
                                 split_seed=split.get("seed", 0), dtype=input_dtype(model))
    if model.output.shape[-1] != info.num_classes:
        raise ValueError(
            f"The model predicts {model.output.shape[-1]} classes but {dataset} has {info.num_classes}."
        )
    png = os.path.join(os.path.dirname(os.path.abspath(model_path)), f"confusion_matrix_{_safe(dataset)}.png")
    result = {"dataset": dataset, "precision": precision}
    if precision == "int8":  # one pass of both models gives the figures and the per-class report
        truth, (reference, outputs) = _truth_and_outputs(ds, model, net)
        result.update(_int8_accuracy(model, net, truth, reference, outputs))
        per_class = per_class_results(truth, outputs.argmax(-1), info.class_names, png)
    else:
        net.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        loss, accuracy = net.evaluate(ds, verbose=0)
        result.update(test_accuracy=float(accuracy), test_loss=float(loss))
        per_class = per_class_report(net, ds, info.class_names, png)
    return {**result, "examples": info.num_examples, "per_class": per_class, "confusion_matrix": png}


def _int8_accuracy(model, predictor, truth, reference, outputs):
    """int8's accuracy and loss, float32's accuracy and their top-1 agreement, from the outputs of both."""
    loss = keras.losses.sparse_categorical_crossentropy(truth, outputs,
                                                        from_logits=not models.outputs_probabilities(model))
    return {"test_accuracy": float(np.mean(outputs.argmax(-1) == truth)),
            "test_loss": float(np.mean(keras.ops.convert_to_numpy(loss))),
            "float32_test_accuracy": float(np.mean(reference.argmax(-1) == truth)),
            "top1_agreement": int8.top1_agreement(reference, outputs),
            "calibration_agreement": predictor.agreement, "int8_engine": predictor.engine}


def at_precision(net, precision, calibration=None, run_metrics=None, calibration_images=512, data_dir=None,
                 int8_engine="auto"):
    """`net` for inference at `precision`; int8 calibrates on `calibration` or the data set the run trained on."""
    if precision == "float32":
        return net
    if precision != "int8":
        return inference_model(net, precision)
    run_metrics = run_metrics or {}
    source = calibration or run_metrics.get("dataset")
    if not source:
        raise ValueError("--precision int8 needs --calibration DATASET (digits, folder:PATH or a tfds name): "
                         "this model has no run folder that records its training data.")
    split = (run_metrics.get("data") or {}) if source == run_metrics.get("dataset") else {}
    batches = calibration_data(source, net, calibration_images, split, data_dir=data_dir)
    return inference_model(net, "int8", calibration_data=batches, engine=int8_engine)


def calibration_data(dataset, model, images, split=None, data_dir=None):
    """`images` training images of `dataset`, preprocessed for `model`, in batches: what int8 calibrates on.

    An image folder is split as `split` (a run's recorded fraction and seed) says, so no test image calibrates.
    """
    split = split or {}
    size = model.inputs[0].shape[1] or 224
    ds, _ = data.load_dataset(dataset, "train", batch_size=32, training=False, image_size=size, data_dir=data_dir,
                              val_split=split.get("val_split", 0.2), split_seed=split.get("seed", 0),
                              dtype=input_dtype(model))
    return ds.unbatch().take(images).batch(32)


def input_dtype(model):
    """`load_dataset`'s dtype for `model`'s input: raw uint8 pixels if it normalises them itself, else float32."""
    return "uint8" if models.includes_preprocessing(model) else "float32"


def model_input(model, image, mean, std):
    """`image`, float RGB pixels in [0, 255], as `model` takes it: as they are if it normalises them, or normalised."""
    return image if models.includes_preprocessing(model) else (image - mean) / std


def predict(paths, model_path=None, model=None, weights="imagenet", top=5, show_progress=False, precision="float32",
            explain_dir=None, calibration=None, calibration_images=512, int8_engine="auto"):
    """Top-k `(class name, probability)` per image path; an unreadable file gets an error string.

    A folder among `paths` stands for every image file under it (sorted). With
    `explain_dir`, a Grad-CAM overlay of the top class is written there per image
    (`<image name>.gradcam.png`, see `keras_resnext.explain`); it explains the float32
    model, since int8 has no gradients.

    Uses a saved run (`model_path`, with its class names and preprocessing) or a
    named constructor with pretrained weights (ImageNet classes). `precision="int8"`
    calibrates as in `evaluate`; a named constructor needs `calibration`.
    """
    import tensorflow as tf

    float_net, size, mean, std, names, run_metrics = _predictor(model_path, model, weights)
    net = at_precision(float_net, precision, calibration, run_metrics, calibration_images, int8_engine=int8_engine)
    probabilities = models.outputs_probabilities(float_net)
    paths = expand_image_paths(paths)
    if not paths:
        raise ValueError("No image files to predict: the folders given hold none.")
    progress = keras.utils.Progbar(len(paths), unit_name="image") if len(paths) > 1 and show_progress else None
    results = {}
    for path in paths:
        if progress:
            progress.add(1)
        try:
            image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            results[path] = f"error: not a readable image ({str(e).splitlines()[0][:120]})"
            continue
        image = tf.image.resize(tf.cast(image, tf.float32), (size, size), antialias=True)
        probs = net.predict(model_input(float_net, image, mean, std)[None], verbose=0)[0]
        if not probabilities:
            probs = keras.ops.convert_to_numpy(keras.ops.softmax(probs))
        best = np.argsort(probs)[::-1][:top]
        results[path] = [(names[i], float(probs[i])) for i in best]
        if explain_dir:
            pixels = model_input(float_net, image, mean, std)
            _write_explanation(float_net if precision == "int8" else net, image, pixels, int(best[0]),
                               results[path][0], path, explain_dir)
    return results


def _write_explanation(net, image, pixels, class_index, prediction, path, explain_dir):
    """The Grad-CAM overlay of `class_index` for one image, titled with the prediction."""
    from keras_resnext import explain

    heatmap = explain.gradcam(net, keras.ops.convert_to_numpy(pixels)[None], class_index=class_index)[0]
    picture = explain.overlay(keras.ops.convert_to_numpy(image), heatmap)
    name, probability = prediction
    png = os.path.join(explain_dir, os.path.splitext(os.path.basename(path))[0] + ".gradcam.png")
    plots.explanation(picture, f"{os.path.basename(path)}: {name} ({probability:.1%})", png)


def expand_image_paths(paths):
    """`paths` with each folder replaced by the image files under it, sorted."""
    from keras_resnext.folders import IMAGE_EXTENSIONS

    expanded = []
    for path in paths:
        if not os.path.isdir(path):
            expanded.append(path)
            continue
        for dirpath, _, filenames in sorted(os.walk(path)):
            expanded += [os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return expanded


def write_predictions_csv(path, results):
    """One row per image: path, then class and probability for each of the top k (or the error)."""
    top = max((len(r) for r in results.values() if not isinstance(r, str)), default=0)
    columns = ["path", *[f"{kind}_{i}" for i in range(1, top + 1) for kind in ("class", "probability")], "error"]
    rows = []
    for image, result in results.items():
        row = {"path": image}
        if isinstance(result, str):
            row["error"] = result
        else:
            for i, (name, probability) in enumerate(result, start=1):
                row[f"class_{i}"], row[f"probability_{i}"] = name, f"{probability:.6f}"
        rows.append(row)
    files.write_csv(path, rows, columns)


def _predictor(model_path, model, weights):
    """`(model, image side, mean, std, class names, run metrics)` of a saved run or a pretrained constructor."""
    if model_path:
        net, metrics = load_run_model(model_path)
        prep, names = metrics.get("preprocessing", {}), metrics.get("class_names")
    else:
        net, prep, names, metrics = models.constructor_for(model)(weights=weights), {}, None, {}
    size = prep.get("image_size") or net.inputs[0].shape[1] or 224
    mean = np.asarray(prep.get("mean", IMAGENET_MEAN), "float32") * 255
    std = np.asarray(prep.get("std", IMAGENET_STD), "float32") * 255
    if names is None:
        classes = net.output.shape[-1]
        names = imagenet_class_names() if classes == 1000 else [str(i) for i in range(classes)]
    return net, size, mean, std, names, metrics


def tune(dataset="digits", budget="20M", max_trials=3, epochs=1, output="tune-run", tuner="random",
         cardinalities=(1, 2, 4, 8, 16, 32), depth_options=((1, 1, 1),), stem="imagenet", batch_size=64, data_dir=None,
         download=False, tolerance=0.05, seed=0, overwrite=False, verbose=1, image_size=None, val_split=0.1, repeats=3,
         recipe="paper", precision="auto", schedule="step", optimizer="paper", label_smoothing=0.0,
         max_latency_ms=None, measure_speed=True):
    """A cardinality-vs-width search at a fixed MAC budget whose answer can be acted on; returns its summary.

    Each candidate is trained as `train` trains (`recipe`, `precision`, `schedule`,
    `optimizer`, `label_smoothing` as there, through `keras_resnext.fitting.fit`) with
    `repeats` seeds (`seed`, `seed + 1`, ...) on the training split less a stratified
    `val_split` held out, and ranked on its seeds' mean accuracy on that held-out part.
    The evaluation split (`data.eval_split`) is never seen by the search: the selected
    candidate is evaluated on it once, after. Each trained candidate's speed is measured
    here (`keras_resnext.cost`): its training speed on its first seed's own steps, its
    latency and inference speed once that seed is evaluated. With `max_latency_ms`,
    every candidate's latency and inference speed are measured before anything trains,
    and those with a single-image latency over it are pruned. `measure_speed=False`
    measures nothing (a benchmark's baseline).

    Writes to `output`: trials.csv (one row per candidate and seed), candidates.csv
    (one row per candidate: mean, std and 95% bootstrap interval over seeds, MACs,
    parameters, measured speed, pruned), summary.json (the best, the runner-up, whether
    their intervals separate them, the test accuracy, the splits, the recipe),
    best_model.keras (the best candidate's best seed, taking raw pixels as `train`'s
    models do), accuracy_vs_cardinality.png and accuracy_vs_speed.png (with the Pareto
    front). Resumes from `output/tuner` when run again (unless `overwrite`). Under
    keras-tuner's distributed mode (KERASTUNER_* variables) only the chief writes.
    `image_size` is the side searched at (default: the data set's, 224 for a folder).
    """
    from keras_resnext import tuning  # keras-tuner is imported only by the jobs that search

    recipe = recipes.resolve(recipe, schedule=schedule, label_smoothing=label_smoothing, optimizer=optimizer)
    repeats, epochs = _checked_search_arguments(repeats, epochs, max_latency_ms)
    keras.utils.set_random_seed(seed)
    precision = training.set_precision(precision)
    options = dict(_recipe_data_options(recipe, dataset, "default", None), train_size=None)  # one size searched
    train_for_seed, validation, test, info, splits = _search_data(dataset, batch_size, image_size, seed, data_dir,
                                                                  download, val_split, options, recipe.one_hot_labels)
    recipe_fn = recipe.for_data(info.image_size, splits["train"], dataset)
    hypermodel = _budget_hypermodel(budget, info, cardinalities, depth_options, stem, tolerance)
    costs = _costs_before_training(hypermodel, batch_size, max_latency_ms, output)
    search = tuning.make_tuner(tuner, hypermodel, directory=os.path.join(output, "tuner"), max_trials=max_trials,
                               max_epochs=epochs, seed=seed, overwrite=overwrite, repeats=repeats, recipe=recipe_fn,
                               augment_repeats=options["augment_repeats"], measure_speed=measure_speed, costs=costs)
    searching = time.perf_counter()
    search.search(train_for_seed, validation_data=validation, verbose=verbose,
                  **({} if tuner == "hyperband" else {"epochs": epochs}))  # Hyperband sets each trial's epochs
    if _search_worker():
        return None  # a distributed worker: the chief reports
    return _report_search(search, hypermodel, costs, test, output, dict(
        budget_macs=hypermodel.budget_macs, dataset=dataset, selected_on="validation", splits=splits, repeats=repeats,
        seeds=list(range(seed, seed + repeats)), precision=precision, epochs=epochs,
        recipe=recipe_fn(1, epochs=epochs, batch_size=batch_size)[2].settings,
        search_seconds=round(time.perf_counter() - searching, 2)))


def _budget_hypermodel(budget, info, cardinalities, depth_options, stem, tolerance):
    """The search space: the candidates at the budget for `info`'s images and classes, taking raw pixels as
    `train`'s models do."""
    from keras_resnext import tuning

    budget_macs = tuning.parse_budget(budget, input_size=info.image_size, classes=info.num_classes)
    return tuning.ResNeXtHyperModel(budget_macs, (info.image_size, info.image_size, 3), info.num_classes,
                                    cardinalities, depth_options, stem=stem, tolerance=tolerance,
                                    include_preprocessing=(info.mean, info.std))


def _checked_search_arguments(repeats, epochs, max_latency_ms):
    """`(repeats, epochs)` of a search, checked; a ValueError for bad ones."""
    if max_latency_ms is not None and not max_latency_ms > 0:
        raise ValueError(f"`max_latency_ms` must be a positive number of milliseconds; received {max_latency_ms!r}.")
    return positive_int("repeats", repeats), positive_int("epochs", epochs)


def _costs_before_training(hypermodel, batch_size, max_latency_ms, output):
    """With a latency limit, every candidate timed before anything trains (kept in costs.json), and the slower
    ones pruned; else nothing yet (each trained candidate is timed in its trial)."""
    from keras_resnext import tuning

    if max_latency_ms is None:
        return {}
    path = os.path.join(output, "costs.json")
    os.makedirs(output, exist_ok=True)
    costs = (tuning.wait_for_costs(path) if _search_worker()  # prune exactly as the chief did
             else tuning.measure_costs(hypermodel, batch_size, path))
    _prune_slow(hypermodel, costs, max_latency_ms)
    return costs


def _report_search(search, hypermodel, costs, test, output, summary):
    """A finished search's files: trials.csv, candidates.csv, the selected model tested once, the plots and
    summary.json (`summary` completed with the answer); returns the summary."""
    from keras_resnext import search_report, tuning

    rows = tuning.seed_rows(search, hypermodel)
    files.write_csv(os.path.join(output, "trials.csv"), rows, TRIAL_COLUMNS)
    measured = tuning.trial_costs(search, hypermodel)
    costs = {key: {**costs.get(key, {}), **measured.get(key, {})} for key in {*costs, *measured}}
    candidates = search_report.candidate_rows(hypermodel.candidates + hypermodel.pruned, _longest_trained(rows),
                                              costs, [search_report.candidate_key(c) for c in hypermodel.pruned])
    files.write_csv(os.path.join(output, "candidates.csv"), candidates, search_report.CANDIDATE_COLUMNS)
    answer, front = search_report.answer(candidates), search_report.pareto_front(candidates)
    summary.update(answer, interval="95% percentile bootstrap of the mean over seeds", candidates=candidates,
                   trials=rows, pareto_front=[search_report.candidate_key(r) for r in front])
    if answer["best"]:
        summary.update(_test_selected(search, hypermodel, answer["best"], test, output))
    plots.accuracy_vs_cardinality(candidates, summary["budget_macs"],
                                  os.path.join(output, "accuracy_vs_cardinality.png"))
    plots.accuracy_vs_speed(candidates, front, summary["budget_macs"], os.path.join(output, "accuracy_vs_speed.png"))
    files.write_json(os.path.join(output, "summary.json"), summary)
    return summary


def _search_worker():
    """Whether this process is a worker of keras-tuner's distributed search (the chief reports)."""
    return os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"


def _search_data(dataset, batch_size, image_size, seed, data_dir, download, val_split, options, one_hot):
    """A search's three splits: `(training data for a seed, held-out validation, test, info, split sizes)`.

    The held-out part is the same for every seed (split by `seed`); each seed draws
    its own order and augmentation of the rest.
    """
    if batch_size % options["augment_repeats"]:
        raise ValueError(f"The torchvision recipe puts each image {options['augment_repeats']} times in a batch: "
                         f"the batch size must be a multiple of it; received {batch_size}.")
    common = dict(data_dir=data_dir, download=download, image_size=image_size, cache=dataset == "digits",
                  split_seed=seed, crop_pct=options["crop_pct"], dtype="uint8")
    def labelled(ds, classes):
        return ds.map(lambda x, y: (x, keras.ops.one_hot(y, classes))) if one_hot else ds

    validation, held = data.load_dataset(dataset, "holdout", holdout=val_split, batch_size=128, **common)
    test, tested = data.load_dataset(dataset, eval_split(dataset), batch_size=128, **common)
    train, info = data.load_dataset(dataset, "train", holdout=val_split, batch_size=batch_size, seed=seed,
                                    augmentation=options["augmentation"],
                                    augment_repeats=options["augment_repeats"], **common)
    if info.num_examples < batch_size:
        raise ValueError(f"The search trains on {info.num_examples} images, fewer than a batch of {batch_size}: "
                         "lower --batch-size or --val-split.")

    def train_for_seed(repeat_seed):
        ds, _ = data.load_dataset(dataset, "train", holdout=val_split, batch_size=batch_size, seed=repeat_seed,
                                  augmentation=options["augmentation"], augment_repeats=options["augment_repeats"],
                                  **common)
        return labelled(ds, info.num_classes)

    splits = {"train": info.num_examples, "validation": held.num_examples, "test": tested.num_examples}
    info = dataclasses.replace(info, image_size=tested.image_size)
    return (train_for_seed, labelled(validation, info.num_classes), labelled(test, info.num_classes), info,
            splits)


def _prune_slow(hypermodel, costs, max_latency_ms):
    """Takes the candidates slower than `max_latency_ms` (measured, one image) out of the search's space."""
    from keras_resnext import search_report, tuning

    mine = {search_report.candidate_key(c): costs[search_report.candidate_key(c)] for c in hypermodel.candidates}
    fastest = min(mine, key=lambda key: mine[key]["latency_ms"])
    hypermodel.prune(tuning.slower_than(mine, max_latency_ms),
                     f"the fastest, C={fastest.split('/')[1]} (depths {fastest.split('/')[0]}), takes "
                     f"{mine[fastest]['latency_ms']:.2f} ms per image here, over --max-latency-ms {max_latency_ms:g}")


def _longest_trained(rows):
    """The seed rows of each candidate's longest-trained trial (Hyperband trains a candidate for several budgets)."""
    longest = {}
    for row in rows:
        key = (row["depths"], row["cardinality"])
        longest[key] = max(longest.get(key, 0), row["epochs"])
    return [row for row in rows if row["epochs"] == longest[(row["depths"], row["cardinality"])]]


def _test_selected(search, hypermodel, best, test, output):
    """The selected candidate's model, saved as best_model.keras and evaluated once on the test split."""
    from keras_resnext.search_report import candidate_key

    trials = [t for t in search.oracle.trials.values() if t.status == "COMPLETED"
              and candidate_key(hypermodel.candidate(t.hyperparameters)) == candidate_key(best)]
    trial = max(trials, key=lambda t: t.hyperparameters.values.get("tuner/epochs", 0))  # Hyperband's longest
    model = search.load_model(trial)
    with files.atomic_path(os.path.join(output, "best_model.keras")) as tmp:
        model.save(tmp)
    truth, (probabilities,) = _truth_and_outputs(test, model)
    loss = keras.losses.sparse_categorical_crossentropy(truth, probabilities)
    return {"test_accuracy": float(np.mean(probabilities.argmax(-1) == truth)),
            "test_loss": float(np.mean(keras.ops.convert_to_numpy(loss)))}

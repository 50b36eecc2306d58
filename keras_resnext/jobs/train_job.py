"""`keras-resnext train`: fit in phases, evaluate, write the run folder; resumes after a kill."""

import contextlib
import functools
import os
import time

import keras

from keras_resnext import distribute, files, fitting, models, recipes, run_folder, training
from keras_resnext.inference import inference_model
from keras_resnext.jobs import train_options
from keras_resnext.jobs.reports import _checksum, _write_run, per_class_report
from keras_resnext.jobs.run_inputs import (
    _build_for_run, _checked_arguments, _class_weights, _default_output, _fitting_batches, _image_size,
    _recipe_data_options,
)


def train(model="default", dataset="digits", *, epochs=None, batch_size=64, weights=None, freeze_epochs=None,
          recipe="paper", run=None, **former):
    """Trains, evaluates and writes a run folder; returns the metrics dict.

    What it trains on, how and where come in three groups, each a name or an object:

    - `dataset`: a data set's name (`"digits"`, `"folder:<root>"`, ...) or a
      `TrainingData` (its image size, held-out split, class weights, tf.data service).
    - `recipe`: `"paper"` (`recipes.PaperRecipe`: the paper's optimizer, schedule and
      augmentation), `"torchvision"` (`recipes.TorchvisionRecipe`, the recipe behind
      torchvision's v2 weights: its EMA is what is evaluated and saved), or a
      `keras_resnext.recipes.Recipe` with its settings (say
      `recipes.TorchvisionRecipe(mixup_alpha=0.8)`, or a user's own). metrics.json records
      the recipe with its values.
    - `run`: the run folder, or a `RunOptions` (folder, overwrite, seed, strategy, precision,
      verbosity). `precision="auto"` is the fastest here
      (`keras_resnext.devices.training_precision`): `mixed_bfloat16` on a CPU with native
      bfloat16, `mixed_float16` on a GPU, float32 on other CPUs.

    The keywords these groups replaced (`output=`, `seed=`, `image_size=`, `schedule=`, ...)
    are still accepted for one release, with a DeprecationWarning.

    Fine-tuning (`weights` with another class count than theirs) replaces the head
    and trains in two phases: `freeze_epochs` with the backbone frozen, so the new
    head settles without disturbing the pretrained features, then all layers to
    `epochs`. By default 1 epoch is frozen, none in a 1-epoch run; `freeze_epochs=0`
    trains everything from the start.

    The folder holds metrics.json, model.keras, curves.png, log.csv, tensorboard/
    and, while the run is in progress, backup/. A run killed at any instant,
    started again with the same arguments, resumes from its last finished epoch.
    `metrics.json` says how the run ended in `status`: "completed", "diverged"
    (the loss became NaN: `RunDiverged` is raised) or "failed" (with the error).
    A completed run folder is reported, not trained again, unless `overwrite`.
    """
    data, run, recipe_settings = train_options.grouped(dataset, run, former)
    recipe = recipes.resolve(recipe, **recipe_settings)
    epochs, batch_size = _checked_arguments(data.name, epochs, batch_size)
    run_dir = distribute.process_folder(run.output or _default_output(model, data.name))
    # Only the process that writes the folder clears it: another would clear what process 0 is writing.
    if (finished := run_folder.previous_run(run_dir, run.overwrite, clear=distribute.is_chief())) is not None:
        return finished
    keras.utils.set_random_seed(run.seed)
    strat = distribute.make_strategy(run.strategy)  # first: a multi-worker strategy must configure the runtime
    training.set_precision(run.precision)  # which may ask for the devices, starting the runtime
    recipe_inputs = _recipe_data_options(recipe, data.name, model, weights)
    train_ds, test_ds, info, global_batch = _fitting_batches(data.name, batch_size * strat.num_replicas_in_sync, dict(
        image_size=_image_size(data.image_size, model, data.name), seed=run.seed, data_dir=data.data_dir,
        download=data.download, val_split=data.val_split, strict=data.strict, one_hot=recipe.one_hot_labels,
        dtype="uint8", data_service=data.service, **recipe_inputs))
    finetuning, phases = _finetuning_phases(weights, info, epochs, freeze_epochs)
    net = _build_for_run(strat, model, info, weights, any_size=bool(recipe_inputs["train_size"]))
    options = dict(phases=phases, verbose=run.verbose, class_weight=_class_weights(info, data.class_weight),
                   seed=run.seed, precise_bn=finetuning, writes=distribute.writes_files(strat))
    recorded = dict(dataset=data.name, strategy=run.strategy, class_weight=data.class_weight,
                    optimizer=getattr(recipe, "optimizer", None), data_service=data.service)
    return _run(net, strat, recipe.for_data(info.image_size, info.num_examples, data.name), global_batch, train_ds,
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

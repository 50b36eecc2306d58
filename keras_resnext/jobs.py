"""The command line's jobs as functions: train, evaluate, predict, tune."""

import datetime
import json
import os
import time

import keras
import numpy as np

from keras_resnext import data, distribute, files, models, plots, training
from keras_resnext.config import eval_split
from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD, imagenet_class_names

TRIAL_COLUMNS = ["trial", "cardinality", "bottleneck_width", "depths", "macs", "params", "val_accuracy",
                 "accuracy", "val_loss", "loss"]

# The main job's model: an 11-layer ResNeXt (8x4d, three one-block stages) with the ImageNet stem,
# small enough to train on the 32x32 digits in seconds.
DEFAULT_MODEL = dict(depths=(1, 1, 1), cardinality=8, bottleneck_width=4, stem="imagenet", name="resnext11_8x4d")
DEFAULT_EPOCHS = {"digits": 20, "cifar10": 300, "cifar100": 300}
SMALL_IMAGE_DATASETS = ("digits", "cifar10", "cifar100")


def build_model(name, classes, image_size, weights=None):
    """The default model, or a named constructor, for `classes` classes of `image_size` images."""
    input_shape = (image_size, image_size, 3)
    if name in (None, "default"):
        return models.ResNeXt(**DEFAULT_MODEL, classes=classes, input_shape=input_shape, weights=weights)
    constructor = models.constructor_for(name)
    if weights is not None and classes != 1000:
        return training.finetune_model(constructor, classes, weights=weights, input_shape=input_shape,
                                       freeze_backbone=False)
    return constructor(weights=weights, classes=classes, input_shape=input_shape)


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
    precision="float32",
    seed=0,
    schedule="step",
    label_smoothing=0.0,
    verbose="auto",
):
    """Trains, evaluates and writes a run folder; returns the metrics dict.

    The folder holds metrics.json, model.keras, curves.png, log.csv, tensorboard/
    and, while the run is in progress, backup/ (a killed run started again with
    the same `output` resumes from its last finished epoch).
    """
    epochs = epochs or DEFAULT_EPOCHS.get(dataset, 90)
    output = output or _default_output(model, dataset)
    run_dir = output if distribute.is_chief() else os.path.join(output, f"worker_{distribute.task()[1]}")
    os.makedirs(run_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    training.set_precision(precision)
    strat = distribute.make_strategy(strategy)
    global_batch = batch_size * strat.num_replicas_in_sync
    image_size = None if model in (None, "default") or dataset in SMALL_IMAGE_DATASETS else 224
    train_ds, test_ds, info = _train_and_test_data(dataset, global_batch, image_size, seed, data_dir, download,
                                                   one_hot=bool(label_smoothing))
    steps = max(info.num_examples // global_batch, 1)
    recipe = training.imagenet_recipe if info.image_size >= 128 else training.cifar_recipe
    with strat.scope():
        net = build_model(model, info.num_classes, info.image_size, weights)
        optimizer, loss = recipe(steps, epochs=epochs, batch_size=global_batch, schedule=schedule,
                                 label_smoothing=label_smoothing)
        net.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])

    start = time.perf_counter()
    history = net.fit(train_ds, validation_data=test_ds, epochs=epochs,
                      callbacks=training.default_callbacks(run_dir), verbose=verbose)
    seconds = time.perf_counter() - start
    metrics = dict(output=run_dir, **_run_metrics(net, history, test_ds, info, strat), dataset=dataset,
                   epochs=epochs, batch_size=global_batch, strategy=strategy, seconds=round(seconds, 1))
    _write_run(run_dir, net, metrics)
    return metrics


def _run_metrics(net, history, test_ds, info, strat):
    """What a finished run reports in metrics.json, besides its arguments."""
    test_loss, test_accuracy = net.evaluate(test_ds, verbose=0)
    return {
        "model": net.name,
        "epochs_run_here": len(history.epoch),
        "replicas": strat.num_replicas_in_sync,
        "strategy_class": type(strat).__name__,
        "precision": keras.config.dtype_policy().name,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "parameters": int(net.count_params()),
        "class_names": list(info.class_names),
        "preprocessing": {"image_size": info.image_size, "mean": list(info.mean), "std": list(info.std)},
        # Sums of |w|: equal on every worker of a synchronous multi-worker run.
        "trainable_checksum": _checksum(net.trainable_weights),
        "weights_checksum": _checksum(net.weights),
    }


def _default_output(model, dataset):
    stamp = f"{datetime.datetime.now():%Y%m%d-%H%M%S}"
    return os.path.join("runs", f"{stamp}-{model}-{dataset.replace(':', '_').replace('/', '_')}")


def _train_and_test_data(dataset, batch_size, image_size, seed, data_dir, download, one_hot=False):
    """The training and evaluation pipelines of `dataset`, and its `DatasetInfo`."""
    common = dict(batch_size=batch_size, data_dir=data_dir, download=download, image_size=image_size,
                  cache=dataset == "digits")
    train_ds, info = data.load_dataset(dataset, "train", seed=seed, **common)
    test_ds, _ = data.load_dataset(dataset, eval_split(dataset), **common)
    if one_hot:  # label smoothing needs one-hot targets
        def encode(x, y):
            return x, keras.ops.one_hot(y, info.num_classes)

        train_ds, test_ds = train_ds.map(encode), test_ds.map(encode)
    return train_ds, test_ds, info


def _write_run(run_dir, net, metrics):
    """The run folder's results, each file written atomically: model, metrics, curves."""
    with files.atomic_path(os.path.join(run_dir, "model.keras")) as tmp:
        net.save(tmp)
    files.write_json(os.path.join(run_dir, "metrics.json"), metrics)
    plots.training_curves(os.path.join(run_dir, "log.csv"), os.path.join(run_dir, "curves.png"))


def _checksum(variables):
    return float(sum(np.abs(keras.ops.convert_to_numpy(v)).astype("float64").sum() for v in variables))


def load_run_model(path):
    """A model saved by `train` (`model.keras`) and its run's metrics, if present."""
    model = keras.models.load_model(path)
    metrics_path = os.path.join(os.path.dirname(os.path.abspath(path)), "metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    return model, metrics


def evaluate(model_path, dataset="digits", batch_size=128, data_dir=None, download=False):
    """Test accuracy and loss of a saved model on a data set's test split."""
    model, _ = load_run_model(model_path)
    size = model.inputs[0].shape[1]
    ds, info = data.load_dataset(dataset, eval_split(dataset), batch_size=batch_size, data_dir=data_dir, download=download,
                                 image_size=size)
    if model.output.shape[-1] != info.num_classes:
        raise ValueError(
            f"The model predicts {model.output.shape[-1]} classes but {dataset} has {info.num_classes}."
        )
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(ds, verbose=0)
    return {"dataset": dataset, "test_accuracy": float(accuracy), "test_loss": float(loss),
            "examples": info.num_examples}


def predict(paths, model_path=None, model=None, weights="imagenet", top=5):
    """Top-k `(class name, probability)` per image path; an unreadable file gets an error string.

    Uses a saved run (`model_path`, with its class names and preprocessing) or a
    named constructor with pretrained weights (ImageNet classes).
    """
    import tensorflow as tf

    net, size, mean, std, names = _predictor(model_path, model, weights)
    results = {}
    for path in paths:
        try:
            image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            results[path] = f"error: not a readable image ({str(e).splitlines()[0][:120]})"
            continue
        image = tf.image.resize(tf.cast(image, tf.float32), (size, size), antialias=True)
        probs = net.predict(((image - mean) / std)[None], verbose=0)[0]
        if not models.outputs_probabilities(net):
            probs = keras.ops.convert_to_numpy(keras.ops.softmax(probs))
        best = np.argsort(probs)[::-1][:top]
        results[path] = [(names[i], float(probs[i])) for i in best]
    return results


def _predictor(model_path, model, weights):
    """`(model, image side, mean, std, class names)` of a saved run or a pretrained constructor."""
    if model_path:
        net, metrics = load_run_model(model_path)
        prep, names = metrics.get("preprocessing", {}), metrics.get("class_names")
    else:
        net, prep, names = models.constructor_for(model)(weights=weights), {}, None
    size = prep.get("image_size") or net.inputs[0].shape[1] or 224
    mean = np.asarray(prep.get("mean", IMAGENET_MEAN), "float32") * 255
    std = np.asarray(prep.get("std", IMAGENET_STD), "float32") * 255
    if names is None:
        classes = net.output.shape[-1]
        names = imagenet_class_names() if classes == 1000 else [str(i) for i in range(classes)]
    return net, size, mean, std, names


def tune(
    dataset="digits",
    budget="20M",
    max_trials=3,
    epochs=1,
    output="tune-run",
    tuner="random",
    cardinalities=(1, 2, 4, 8, 16, 32),
    depth_options=((1, 1, 1),),
    stem="imagenet",
    batch_size=64,
    data_dir=None,
    download=False,
    tolerance=0.05,
    seed=0,
    overwrite=False,
    verbose=1,
):
    """A cardinality-vs-width search at a fixed MAC budget; writes trials.csv, the best model and a plot.

    Resumes from `output/tuner` when run again (unless `overwrite`). Under
    keras-tuner's distributed mode (KERASTUNER_* variables) only the chief writes.
    """
    from keras_resnext import tuning  # keras-tuner is imported only by the jobs that search

    keras.utils.set_random_seed(seed)
    train_ds, val_ds, info = _train_and_test_data(dataset, batch_size, None, seed, data_dir, download)
    size = info.image_size
    budget_macs = tuning.parse_budget(budget, input_size=size, classes=info.num_classes)
    hypermodel = tuning.ResNeXtHyperModel(budget_macs, (size, size, 3), info.num_classes, cardinalities,
                                          depth_options, stem=stem, tolerance=tolerance)
    search = tuning.make_tuner(tuner, hypermodel, directory=os.path.join(output, "tuner"), max_trials=max_trials,
                               max_epochs=epochs, seed=seed, overwrite=overwrite)
    fit_args = {} if tuner == "hyperband" else {"epochs": epochs}
    search.search(train_ds, validation_data=val_ds, verbose=verbose, **fit_args)
    if os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief":
        return None  # a distributed worker: the chief reports
    rows = tuning.trials_table(search, hypermodel)
    files.write_csv(os.path.join(output, "trials.csv"), rows, TRIAL_COLUMNS)
    with files.atomic_path(os.path.join(output, "best_model.keras")) as tmp:
        search.get_best_models(1)[0].save(tmp)
    plots.accuracy_vs_cardinality(rows, budget_macs, os.path.join(output, "accuracy_vs_cardinality.png"))
    summary = {"budget_macs": budget_macs, "dataset": dataset, "trials": rows,
               "best": rows and max(rows, key=lambda r: r.get("val_accuracy", -1))}
    files.write_json(os.path.join(output, "summary.json"), summary)
    return summary

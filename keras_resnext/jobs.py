"""The command line's jobs as functions: train, evaluate, predict."""

import datetime
import json
import os
import time

import keras
import numpy as np

# The main job's model: a 3-stage CIFAR-style ResNeXt (11 layers, 8x4d) for 32x32 inputs.
DEFAULT_MODEL = dict(depths=(1, 1, 1), cardinality=8, bottleneck_width=4, stem="imagenet", name="resnext11_8x4d")
DEFAULT_EPOCHS = {"digits": 20, "cifar10": 300, "cifar100": 300}


def _task():
    """(task type, index) from TF_CONFIG; ('worker', 0) when not multi-worker."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    return task.get("type", "worker"), int(task.get("index", 0))


def _is_chief():
    kind, index = _task()
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    has_chief = "chief" in config.get("cluster", {})
    return kind == "chief" or (not has_chief and kind == "worker" and index == 0)


def build_model(name, classes, image_size, weights=None):
    """The default model, a named constructor, or `depths:C:d` (e.g. `1,1,1:8:4`), for `classes`."""
    from keras_resnext import models, training

    if name in (None, "default"):
        return models.ResNeXt(**DEFAULT_MODEL, classes=classes, input_shape=(image_size, image_size, 3),
                              weights=weights)
    if name not in models.CONSTRUCTORS:
        raise ValueError(f"Unknown model {name!r}; choose 'default' or one of {', '.join(models.CONSTRUCTORS)}.")
    constructor = models.CONSTRUCTORS[name]
    if weights is not None and classes != 1000:
        return training.finetune_model(constructor, classes, weights=weights,
                                       input_shape=(image_size, image_size, 3), freeze_backbone=False)
    return constructor(weights=weights, classes=classes, input_shape=(image_size, image_size, 3))


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
    from keras_resnext import data, distribute, training

    epochs = epochs or DEFAULT_EPOCHS.get(dataset, 90)
    output = output or os.path.join(
        "runs", f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{model}-{dataset.replace(':', '_').replace('/', '_')}"
    )
    chief = _is_chief()
    run_dir = output if chief else os.path.join(output, f"worker_{_task()[1]}")
    os.makedirs(run_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    training.set_precision(precision)
    strat = distribute.make_strategy(strategy)
    replicas = strat.num_replicas_in_sync
    global_batch = batch_size * replicas

    image_size = None if model in (None, "default") or dataset in ("digits", "cifar10", "cifar100") else 224
    train_ds, info = data.load_dataset(dataset, "train", batch_size=global_batch, seed=seed, data_dir=data_dir,
                                       download=download, image_size=image_size, cache=dataset == "digits")
    test_split = "validation" if dataset == "imagenet2012" else "test"
    test_ds, _ = data.load_dataset(dataset, test_split, batch_size=global_batch, data_dir=data_dir,
                                   download=download, image_size=image_size, cache=dataset == "digits")
    steps = max(info.num_examples // global_batch, 1)
    recipe = training.imagenet_recipe if info.image_size >= 128 else training.cifar_recipe
    with strat.scope():
        net = build_model(model, info.num_classes, info.image_size, weights)
        optimizer, loss = recipe(steps, epochs=epochs, batch_size=global_batch, schedule=schedule,
                                 label_smoothing=label_smoothing)
        net.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    if label_smoothing:
        train_ds = train_ds.map(lambda x, y: (x, keras.ops.one_hot(y, info.num_classes)))
        test_ds = test_ds.map(lambda x, y: (x, keras.ops.one_hot(y, info.num_classes)))

    start = time.perf_counter()
    history = net.fit(train_ds, validation_data=test_ds, epochs=epochs,
                      callbacks=training.default_callbacks(run_dir), verbose=verbose)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = net.evaluate(test_ds, verbose=0)
    metrics = {
        "output": run_dir,
        "model": net.name,
        "dataset": dataset,
        "epochs": epochs,
        "epochs_run_here": len(history.epoch),
        "batch_size": global_batch,
        "replicas": replicas,
        "strategy": strategy,
        "strategy_class": type(strat).__name__,
        "precision": keras.config.dtype_policy().name,
        "seconds": round(seconds, 1),
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "parameters": int(net.count_params()),
        "class_names": list(info.class_names),
        "preprocessing": {"image_size": info.image_size, "mean": list(info.mean), "std": list(info.std)},
        # Sums of |w|: equal on every worker of a synchronous multi-worker run.
        "trainable_checksum": _checksum(net.trainable_weights),
        "weights_checksum": _checksum(net.weights),
    }
    net.save(os.path.join(run_dir, "model.keras"))
    _write_json(os.path.join(run_dir, "metrics.json"), metrics)
    _plot_curves(os.path.join(run_dir, "log.csv"), os.path.join(run_dir, "curves.png"))
    return metrics


def _checksum(variables):
    return float(sum(np.abs(keras.ops.convert_to_numpy(v)).astype("float64").sum() for v in variables))


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _plot_curves(log_csv, png):
    """Loss and accuracy per epoch, train and test, from the CSV log (all epochs, resumed too)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_csv) as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train")
        ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], label="test")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def load_run_model(path):
    """A model saved by `train` (`model.keras`) and its run's metrics, if present."""
    model = keras.models.load_model(path)
    metrics_path = os.path.join(os.path.dirname(os.path.abspath(path)), "metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    return model, metrics


def evaluate(model_path, dataset="digits", batch_size=128, data_dir=None, download=False):
    """Test accuracy and loss of a saved model on a data set's test split."""
    from keras_resnext import data

    model, _ = load_run_model(model_path)
    size = model.inputs[0].shape[1]
    split = "validation" if dataset == "imagenet2012" else "test"
    ds, info = data.load_dataset(dataset, split, batch_size=batch_size, data_dir=data_dir, download=download,
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

    from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD, _class_index
    from keras_resnext.models import CONSTRUCTORS

    if model_path:
        net, metrics = load_run_model(model_path)
        prep = metrics.get("preprocessing", {})
        names = metrics.get("class_names")
    else:
        net, prep, names = CONSTRUCTORS[model](weights=weights), {}, None
    size = prep.get("image_size") or net.inputs[0].shape[1] or 224
    mean = np.asarray(prep.get("mean", IMAGENET_MEAN), "float32") * 255
    std = np.asarray(prep.get("std", IMAGENET_STD), "float32") * 255
    if names is None:
        classes = net.output.shape[-1]
        names = [_class_index()[i][1] for i in range(1000)] if classes == 1000 else [str(i) for i in range(classes)]
    results = {}
    for path in paths:
        try:
            raw = tf.io.read_file(path)
            image = tf.io.decode_image(raw, channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            results[path] = f"error: not a readable image ({str(e).splitlines()[0][:120]})"
            continue
        image = tf.image.resize(tf.cast(image, tf.float32), (size, size), antialias=True)
        probs = net.predict(((image - mean) / std)[None], verbose=0)[0]
        if net.layers[-1].get_config().get("activation") != "softmax":
            probs = keras.ops.convert_to_numpy(keras.ops.softmax(probs))
        best = np.argsort(probs)[::-1][:top]
        results[path] = [(names[i], float(probs[i])) for i in best]
    return results


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
    from keras_resnext import data, tuning

    keras.utils.set_random_seed(seed)
    train_ds, info = data.load_dataset(dataset, "train", batch_size=batch_size, seed=seed, data_dir=data_dir,
                                       download=download, cache=dataset == "digits")
    val_split = "validation" if dataset == "imagenet2012" else "test"
    val_ds, _ = data.load_dataset(dataset, val_split, batch_size=batch_size, data_dir=data_dir, download=download,
                                  cache=dataset == "digits")
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
    _write_csv(os.path.join(output, "trials.csv"), rows)
    best = search.get_best_models(1)[0]
    best.save(os.path.join(output, "best_model.keras"))
    _plot_cardinality(rows, budget_macs, os.path.join(output, "accuracy_vs_cardinality.png"))
    summary = {"budget_macs": budget_macs, "dataset": dataset, "trials": rows,
               "best": rows and max(rows, key=lambda r: r.get("val_accuracy", -1))}
    _write_json(os.path.join(output, "summary.json"), summary)
    return summary


def _write_csv(path, rows):
    import csv

    columns = ["trial", "cardinality", "width", "depths", "macs", "params", "val_accuracy", "accuracy",
               "val_loss", "loss"]
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _plot_cardinality(rows, budget_macs, png):
    """Validation accuracy against cardinality at the fixed budget, width labelled (Table 2 as a picture)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        ax.scatter(row["cardinality"], row.get("val_accuracy", float("nan")), color="C0")
        ax.annotate(f"{row['cardinality']}x{row['width']}d", (row["cardinality"], row.get("val_accuracy", 0)),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("cardinality C (width d solved for the budget)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Fixed budget: {budget_macs / 1e6:,.1f}M MACs")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)

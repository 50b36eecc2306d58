"""A finished run's reports: per-class results, the run folder's files, and reading a run back."""

import os
import shutil
import zipfile

import keras
import numpy as np

from keras_resnext import distribute, files, plots, run_folder


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
            out.append(keep(keras.ops.convert_to_numpy(_outputs(net, images))))
    return np.concatenate(truth), [np.concatenate(out) for out in outputs]


def _outputs(net, images):
    """`net` on one batch, computed once. On JAX a Keras model runs its compiled predict function on this process
    (a plain call runs op by op, and JAX compiles every op: 24 s for a small ResNeXt's test split); on TensorFlow,
    a plain call (under a tf.distribute strategy `predict_on_batch` would give every replica the whole batch)."""
    if keras.backend.backend() == "jax" and isinstance(net, keras.Model):
        with distribute.this_process_only():
            return net.predict_on_batch(np.asarray(images))
    return net(images, training=False)


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
    if str(path).endswith(".keras") and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ValueError(f"{path!r} is not a readable Keras model: a .keras file is a zip archive, and this is not "
                         "a whole one (cut short, damaged, or another kind of file).")
    try:
        model = keras.models.load_model(path)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds for a broken archive
        raise ValueError(f"{path!r} is not a readable Keras model ({type(e).__name__}: {str(e)[:200]}).") from None
    metrics = run_folder.read_metrics(os.path.dirname(os.path.abspath(path))) or {}
    return model, metrics

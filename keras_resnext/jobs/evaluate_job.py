"""`keras-resnext evaluate`: a saved model tested on a data set, at a chosen precision."""

import os

import keras
import numpy as np

from keras_resnext import data, int8, models
from keras_resnext.config import eval_split
from keras_resnext.inference import inference_model
from keras_resnext.jobs.reports import _truth_and_outputs, load_run_model, per_class_report, per_class_results
from keras_resnext.jobs.run_inputs import _safe, input_dtype


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

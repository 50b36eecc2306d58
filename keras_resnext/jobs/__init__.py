"""The command line's jobs as functions, one module per command.

- `train_job`: `train` (`keras-resnext train`): fit in phases, evaluate, write the run folder.
- `evaluate_job`: `evaluate` (`keras-resnext evaluate`): a saved model tested at a precision.
- `predict_job`: `predict` (`keras-resnext predict`): the top classes of image files.
- `train_options`: what `train` takes besides the model and recipe, in groups: the data, the run.
- `tune_job`: `tune` (`keras-resnext tune`): the cardinality-vs-width search.
- `run_inputs`: what a run trains and tests on, its data and its model (shared by the jobs).
- `reports`: per-class results, the run folder's files, and reading a run back.
"""

from keras_resnext.jobs.evaluate_job import at_precision, calibration_data, evaluate
from keras_resnext.jobs.predict_job import expand_image_paths, predict, write_predictions_csv
from keras_resnext.jobs.reports import load_run_model, per_class_report, per_class_results
from keras_resnext.jobs.run_inputs import (
    DEFAULT_EPOCHS,
    SMALL_IMAGE_DATASETS,
    build_model,
    eval_crop,
    input_dtype,
    model_input,
)
from keras_resnext.jobs.train_job import train
from keras_resnext.jobs.train_options import RunOptions, TrainingData
from keras_resnext.jobs.tune_job import TRIAL_COLUMNS, tune

__all__ = [
    "DEFAULT_EPOCHS",
    "SMALL_IMAGE_DATASETS",
    "RunOptions",
    "TRIAL_COLUMNS",
    "TrainingData",
    "at_precision",
    "build_model",
    "calibration_data",
    "eval_crop",
    "evaluate",
    "expand_image_paths",
    "input_dtype",
    "load_run_model",
    "model_input",
    "per_class_report",
    "per_class_results",
    "predict",
    "train",
    "tune",
    "write_predictions_csv",
]

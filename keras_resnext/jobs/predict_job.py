"""`keras-resnext predict`: the top classes of image files, with Grad-CAM pictures on request."""

import os

import keras
import numpy as np

from keras_resnext import files, models, plots
from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD, imagenet_class_names
from keras_resnext.jobs.evaluate_job import at_precision
from keras_resnext.jobs.reports import load_run_model
from keras_resnext.jobs.run_inputs import model_input


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

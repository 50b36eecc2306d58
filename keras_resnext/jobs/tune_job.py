"""`keras-resnext tune`: the cardinality-vs-width search at a fixed MAC budget, and its report."""

import dataclasses
import os
import time

import keras
import numpy as np

from keras_resnext import data, files, plots, recipes, training
from keras_resnext.config import check_fraction, eval_split, positive_int
from keras_resnext.jobs.reports import _truth_and_outputs
from keras_resnext.jobs.run_inputs import _recipe_data_options


TRIAL_COLUMNS = ["trial", "seed", "epochs", "cardinality", "bottleneck_width", "depths", "macs", "params",
                 "val_accuracy", "val_loss"]


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
    repeats, epochs = _checked_search_arguments(repeats, epochs, max_latency_ms, val_split)
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


def _checked_search_arguments(repeats, epochs, max_latency_ms, val_split):
    """`(repeats, epochs)` of a search, checked with its other numbers; a ValueError for bad ones."""
    check_fraction("val_split", val_split)  # the held-out part the candidates are ranked on
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

"""Trading cardinality against width at a fixed cost: the paper's Table 2 as a search.

`width_for_budget` solves the bottleneck width d that keeps a ResNeXt at a MAC
budget; `ResNeXtHyperModel` is a keras-tuner HyperModel whose search space holds
only candidates within the budget's tolerance: infeasible (C, depths) pairs are
pruned when the space is declared, before anything is built, so any keras-tuner
oracle (RandomSearch, BayesianOptimization, GridSearch, Hyperband) samples only
affordable models and never records a failed trial for an unaffordable one.
Candidates slower than a latency measured here can be pruned the same way
(`measure_costs`, `ResNeXtHyperModel.prune`).

`make_tuner`'s tuners train every candidate with several seeds through
`keras_resnext.fitting.fit`, the code path of `train`, with its recipe, and rank on
the mean of the seeds' final accuracies on held-out data; `seed_rows` gives every
seed's result and `keras_resnext.search_report` their intervals.
"""

import functools
import json
import math
import os
import re
import statistics
import time

import keras
import keras_tuner
import numpy as np

from keras_resnext import cost, files, fitting, models
from keras_resnext.search_report import candidate_key
from keras_resnext.config import (RESNET50, TUNERS, VARIANTS, check_choice, check_depths, check_fraction,
                                  positive_int, positive_ints)
from keras_resnext.flops import count_macs_config, count_params_config

RESNET50_DEPTHS = RESNET50["depths"]
# The paper's block template at ResNet-50's conv2 stage: 256->64 1x1, 64->64 3x3, 64->256 1x1.
PAPER_BLOCK_BUDGET = 256 * 64 + 9 * 64 * 64 + 64 * 256  # 69,632 (the paper's "~70k")
RULES = ("block", "network")


def block_template_macs(cardinality, bottleneck_width):
    """The paper's conv2-stage block cost: C * (256 d + 9 d^2 + 256 d)."""
    d = bottleneck_width
    return cardinality * (256 * d + 9 * d * d + d * 256)


def width_for_budget(
    cardinality,
    budget_macs=None,
    rule="block",
    depths=RESNET50_DEPTHS,
    *,
    stem="imagenet",
    input_size=224,
    classes=1000,
    tolerance=0.05,
):
    """The bottleneck width d that keeps a ResNeXt of `cardinality` at the budget.

    Args:
        cardinality: C.
        budget_macs: the budget. For `rule="block"`, the block template's cost
            (default 69,632, ResNet-50's); for `rule="network"`, whole-network
            MACs (default: ResNet-50's layout, cardinality 1 and width 64, at
            these `depths`, `stem`, `input_size` and `classes`).
        rule: `"block"` (the paper's rule; C = 1, 2, 4, 8, 32 give d = 64, 40,
            24, 14, 4) or `"network"` (match `count_macs_config` exactly).
        tolerance: the largest relative miss accepted.

    Raises:
        ValueError: when no integer d >= 1 lands within `tolerance` of the budget.
    """
    cardinality = positive_int("cardinality", cardinality)
    check_choice("rule", rule, RULES)
    if rule == "block":
        budget = budget_macs or PAPER_BLOCK_BUDGET
        d = _block_rule_width(cardinality, budget)

        def cost(d):
            return block_template_macs(cardinality, d)
    else:
        config = dict(stem=stem, input_size=input_size, classes=classes)
        budget = budget_macs or count_macs_config(depths, 1, 64, **config)

        def cost(d):
            return count_macs_config(depths, cardinality, d, **config)

        d = _closest_width(cost, budget)
    miss = (cost(d) - budget) / budget
    if abs(miss) > tolerance:
        raise ValueError(
            f"No bottleneck width fits cardinality {cardinality} to a budget of {budget:,} MACs "
            f"({rule} rule): the closest, d={d}, costs {cost(d):,} ({miss:+.1%}, more than the "
            f"{tolerance:.0%} tolerance). Lower the cardinality or raise the budget."
        )
    return d


def _block_rule_width(cardinality, budget):
    """The paper's rule: solve 9 C d^2 + 512 C d = budget for d, rounded to the nearest integer."""
    exact = (-512 + math.sqrt(512**2 + 36 * budget / cardinality)) / 18
    return max(1, round(exact))


def _closest_width(cost, budget):
    """The integer d >= 1 whose `cost(d)` is closest to `budget`; `cost` grows with d."""
    d = 1
    while cost(d + 1) <= budget:  # walk to the last d under budget
        d += 1
    if abs(cost(d + 1) - budget) < abs(cost(d) - budget):
        d += 1
    return d


def parse_budget(text, *, input_size=224, classes=1000):
    """`"20M"`, `"4.2G"`, `"4230480872"` or a model name (`"ResNeXt50"`) -> MACs."""
    text = str(text).strip()
    if text == "ResNet50":  # torchvision's ResNet-50: cardinality 1, bottleneck width 64
        return count_macs_config(**RESNET50, input_size=input_size, classes=classes)
    if text in models.CONSTRUCTORS:
        variant = VARIANTS[models.CONSTRUCTORS[text].variant]
        return count_macs_config(**variant, input_size=input_size, classes=classes)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)", text)
    if not match:
        raise ValueError(
            f"Cannot read budget {text!r}: give MACs as a number with an optional k/M/G suffix "
            f"('20M', '4.2G') or a model name (ResNet50, {', '.join(sorted(models.CONSTRUCTORS))})."
        )
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    macs = int(float(match.group(1)) * scale)
    if macs < 1:
        raise ValueError(f"The budget must be at least 1 MAC; received {text!r}.")
    return macs


def feasible_candidates(budget_macs, cardinalities, depth_options, *, stem="imagenet", input_size=224,
                        classes=1000, tolerance=0.05):
    """Every (depths, C) affordable within `tolerance`, with its bottleneck width d, MACs and parameters."""
    # Checked first: a bad choice would otherwise read as one the budget cannot afford.
    check_fraction("tolerance", tolerance)
    cardinalities = dict.fromkeys(positive_ints("cardinalities", cardinalities, "positive integers"))
    try:
        templates = dict.fromkeys(check_depths(depths) for depths in depth_options)
    except TypeError:  # not a collection of templates at all (check_depths names a bad template itself)
        templates = {}
    if not templates:
        raise ValueError(f"`depth_options` must hold at least one depth template, such as [(1, 1, 1)]; received "
                         f"depth_options={depth_options!r}.")
    candidates = []
    for depths in templates:
        for c in cardinalities:
            try:
                d = width_for_budget(c, budget_macs, "network", depths, stem=stem, input_size=input_size,
                                     classes=classes, tolerance=tolerance)
            except ValueError:
                continue  # pruned: not affordable at this budget
            config = dict(stem=stem, classes=classes)
            candidates.append({
                "depths": depths,
                "cardinality": c,
                "bottleneck_width": d,
                "macs": count_macs_config(depths, c, d, input_size=input_size, **config),
                "params": count_params_config(depths, c, d, **config),
            })
    return candidates


def _depths_key(depths):
    return "-".join(str(d) for d in depths)


class ResNeXtHyperModel(keras_tuner.HyperModel):
    """A keras-tuner HyperModel over cardinality (and depths) at a fixed MAC budget.

    Hyperparameters: `cardinality` with one depth template, or `depths` plus
    `cardinality_<depths>` (conditional on it) with several. The width d is solved
    for each candidate, not searched. Candidates off the budget by more than
    `tolerance` are not in the space at all.
    """

    def __init__(self, budget_macs, input_shape, classes, cardinalities=(1, 2, 4, 8, 16, 32),
                 depth_options=((1, 1, 1),), stem="imagenet", tolerance=0.05, include_preprocessing=False):
        super().__init__(name="resnext_budget")
        self.budget_macs = budget_macs
        self.input_shape = tuple(input_shape)
        self.classes = classes
        self.stem = stem
        self.include_preprocessing = include_preprocessing
        self.candidates = feasible_candidates(
            budget_macs, cardinalities, depth_options, stem=stem, input_size=input_shape[0],
            classes=classes, tolerance=tolerance,
        )
        if not self.candidates:
            raise ValueError(
                f"No ResNeXt with cardinality in {tuple(cardinalities)} and depths in "
                f"{[tuple(d) for d in depth_options]} fits {budget_macs:,} MACs within "
                f"{tolerance:.0%}; raise the budget or widen the choices."
            )
        self.templates = sorted({c["depths"] for c in self.candidates})
        self.pruned = []

    def prune(self, keys, why):
        """Takes the candidates named by `keys` (`search_report.candidate_key`) out of the space before it is
        declared; a ValueError that says `why` if none would be left."""
        kept = [c for c in self.candidates if candidate_key(c) not in set(keys)]
        if not kept:
            raise ValueError(f"Every candidate is pruned: {why}.")
        self.pruned += [c for c in self.candidates if candidate_key(c) in set(keys)]
        self.candidates = kept
        self.templates = sorted({c["depths"] for c in self.candidates})

    def candidate(self, hp):
        """The (feasible) candidate that these hyperparameter values select."""
        if len(self.templates) == 1:
            depths, cardinality = self.templates[0], hp.get("cardinality")
        else:
            depths = tuple(int(d) for d in hp.get("depths").split("-"))
            cardinality = hp.get(f"cardinality_{_depths_key(depths)}")
        return next(c for c in self.candidates if c["depths"] == depths and c["cardinality"] == cardinality)

    def _declare(self, hp):
        if len(self.templates) == 1:
            hp.Choice("cardinality", [c["cardinality"] for c in self.candidates])
            return
        keys = [_depths_key(t) for t in self.templates]
        hp.Choice("depths", keys)
        for template, key in zip(self.templates, keys):
            with hp.conditional_scope("depths", [key]):
                hp.Choice(f"cardinality_{key}", [c["cardinality"] for c in self.candidates if c["depths"] == template])

    def build(self, hp):
        """The candidate's model, uncompiled: the search compiles it with its recipe (`fitting.fit`)."""
        self._declare(hp)
        return self.build_candidate(self.candidate(hp))

    def build_candidate(self, c):
        """The model of one candidate (a dict of `candidates`), as `build` makes it."""
        return models.ResNeXt(c["depths"], c["cardinality"], c["bottleneck_width"], stem=self.stem,
                              classes=self.classes, input_shape=self.input_shape,
                              include_preprocessing=self.include_preprocessing,
                              name=f"resnext_{c['cardinality']}x{c['bottleneck_width']}d")


def _atomic_save_json(path, obj):
    text = json.dumps(obj)
    files.write_bytes(path, text.encode())
    return text


def _atomic_save_weights(self):
    with files.atomic_path(self.filepath) as tmp:
        self.model.save_weights(tmp)


def make_keras_tuner_writes_atomic():
    """keras-tuner writes its oracle and trial state and each trial's best weights in place, so a
    kill during a write leaves a file no resumed search can read; these writes go through a
    temporary file instead. (Its distributed mode keeps its own writes.)"""
    from keras_tuner.src import utils as kt_utils
    from keras_tuner.src.engine import tuner_utils

    kt_utils.save_json = _atomic_save_json
    if "KERASTUNER_TUNER_ID" not in os.environ:
        tuner_utils.SaveBestEpoch._save_model = _atomic_save_weights


class _ResumableOracle:
    """Reloads only the trials the oracle's own state knows.

    keras-tuner saves a new trial's file, then the oracle's state. A kill between the two
    leaves a trial that never runs (no tuner holds it) yet counts against `max_trials`,
    so the resumed search would end one trial short. Dropped here; the next trial takes
    its id and overwrites its file.
    """

    def reload(self):
        super().reload()
        started = set(self.start_order)
        for trial_id in [trial_id for trial_id in self.trials if trial_id not in started]:
            del self.trials[trial_id]


class ResumableRandomSearchOracle(_ResumableOracle, keras_tuner.oracles.RandomSearchOracle):
    pass


class ResumableBayesianOptimizationOracle(_ResumableOracle, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class ResumableHyperbandOracle(_ResumableOracle, keras_tuner.oracles.HyperbandOracle):
    pass


class ResumableGridSearchOracle(_ResumableOracle, keras_tuner.oracles.GridSearchOracle):
    """keras-tuner's grid search, resumable after a kill (keras-team/keras-tuner#1055).

    `GridSearchOracle` walks the grid from two structures it keeps only in memory: the
    started trials in grid order (`_ordered_ids`) and the trials whose successor it has
    yet to generate (`_populate_next`). Reloaded, it has neither, and the next ended trial
    is looked up in the empty order: `KeyError`. Both follow from what the oracle does
    save, so they are rebuilt on reload: the started trials sorted in grid order, and
    every started trial queued for its successor (a successor already tried is skipped,
    since it is the next entry in that order).
    """

    def set_state(self, state):
        super().set_state(state)
        started = [trial_id for trial_id in self.start_order if trial_id in self.trials]
        in_grid_order = sorted(started, key=functools.cmp_to_key(
            lambda a, b: self._compare(self.trials[a].hyperparameters.values, self.trials[b].hyperparameters.values)
        ))
        self._ordered_ids = type(self._ordered_ids)()
        for trial_id in in_grid_order:
            self._ordered_ids.insert(trial_id)
        self._populate_next = list(in_grid_order)


ORACLES = {
    "random": ResumableRandomSearchOracle,
    "bayesian": ResumableBayesianOptimizationOracle,
    "grid": ResumableGridSearchOracle,
    "hyperband": ResumableHyperbandOracle,
}


SEEDS_FILE = "seeds.json"


class SeededSearch(keras_tuner.Tuner):
    """A keras-tuner tuner that trains each candidate with `repeats` seeds and ranks on their mean.

    Seed `seed + r` (r < `repeats`) starts the backend's random state (the weights) and,
    when `search`'s training data is a function of the seed, the data's order and
    augmentation too. Each candidate is compiled with `recipe` and fitted by
    `keras_resnext.fitting.fit`, as `train` fits, then evaluated once on
    `validation_data`: its final accuracy, not its best epoch's, since a user trains to
    the end. The trial's objective is the seeds' mean; every seed's result is written to
    the trial's folder (`seeds.json`) before the oracle hears of the trial, so a resumed
    search loses none. The trial's checkpoint holds the weights of its best seed.

    With `measure_speed`, the first seed's model is timed while it trains
    (`cost.StepTimer`) and once it is evaluated (`cost.measure`, unless `costs` has its
    figures already: its timed calls then reuse the evaluation's compiled function);
    `seeds.json` keeps the figures.

    `search(train, validation_data=..., epochs=..., verbose=...)`: `train` is a batched
    `tf.data.Dataset` or a function of the seed returning one; labels one-hot where the
    recipe's loss takes them.
    """

    def __init__(self, *args, repeats=1, recipe=None, seed=0, augment_repeats=1, measure_speed=True, costs=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.repeats = positive_int("repeats", repeats)
        self.recipe = recipe
        self.seed = seed
        self.augment_repeats = augment_repeats
        self.measure_speed = measure_speed
        self.costs = costs or {}
        self.precision = keras.config.dtype_policy().name  # a fresh session forgets it

    def run_trial(self, trial, train, validation_data, epochs=1, initial_epoch=0, verbose=1, **_):
        hp, results, kept, speed = trial.hyperparameters, [], None, None
        for r in range(self.repeats):
            seed = self.seed + r
            timer = cost.StepTimer() if self.measure_speed and r == 0 else None
            model = self.fit_candidate(hp, train, seed, epochs=epochs, initial_epoch=initial_epoch, verbose=verbose,
                                       timer=timer)
            accuracy, loss = validation_results(model, validation_data)
            results.append({"seed": seed, "epochs": epochs, "val_accuracy": accuracy, "val_loss": loss})
            if timer:  # after the evaluation, whose compiled predict function the timed calls then reuse
                known = self.costs.get(candidate_key(self.hypermodel.candidate(hp)))
                speed = dict(known or cost.measure(model, timer.batch_size),
                             train_images_per_second=timer.images_per_second())
            if kept is None or accuracy > kept:
                kept = accuracy
                self._keep(trial, model)
        files.write_json(os.path.join(self.get_trial_dir(trial.trial_id), SEEDS_FILE),
                         {"hyperparameters": hp.values, "seeds": results, "cost": speed})
        return {"val_accuracy": statistics.mean(r["val_accuracy"] for r in results),
                "val_loss": statistics.mean(r["val_loss"] for r in results)}

    def fit_candidate(self, hp, train, seed, epochs, initial_epoch=0, verbose=0, timer=None):
        """One seed of a candidate, built from a fresh session with `seed` and fitted by `fitting.fit`
        (its steps timed by `timer`, a `cost.StepTimer`, if given)."""
        _fresh_session(self.precision)
        keras.utils.set_random_seed(seed)
        model = self._build_hypermodel(hp)  # Hyperband's loads the weights of the trial it continues
        data = train(seed) if callable(train) else train
        batch = int(data.element_spec[0].shape[0])  # static: training batches drop the remainder
        if timer:
            timer.batch_size = batch
        steps = max(int(data.cardinality()) // self.augment_repeats, 1)
        fitting.fit(model, self.recipe or default_recipe(self.hypermodel.input_shape[0]), data, epochs=epochs,
                    initial_epoch=initial_epoch, steps_per_epoch=steps, batch_size=batch,
                    num_classes=self.hypermodel.classes, seed=seed, verbose=verbose, callbacks=[timer] if timer else [])
        return model

    def _keep(self, trial, model):
        """The trial's weights (and the build config keras-tuner reloads them with), written atomically."""
        with files.atomic_path(self._get_checkpoint_fname(trial.trial_id)) as tmp:
            model.save_weights(tmp)
        files.write_json(self._get_build_config_fname(trial.trial_id), model.get_build_config())


def _fresh_session(precision):
    """Keras' state cleared for the next model (`clear_session`), keeping the dtype policy it would forget."""
    keras.backend.clear_session()
    keras.config.set_dtype_policy(precision)


def validation_results(model, dataset):
    """`(accuracy, loss)` of `model` on `dataset` (int or one-hot labels), through its compiled predict
    function, the one `cost.measure` timed: no second function to trace."""
    truth, probabilities, size = [], [], None
    for images, labels in dataset:
        images, labels = keras.ops.convert_to_numpy(images), keras.ops.convert_to_numpy(labels)
        truth.append(labels.argmax(-1) if labels.ndim > 1 else labels)
        count = len(labels)
        size = size or count
        # The last, partial batch padded to the others' shape: one predict function traced for the pass, not two
        # (with cost.measure's, TensorFlow warned of retracing in every search).
        padded = np.pad(images, [(0, size - count)] + [(0, 0)] * (images.ndim - 1))
        probabilities.append(np.asarray(model.predict_on_batch(padded), "float32")[:count])
    truth, probabilities = np.concatenate(truth), np.concatenate(probabilities)
    loss = -np.log(np.clip(probabilities[np.arange(len(truth)), truth], 1e-7, 1.0))
    return float(np.mean(probabilities.argmax(-1) == truth)), float(np.mean(loss))


def default_recipe(image_size):
    """`train`'s default recipe for images of `image_size`: the paper's (`recipes.PaperRecipe`)."""
    from keras_resnext import recipes

    return recipes.PaperRecipe().for_data(image_size, 0)


class _HyperbandTuner(keras_tuner.Hyperband, SeededSearch):
    """keras-tuner's Hyperband (its epoch schedule per trial, each continuing from its parent's weights) on an
    oracle given to it, each trial trained as `SeededSearch` trains."""

    def __init__(self, oracle, hypermodel, **kwargs):
        SeededSearch.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


def make_tuner(kind, hypermodel, *, directory, project_name="resnext", max_trials=10, max_epochs=10,
               objective="val_accuracy", seed=0, overwrite=False, repeats=1, recipe=None, augment_repeats=1,
               measure_speed=True, costs=None, **kwargs):
    """A keras-tuner tuner by name on a resumable oracle; resumes from `directory` unless `overwrite`.

    Each candidate trains `repeats` times (seeds `seed`, `seed + 1`, ...) with `recipe`
    (default: the paper's for the input size) and, with `measure_speed`, its speed is
    measured here (figures already in `costs` are not measured again), see `SeededSearch`.
    """
    make_keras_tuner_writes_atomic()
    check_choice("tuner", kind, TUNERS)
    budget = dict(max_epochs=max_epochs) if kind == "hyperband" else dict(max_trials=max_trials)
    # keras-tuner reads seed 0 as "no seed" (a random one): shift, so every seed is reproducible.
    oracle = ORACLES[kind](objective=objective, seed=seed + 1, **budget)
    tuner = _HyperbandTuner if kind == "hyperband" else SeededSearch
    return tuner(oracle=oracle, hypermodel=hypermodel, directory=directory, project_name=project_name,
                 overwrite=overwrite, repeats=repeats, recipe=recipe, seed=seed, augment_repeats=augment_repeats,
                 measure_speed=measure_speed, costs=costs, **kwargs)


def seed_rows(tuner, hypermodel):
    """One row per finished trial and seed: trial, seed, cardinality, width, depths, MACs, params, accuracy, loss."""
    rows = []
    for trial in tuner.oracle.trials.values():
        path = os.path.join(tuner.get_trial_dir(trial.trial_id), SEEDS_FILE)
        if trial.status != "COMPLETED" or not os.path.exists(path):
            continue
        c = hypermodel.candidate(trial.hyperparameters)
        with open(path) as f:
            seeds = json.load(f)["seeds"]
        epochs = trial.hyperparameters.values.get("tuner/epochs", seeds and seeds[0].get("epochs"))
        for result in seeds:
            rows.append({"trial": trial.trial_id, "seed": result["seed"], "epochs": epochs,
                         "cardinality": c["cardinality"], "bottleneck_width": c["bottleneck_width"],
                         "depths": _depths_key(c["depths"]),
                         "macs": c["macs"], "params": c["params"], "val_accuracy": result["val_accuracy"],
                         "val_loss": result["val_loss"]})
    return sorted(rows, key=lambda r: (r["trial"], r["seed"]))


def measure_costs(hypermodel, batch_size, path=None, rounds=5):
    """Each candidate's `cost.measure` on this device, `{candidate_key: figures}`, kept in `path` (JSON):
    what a latency limit prunes on, before anything trains.

    A search that resumes reads the figures it measured before instead of measuring
    again, so noise cannot change which candidates a latency limit prunes. Each
    candidate is measured on a model of its own, built and thrown away.
    """
    costs = _read_costs(path) if path else {}
    for candidate in hypermodel.candidates:
        key = candidate_key(candidate)
        if key not in costs:
            _fresh_session(keras.config.dtype_policy().name)
            costs[key] = cost.measure(hypermodel.build_candidate(candidate), batch_size, rounds)
    if path:
        files.write_json(path, costs)
    return costs


def trial_costs(tuner, hypermodel):
    """`{candidate_key: figures}` measured in the finished trials (their `seeds.json`), the longest-trained's."""
    costs, epochs = {}, {}
    for trial in tuner.oracle.trials.values():
        path = os.path.join(tuner.get_trial_dir(trial.trial_id), SEEDS_FILE)
        if trial.status != "COMPLETED" or not os.path.exists(path):
            continue
        with open(path) as f:
            measured = json.load(f).get("cost")
        key = candidate_key(hypermodel.candidate(trial.hyperparameters))
        budget = trial.hyperparameters.values.get("tuner/epochs", 0)  # Hyperband's; one budget elsewhere
        if measured and budget >= epochs.get(key, -1):
            costs[key], epochs[key] = measured, budget
    return costs


def wait_for_costs(path, timeout=600):
    """The costs the chief of a distributed search measured: its file, once written (a worker's wait)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"The chief wrote no {path} within {timeout} s: is it running?")
        time.sleep(0.2)
    return _read_costs(path)


def _read_costs(path):
    try:
        with open(path) as f:
            costs = json.load(f)
    except (OSError, ValueError):
        return {}
    return costs if isinstance(costs, dict) else {}


def slower_than(costs, max_latency_ms):
    """The candidate keys whose measured latency is over `max_latency_ms`."""
    return [key for key, figures in costs.items() if figures["latency_ms"] > max_latency_ms]

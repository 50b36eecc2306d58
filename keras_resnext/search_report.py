"""What a search's trials say: each candidate's accuracy over seeds with an interval, and the answer.

A candidate trained with several seeds has a spread; the mean alone cannot say whether the
best candidate beats the runner-up or drew a lucky seed. Following pycls ("On Network
Design Spaces for Visual Recognition", Radosavovic et al.), the interval is a bootstrap
one: the seeds' values resampled with replacement, 10,000 times with a fixed generator,
and the 2.5th and 97.5th percentiles of the resampled means (95%). Two candidates are
*separated* when their intervals do not overlap; with one seed there is no interval and
nothing is separated.
"""

import numpy as np

BOOTSTRAP_SAMPLES = 10_000
CANDIDATE_COLUMNS = ("cardinality", "bottleneck_width", "depths", "macs", "params", "repeats", "val_accuracy_mean",
                     "val_accuracy_std", "val_accuracy_ci_low", "val_accuracy_ci_high", "latency_ms",
                     "infer_images_per_second", "train_images_per_second", "pruned")


def bootstrap_interval(values, confidence=0.95, samples=BOOTSTRAP_SAMPLES, seed=0):
    """`(low, high)`: the percentile bootstrap interval of the mean of `values` (equal for one value)."""
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        raise ValueError("A bootstrap interval needs at least one value.")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (samples, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def candidate_rows(candidates, seed_rows, costs, pruned=()):
    """One row per candidate (`CANDIDATE_COLUMNS`): its seeds' mean, std and interval, and its measured cost.

    `seed_rows` are a search's per-seed results (`cardinality`, `depths`, `val_accuracy`);
    a candidate with none has empty accuracy columns. `costs[key]` is `cost.measure`'s
    dict for `candidate_key(candidate)`; `pruned` holds the keys pruned before training.
    """
    rows = []
    for candidate in candidates:
        key = candidate_key(candidate)
        values = [r["val_accuracy"] for r in seed_rows if candidate_key(r) == key]
        row = {name: candidate[name] for name in ("cardinality", "bottleneck_width", "macs", "params")}
        row.update(depths=_depths_text(candidate["depths"]), repeats=len(values), pruned=key in pruned,
                   **(costs.get(key) or {}))
        if values:
            low, high = bootstrap_interval(values)
            row.update(val_accuracy_mean=float(np.mean(values)),
                       val_accuracy_std=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                       val_accuracy_ci_low=low, val_accuracy_ci_high=high)
        rows.append(row)
    return rows


def answer(rows):
    """The best candidate (highest mean), its runner-up, and whether their intervals separate them."""
    trained = sorted((r for r in rows if r["repeats"]), key=lambda r: r["val_accuracy_mean"], reverse=True)
    if not trained:
        return {"best": None, "runner_up": None, "separated": False}
    best, runner_up = trained[0], (trained[1] if len(trained) > 1 else None)
    separated = bool(runner_up and min(best["repeats"], runner_up["repeats"]) > 1
                     and best["val_accuracy_ci_low"] > runner_up["val_accuracy_ci_high"])
    return {"best": best, "runner_up": runner_up, "separated": separated,
            "difference": runner_up and best["val_accuracy_mean"] - runner_up["val_accuracy_mean"]}


def pareto_front(rows, speed="train_images_per_second", accuracy="val_accuracy_mean"):
    """The rows no other row beats on both `speed` and `accuracy` (higher is better), fastest first."""
    points = [r for r in rows if r.get(speed) is not None and r.get(accuracy) is not None]
    front = [r for r in points if not any(
        o[speed] >= r[speed] and o[accuracy] >= r[accuracy] and (o[speed] > r[speed] or o[accuracy] > r[accuracy])
        for o in points)]
    return sorted(front, key=lambda r: r[speed], reverse=True)


def candidate_key(candidate):
    """A candidate's name in files and tables, `depths/C` (`1-1-1/8`): C and the depths fix the width."""
    return f"{_depths_text(candidate['depths'])}/{candidate['cardinality']}"


def _depths_text(depths):
    return depths if isinstance(depths, str) else "-".join(str(d) for d in depths)

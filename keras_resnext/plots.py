"""The pictures a run writes: training curves, the confusion matrix and the cardinality-vs-accuracy plot."""

import csv

import numpy as np

from keras_resnext.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, png):
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def training_curves(log_csv, png):
    """Loss and accuracy per epoch, train and test (when tested each epoch), from the CSV log (all epochs, resumed
    too)."""
    with open(log_csv) as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = _pyplot().subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train")
        if rows and f"val_{key}" in rows[0]:  # not when a run across processes tests only at its end
            ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], label="test")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, png)


def accuracy_vs_cardinality(rows, budget_macs, png):
    """Validation accuracy against cardinality at the fixed budget (Table 2 as a picture): each candidate's
    mean over seeds with its 95% interval as an error bar, d labelled; pruned and untrained ones left out."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for row in rows:
        if not row.get("repeats"):
            continue
        mean = row["val_accuracy_mean"]
        ax.errorbar(row["cardinality"], mean, yerr=[[mean - row["val_accuracy_ci_low"]],
                                                    [row["val_accuracy_ci_high"] - mean]],
                    fmt="o", color="C0", capsize=4)
        ax.annotate(f"{row['cardinality']}x{row['bottleneck_width']}d", (row["cardinality"], mean),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log", base=2)
    shown = sorted({row["cardinality"] for row in rows if row.get("repeats")})
    ax.set_xticks(shown, [str(c) for c in shown])
    ax.set_xlabel("cardinality C (bottleneck width d solved for the budget)")
    ax.set_ylabel("validation accuracy (mean over seeds, 95% CI)")
    ax.set_title(f"Fixed budget: {budget_macs / 1e6:,.1f}M MACs")
    ax.grid(alpha=0.3)
    _save(fig, png)


def accuracy_vs_speed(rows, front, budget_macs, png):
    """Validation accuracy against measured training throughput, the Pareto front joined and marked."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    on_front = {id(r) for r in front}
    for row in rows:
        if not row.get("repeats") or row.get("train_images_per_second") is None:
            continue
        mean, speed = row["val_accuracy_mean"], row["train_images_per_second"]
        ax.errorbar(speed, mean, yerr=[[mean - row["val_accuracy_ci_low"]], [row["val_accuracy_ci_high"] - mean]],
                    fmt="o", color="C3" if id(row) in on_front else "C0", capsize=4)
        ax.annotate(f"{row['cardinality']}x{row['bottleneck_width']}d", (speed, mean), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    if front:
        ax.plot([r["train_images_per_second"] for r in front], [r["val_accuracy_mean"] for r in front], "--",
                color="C3", label="Pareto front (faster or more accurate than every other)")
        ax.legend(fontsize=8, loc="lower left")
    ax.set_xlabel("training throughput here (images/s, measured)")
    ax.set_ylabel("validation accuracy (mean over seeds, 95% CI)")
    ax.set_title(f"Fixed budget: {budget_macs / 1e6:,.1f}M MACs")
    ax.grid(alpha=0.3)
    _save(fig, png)


# Beyond this many classes the cells are too small to read a count or a name in (CIFAR-100,
# ImageNet): the matrix is drawn as a heat map of fixed size, with class ids on the axes.
MAX_LABELLED_CLASSES = 30


def confusion_matrix(matrix, class_names, png):
    """The confusion matrix as a picture: true class by row, predicted by column, counts in the cells."""
    n = len(class_names)
    labelled = n <= MAX_LABELLED_CLASSES
    size = max(4, 0.5 * n + 2) if labelled else 10  # ImageNet's, grown per class, would be 50,000 px wide
    fig, ax = _pyplot().subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if not labelled:
        ax.set_title(f"{n} classes, by class id")
        fig.colorbar(image, ax=ax, shrink=0.8, label="images")
        _save(fig, png)
        return
    ticks = range(n)
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    _save(fig, png)


def explanation(picture, title, png):
    """A Grad-CAM overlay (`keras_resnext.explain.overlay`) with the prediction as its title."""
    height, width = picture.shape[:2]
    fig, ax = _pyplot().subplots(figsize=(4, 4 * height / width + 0.4))
    ax.imshow(picture)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    _save(fig, png)

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
    """Loss and accuracy per epoch, train and test, from the CSV log (all epochs, resumed too)."""
    with open(log_csv) as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = _pyplot().subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train")
        ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], label="test")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, png)


def accuracy_vs_cardinality(rows, budget_macs, png):
    """Validation accuracy against cardinality at the fixed budget, d labelled (Table 2 as a picture)."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for row in rows:
        accuracy = row.get("val_accuracy", float("nan"))
        ax.scatter(row["cardinality"], accuracy, color="C0")
        ax.annotate(f"{row['cardinality']}x{row['bottleneck_width']}d", (row["cardinality"], accuracy),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("cardinality C (bottleneck width d solved for the budget)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Fixed budget: {budget_macs / 1e6:,.1f}M MACs")
    ax.grid(alpha=0.3)
    _save(fig, png)


def confusion_matrix(matrix, class_names, png):
    """The confusion matrix as a picture: true class by row, predicted by column, counts in the cells."""
    size = max(4, 0.5 * len(class_names) + 2)
    fig, ax = _pyplot().subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
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

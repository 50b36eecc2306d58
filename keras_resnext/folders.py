"""Your own images: a folder's layout, a stable stratified split, and a scan for files that do not decode.

Two layouts are read, those of `keras.utils.image_dataset_from_directory` and
torchvision's `ImageFolder`, and the package's split layout:

    root/<class>/<image>               a seeded, stratified train/test split is made
    root/<split>/<class>/<image>       train (and test, validation or val) as given

Class names are the folder names, sorted. Files whose extension TensorFlow
does not decode (`.txt`, `.DS_Store`, ...) are ignored; image files that do not
decode are found in one pass before training and skipped with one warning, or
refused with `strict=True`.
"""

import collections
import dataclasses
import os
import warnings

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
SPLIT_NAMES = {"train": "train", "test": "test", "validation": "test", "val": "test"}


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """A scanned image tree: `splits[name]` is a list of `(path, label)`, labels index `class_names`."""

    root: str
    layout: str  # "flat" (root/<class>/<image>) or "split" (root/<split>/<class>/<image>)
    class_names: tuple
    splits: dict
    skipped: tuple  # image files that did not decode
    val_split: float
    seed: int

    def counts(self, split):
        """Images per class name in `split`."""
        counter = collections.Counter(label for _, label in self.splits[split])
        return {name: counter.get(i, 0) for i, name in enumerate(self.class_names)}

    def summary(self):
        """What metrics.json records of the data: layout, split fraction and seed, per-class counts."""
        return {"root": self.root, "layout": self.layout, "val_split": self.val_split, "seed": self.seed,
                "counts": {split: self.counts(split) for split in self.splits},
                "skipped_files": list(self.skipped)}


def scan(root, val_split=0.2, seed=0, strict=False):
    """Reads the image tree at `root` into an `ImageFolder`; ValueError says what is wrong with it."""
    root = os.path.expanduser(os.fspath(root))
    if not 0 < val_split < 1:
        raise ValueError(f"The validation split must be a fraction in (0, 1); received {val_split!r}.")
    if not os.path.isdir(root):
        raise ValueError(f"Image folder {root!r} does not exist; expected {root}/<class>/<image> "
                         f"or {root}/<split>/<class>/<image>.")
    split_dirs = {SPLIT_NAMES[d]: os.path.join(root, d) for d in sorted(os.listdir(root))
                  if d in SPLIT_NAMES and os.path.isdir(os.path.join(root, d))}
    layout = "split" if "train" in split_dirs else "flat"
    trees = split_dirs if layout == "split" else {"all": root}
    class_names = _class_names(root, trees)
    # A flat tree must hold every class; in a split tree a class may be missing from one split.
    found = {split: _images(tree, class_names, every_class=layout == "flat") for split, tree in trees.items()}
    found, skipped = _drop_undecodable(found, strict)
    if "test" not in found:
        found = _stratified_split(found["train" if layout == "split" else "all"], val_split, seed)
    return ImageFolder(root, layout, tuple(class_names), found, tuple(skipped), val_split, seed)


def _class_names(root, trees):
    names = sorted({d for tree in trees.values() for d in os.listdir(tree) if os.path.isdir(os.path.join(tree, d))})
    if len(names) < 2:
        raise ValueError(
            f"Image folder {root!r} has {len(names)} class folder(s) ({', '.join(names) or 'none'}); "
            "expected at least two, as <root>/<class>/<image> or <root>/<split>/<class>/<image>."
        )
    return names


def _images(tree, class_names, every_class):
    """`[(path, label)]` of the files with an image extension under `tree/<class>/`.

    A ValueError if there are none, or, with `every_class`, if a class has none.
    """
    items = []
    for label, name in enumerate(class_names):
        folder = os.path.join(tree, name)
        if not os.path.isdir(folder):
            continue
        for dirpath, _, filenames in sorted(os.walk(folder)):
            items += [(os.path.join(dirpath, f), label) for f in sorted(filenames)
                      if f.lower().endswith(IMAGE_EXTENSIONS)]
    empty = [name for label, name in enumerate(class_names) if not any(lab == label for _, lab in items)]
    if empty and len(empty) == len(class_names):
        raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) under {tree!r}.")
    if empty and every_class:
        raise ValueError(f"Class folder(s) {', '.join(empty)} under {tree!r} hold no image files.")
    return items


def _decodes(path):
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return True
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError):
        return False


def _drop_undecodable(found, strict):
    """Every split without the files TensorFlow cannot decode, and those files."""
    bad = [path for items in found.values() for path, _ in items if not _decodes(path)]
    if bad:
        listing = f"{len(bad)} file(s) that are not decodable images: {', '.join(bad[:5])}" + (
            f", ... ({len(bad)} in all)" if len(bad) > 5 else "")
        if strict:
            raise ValueError(f"Refusing to train (strict): {listing}.")
        warnings.warn(f"Skipping {listing}.", stacklevel=3)
    bad_set = set(bad)
    kept = {split: [item for item in items if item[0] not in bad_set] for split, items in found.items()}
    if not any(kept.values()):
        raise ValueError("The image folder holds no decodable image.")
    return kept, bad


def _stratified_split(items, val_split, seed):
    """`{"train": ..., "test": ...}`: a fraction `val_split` of every class held out, the same on every rerun."""
    from sklearn.model_selection import train_test_split

    labels = [label for _, label in items]
    counts = collections.Counter(labels)
    stratify = labels if min(counts.values()) >= 2 and len(items) * val_split >= len(counts) else None
    train, test = train_test_split(items, test_size=val_split, random_state=seed, stratify=stratify)
    return {"train": sorted(train), "test": sorted(test)}

"""Writes keras_resnext/imagenet_class_index.json, so decode_predictions works offline.

Class i of torchvision/timm ImageNet-1k models is the i-th WordNet id in sorted order.
The ids come from tensorflow-datasets' imagenet2012 labels and the names from its
ImageNet label list (first lemma, spaces as underscores, as keras.applications shows
them). Output format is keras.applications': {"0": ["n01440764", "tench"], ...}.

    python weights/make_imagenet_class_index.py
"""

import json
import pathlib

import tensorflow_datasets as tfds
from tensorflow_datasets.datasets.siscore import labels as siscore_labels


def main():
    wnids = (
        pathlib.Path(tfds.__file__).parent / "datasets" / "imagenet2012" / "labels.txt"
    ).read_text().split()
    names = [label.split(",")[0].strip().replace(" ", "_") for label in siscore_labels.IMAGENET_LABELS_LIST]
    assert len(wnids) == len(names) == 1000 and wnids == sorted(wnids)
    index = {str(i): [wnid, name] for i, (wnid, name) in enumerate(zip(wnids, names))}
    out = pathlib.Path(__file__).resolve().parents[1] / "keras_resnext" / "imagenet_class_index.json"
    out.write_text(json.dumps(index, indent=0) + "\n")
    print(f"wrote {out} ({len(index)} classes)")


if __name__ == "__main__":
    main()

"""The pretrained-weights registry: data in `registry.json`, read here."""

import functools
import json
from importlib import resources

from keras_resnext.config import VARIANTS
from keras_resnext.flops import count_params_config


@functools.cache
def entries():
    """Every registry entry, as dicts (see registry.json; one per model and tag)."""
    with resources.files(__package__).joinpath("registry.json").open() as f:
        return tuple(json.load(f))


def tags_for(variant):
    return [e["tag"] for e in entries() if e["model"] == variant]


def find(variant, weights):
    """The entry `weights` ("imagenet" or a tag) names for `variant`, or None."""
    if not isinstance(weights, str) or variant is None:
        return None
    for e in entries():
        if e["model"] == variant and (e["tag"] == weights or (weights == "imagenet" and e.get("default"))):
            return e
    return None


def is_pretrained(variant, weights):
    """True when `weights` is "imagenet" or a registry tag (known or not for `variant`)."""
    if weights == "imagenet":
        return True
    return isinstance(weights, str) and any(e["tag"] == weights for e in entries())


def list_weights(model=None):
    """The pretrained weights, one row (a dict) per model and tag.

    Columns: model, tag, top1 (published ImageNet-1k top-1, or None), resolution
    (eval image side), crop_pct, interpolation, license, params (millions),
    size_mb (float32), source (upstream file), hub (the Hugging Face repo we
    download), default (what weights="imagenet" loads). CC-BY-NC-4.0 weights are
    for non-commercial use only.
    """
    rows = []
    for e in entries():
        if model is not None and e["model"] != model:
            continue
        params = count_params_config(**VARIANTS[e["model"]])
        rows.append({
            "model": e["model"],
            "tag": e["tag"],
            "top1": e["top1"],
            "resolution": e["test_input_size"],
            "crop_pct": e["test_crop_pct"],
            "interpolation": e["interpolation"],
            "license": e["license"],
            "params": round(params / 1e6, 2),
            "size_mb": round(params * 4 / 2**20, 1),
            "source": e["source_url"],
            "hub": e["hf_hub_id"],
            "default": e["default"],
        })
    return rows


def format_table(rows):
    """`list_weights()` rows as an aligned text table."""
    header = ("model", "tag", "top1", "res", "license", "params(M)", "MB", "default")
    lines = [header] + [
        (r["model"], r["tag"], "-" if r["top1"] is None else f"{r['top1']:.3f}", str(r["resolution"]),
         r["license"], f"{r['params']:.2f}", f"{r['size_mb']:.1f}", "imagenet" if r["default"] else "")
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)

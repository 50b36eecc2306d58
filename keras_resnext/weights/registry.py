"""The pretrained-weights registry: data in `registry.json`, read here."""

import functools
import json
from importlib import resources


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

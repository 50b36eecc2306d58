"""Puts weights named by `weights=` into a built model."""

from keras_resnext.weights import registry


def load_weights(model, weights, variant=None):
    if weights == "imagenet" or registry.is_pretrained(variant, weights):
        entry = registry.find(variant, weights)
        if entry is None:
            raise ValueError(
                f"No pretrained weights {weights!r} are available for {variant or model.name!r} yet."
            )
    model.load_weights(weights)

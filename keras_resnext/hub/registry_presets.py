"""This package's registry tags as keras-hub presets, with no preset folder to download.

`"resnext50_32x4d.tv2_in1k"` (or a bare variant, for its default tag) builds a backbone,
an image converter, a preprocessor or a classifier the way keras-hub's preset loaders
build them from a folder: the backbone from the variant's hyperparameters and the
converted torchvision/timm weights, the converter from the tag's eval transform, the
classifier's head from the checkpoint's `fc`. Folders, `hf://` and `kaggle://` handles
are keras-hub's to load; `from_preset` sends only registry tags here.
"""

import os

from keras_resnext import config
from keras_resnext.weights import registry
from keras_resnext.weights.checkpoint import read_state_dict
from keras_resnext.weights.download import fetch
from keras_resnext.weights.loading import attach_pretrained_cfg, pretrained_entry
from keras_resnext.weights.torch_layout import load_torch_state_dict


def is_registry_preset(preset):
    """True for `"<variant>"` or `"<variant>.<tag>"`; False for a folder or a `scheme://` handle."""
    if not isinstance(preset, str) or "://" in preset or os.path.exists(preset):
        return False
    return preset.partition(".")[0] in config.VARIANTS


def check_preset(preset):
    """`preset` as a string; a ValueError, saying what is accepted, for a name nothing can load.

    Registry tags are loaded here; folders and `scheme://` handles are keras-hub's to load.
    """
    if isinstance(preset, os.PathLike):
        preset = os.fspath(preset)  # keras-hub takes strings only
    if is_registry_preset(preset) or (isinstance(preset, str) and ("://" in preset or os.path.isdir(preset))):
        return preset
    raise ValueError(
        f"Unknown preset {preset!r}: expected a preset folder, an 'hf://' or 'kaggle://' handle, or a "
        "'<variant>.<tag>' of keras_resnext.weights.list_weights(), e.g. 'resnext50_32x4d.tv2_in1k', "
        f"with variants {', '.join(config.VARIANTS)}."
    )


def registry_presets():
    """`{preset: {"metadata": ...}}` for every registry tag, as keras-hub lists a class's `presets`."""
    return {
        f"{row['model']}.{row['tag']}": {"metadata": {
            "description": f"{row['model']} with the {row['tag']} ImageNet-1k weights ({row['license']}).",
            "params": int(row["params"] * 1e6),
            "path": "keras_resnext",
            "top1": row["top1"],
            "license": row["license"],
            "source": row["source"],
        }}
        for row in registry.list_weights()
    }


class RegistryPresets:
    """The `presets` class attribute of this package's keras-hub classes: the registry's tags."""

    def __get__(self, instance, owner):
        return registry_presets()


def image_converter_kwargs(entry):
    """ImageConverter arguments for an entry's eval transform: `x * scale + offset` = `(x / 255 - mean) / std`."""
    size = entry["test_input_size"]
    return dict(
        image_size=(size, size),
        crop_pct=entry["test_crop_pct"],
        scale=[1 / (255.0 * s) for s in entry["std"]],
        offset=[-m / s for m, s in zip(entry["mean"], entry["std"])],
        interpolation=entry["interpolation"],
    )


class RegistryPreset:
    """One registry tag, with the `load_*` methods keras-hub's preset loaders have."""

    def __init__(self, preset):
        variant, _, tag = preset.partition(".")
        self.preset = preset
        self.architecture = config.VARIANTS[variant]
        self.entry = pretrained_entry(variant, tag or "imagenet")
        self._state_dict = None

    def state_dict(self):
        if self._state_dict is None:  # one download and read for the backbone and the head
            self._state_dict = read_state_dict(fetch(self.entry))
        return self._state_dict

    def load_backbone(self, cls, load_weights, **kwargs):
        backbone = cls(**self.architecture, **kwargs)
        if load_weights:
            load_torch_state_dict(backbone, self.state_dict())
            attach_pretrained_cfg(backbone, self.entry)
        return backbone

    def load_image_converter(self, cls, **kwargs):
        return cls(**{**image_converter_kwargs(self.entry), **kwargs})

    def load_preprocessor(self, cls, **kwargs):
        if "image_converter" not in kwargs:
            kwargs["image_converter"] = self.load_image_converter(cls.image_converter_cls)
        return cls(**kwargs)

    def load_task(self, cls, load_weights, load_task_weights, **kwargs):
        """A classifier; with `load_task_weights` (no `num_classes` given) it keeps the checkpoint's head."""
        backbone_kwargs = {key: kwargs.pop(key) for key in ("dtype", "image_shape") if key in kwargs}
        if "backbone" not in kwargs:
            kwargs["backbone"] = self.load_backbone(cls.backbone_cls, load_weights, **backbone_kwargs)
        if "preprocessor" not in kwargs:
            kwargs["preprocessor"] = self.load_preprocessor(cls.preprocessor_cls)
        if load_task_weights:
            kwargs["num_classes"] = self.entry["num_classes"]
        task = cls(**kwargs)
        if load_weights and load_task_weights:
            load_torch_state_dict(task, self.state_dict())
            attach_pretrained_cfg(task, self.entry)
        return task

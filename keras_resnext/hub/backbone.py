"""`ResNeXtBackbone`: ResNeXt's stem and stages as a keras-hub `FeaturePyramidBackbone`.

The backbone is the same trunk as `keras_resnext.ResNeXt` (same layers, names and
weights); its `get_config()` is its hyperparameters, as keras-hub's backbones' are.
`from_preset` takes what keras-hub's `Backbone.from_preset` takes (preset folders,
`hf://`, `kaggle://`) and this package's registry tags.
"""

import threading

import keras
from keras_hub.models import FeaturePyramidBackbone

from keras_resnext import config, files, models
from keras_resnext.hub import registry_presets

_saving_preset = threading.local()


def save_preset_atomically(save, preset_dir, **kwargs):
    """Runs keras-hub's `save_to_preset` into a temporary folder renamed onto `preset_dir` when whole.

    A task's save calls its backbone's save into the same folder: that inner call writes
    straight into the outer temporary folder.
    """
    if getattr(_saving_preset, "active", False):
        return save(preset_dir, **kwargs)
    _saving_preset.active = True
    try:
        with files.atomic_dir(preset_dir) as tmp:
            save(tmp, **kwargs)
    finally:
        _saving_preset.active = False


@keras.saving.register_keras_serializable(package="keras_resnext")
class ResNeXtBackbone(FeaturePyramidBackbone):
    """ResNeXt as a keras-hub backbone: the stem and stages, `pyramid_outputs` "P1".."P5".

    Args:
        depths, cardinality, bottleneck_width, stem, output_stride, block_form, conv_implementation, norm: as
            in `keras_resnext.ResNeXt`.
        image_shape: the input shape, `(None, None, 3)` for any size.
        dtype: the dtype policy of the layers (keras-hub's convention).
    """

    def __init__(self, depths, cardinality, bottleneck_width, stem="imagenet", output_stride=32,
                 block_form="grouped", conv_implementation="auto", norm="batch_norm", image_shape=(None, None, 3),
                 dtype=None, **kwargs):
        depths, cardinality, bottleneck_width, stem = config.check_architecture(
            depths, cardinality, bottleneck_width, stem
        )
        architecture = dict(depths=depths, cardinality=cardinality, bottleneck_width=bottleneck_width, stem=stem,
                            output_stride=output_stride, block_form=block_form,
                            conv_implementation=conv_implementation, norm=norm)
        # === Functional model ===
        image = keras.layers.Input(shape=image_shape, name="images")
        features = models.trunk(image, **architecture, dtype=dtype)
        super().__init__(inputs=image, outputs=features, dtype=dtype, **kwargs)
        # === Config ===
        self.architecture = architecture
        self.image_shape = tuple(image_shape)
        self.pyramid_outputs = {
            key: self.get_layer(name).output for key, name, _ in config.feature_levels(depths, stem, output_stride)
        }

    def get_config(self):
        return {**super().get_config(), **self.architecture, "depths": list(self.architecture["depths"]),
                "image_shape": list(self.image_shape)}

    presets = registry_presets.RegistryPresets()

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A backbone from a preset folder, an `hf://` / `kaggle://` handle, or a registry tag.

        Registry tags are `"resnext50_32x4d.tv2_in1k"` (or a variant, for its default tag),
        downloaded, verified and converted as `weights=` does. Extra keyword arguments
        (`output_stride`, `norm`, `image_shape`, `dtype`, ...) go to the constructor.
        """
        preset = registry_presets.check_preset(preset)
        if registry_presets.is_registry_preset(preset):
            return registry_presets.RegistryPreset(preset).load_backbone(cls, load_weights, **kwargs)
        return super().from_preset(preset, load_weights=load_weights, **kwargs)

    def save_to_preset(self, preset_dir, max_shard_size=10):
        """keras-hub's preset folder (config, weights, metadata), written atomically."""
        save_preset_atomically(super().save_to_preset, preset_dir, max_shard_size=max_shard_size)

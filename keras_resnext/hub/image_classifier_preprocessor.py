"""`ResNeXtImageClassifierPreprocessor`: a ResNeXt classifier's preprocessing, carried by its preset."""

import keras
from keras_hub.models import ImageClassifierPreprocessor

from keras_resnext.hub import registry_presets
from keras_resnext.hub.backbone import ResNeXtBackbone
from keras_resnext.hub.image_converter import ResNeXtImageConverter


@keras.saving.register_keras_serializable(package="keras_resnext")
class ResNeXtImageClassifierPreprocessor(ImageClassifierPreprocessor):
    """keras-hub's image classifier preprocessor with a `ResNeXtImageConverter`.

    Raw images (any size, uint8 or float in [0, 255]) in; the model's input out.
    """

    backbone_cls = ResNeXtBackbone
    image_converter_cls = ResNeXtImageConverter
    presets = registry_presets.RegistryPresets()

    @classmethod
    def from_preset(cls, preset, config_file="preprocessor.json", **kwargs):
        """A preprocessor from a preset folder, an `hf://` / `kaggle://` handle, or a registry tag."""
        preset = registry_presets.check_preset(preset)
        if registry_presets.is_registry_preset(preset):
            return registry_presets.RegistryPreset(preset).load_preprocessor(cls, **kwargs)
        return super().from_preset(preset, config_file=config_file, **kwargs)

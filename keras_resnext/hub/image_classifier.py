"""`ResNeXtImageClassifier`: keras-hub's image classifier on a `ResNeXtBackbone`, with presets."""

import keras
from keras_hub.models import ImageClassifier

from keras_resnext.hub import registry_presets
from keras_resnext.hub.backbone import ResNeXtBackbone, save_preset_atomically
from keras_resnext.hub.image_classifier_preprocessor import ResNeXtImageClassifierPreprocessor


@keras.saving.register_keras_serializable(package="keras_resnext")
class ResNeXtImageClassifier(ImageClassifier):
    """ResNeXt as a keras-hub image classifier: backbone, pooling, dropout, a `predictions` Dense.

    As every keras-hub `ImageClassifier`, it outputs logits by default (`activation=None`)
    and its `compile()` picks a from-logits loss to match.

        classifier = ResNeXtImageClassifier.from_preset("resnext50_32x4d.tv2_in1k")
        classifier.predict(raw_uint8_images)   # resized, cropped and normalised by its preprocessor
    """

    backbone_cls = ResNeXtBackbone
    preprocessor_cls = ResNeXtImageClassifierPreprocessor
    presets = registry_presets.RegistryPresets()

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A classifier from a preset folder, an `hf://` / `kaggle://` handle, or a registry tag.

        From a registry tag it has the checkpoint's ImageNet head and the tag's eval
        preprocessing; with `num_classes=` it gets a new head instead (keras-hub's rule:
        no task weights are loaded when `num_classes` is given).
        """
        preset = registry_presets.check_preset(preset)
        if registry_presets.is_registry_preset(preset):
            load_task_weights = "num_classes" not in kwargs
            return registry_presets.RegistryPreset(preset).load_task(cls, load_weights, load_task_weights, **kwargs)
        return super().from_preset(preset, load_weights=load_weights, **kwargs)

    def save_to_preset(self, preset_dir, max_shard_size=10):
        """keras-hub's preset folder (task, backbone, preprocessing), written atomically."""
        save_preset_atomically(super().save_to_preset, preset_dir, max_shard_size=max_shard_size)

"""keras-hub integration: `ResNeXtBackbone`, a `FeaturePyramidBackbone` that keras-hub's tasks accept.

    pip install "keras-resnext[hub]"

    backbone = ResNeXtBackbone.from_preset("resnext50_32x4d.tv2_in1k")
    classifier = keras_hub.models.ImageClassifier(backbone=backbone, num_classes=10)
    detector = keras_hub.models.RetinaNetObjectDetector(
        backbone=keras_hub.models.RetinaNetBackbone(image_encoder=backbone, min_level=3, max_level=7,
                                                    use_p5=False),
        num_classes=20,
    )

The backbone is the same trunk as `keras_resnext.ResNeXt` (same layers, names and
weights); its `get_config()` is its hyperparameters, as keras-hub's backbones' are.
Presets are this package's registry tags, downloaded, verified and converted by
the same code as `weights=`.
"""

import keras
from keras_hub.models import FeaturePyramidBackbone

from keras_resnext import config, models
from keras_resnext import weights as weights_lib


@keras.saving.register_keras_serializable(package="keras_resnext")
class ResNeXtBackbone(FeaturePyramidBackbone):
    """ResNeXt as a keras-hub backbone: the stem and stages, `pyramid_outputs` "P1".."P5".

    Args:
        depths, cardinality, bottleneck_width, stem, output_stride, block_form,
            conv_implementation, norm: as in `keras_resnext.ResNeXt`.
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

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """A backbone from this package's registry: `"resnext50_32x4d.tv2_in1k"`, or a variant for its default tag.

        Extra keyword arguments (`output_stride`, `norm`, `image_shape`, ...) go to the constructor.
        """
        variant, _, tag = str(preset).partition(".")
        if variant not in config.VARIANTS:
            raise ValueError(
                f"Unknown preset {preset!r}; presets are '<variant>.<tag>' of keras_resnext.weights.list_weights(), "
                f"e.g. 'resnext50_32x4d.tv2_in1k', with variants {', '.join(config.VARIANTS)}."
            )
        backbone = cls(**config.VARIANTS[variant], **kwargs)
        if load_weights:
            weights_lib.load_weights(backbone, tag or "imagenet", variant=variant)
        return backbone

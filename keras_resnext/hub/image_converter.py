"""`ResNeXtImageConverter`: keras-hub's image converter with torchvision's eval crop.

torchvision and timm evaluate by resizing the shorter side to `floor(size / crop_pct)`,
cropping the central `size` x `size` and normalising. keras-hub's `ImageConverter`
resizes (taking the central square first) and rescales, but cannot crop a fraction:
with `crop_pct < 1` the resize is `keras_resnext.evaluation_crop.EvaluationCrop`, the one
crop `keras_resnext.weights.eval_transform` and the data pipeline run, so a registry tag's
converter does exactly what they do. With `crop_pct=1` it is keras-hub's converter.
"""

import math

import keras
from keras_hub.layers import ImageConverter

from keras_resnext.evaluation_crop import EvaluationCrop
from keras_resnext.hub import registry_presets
from keras_resnext.hub.backbone import ResNeXtBackbone


def resize_size(image_size, crop_pct):
    """The size torchvision resizes a square image to before its center crop: `floor(side / crop_pct)` per side."""
    return tuple(math.floor(side / crop_pct) for side in image_size)


@keras.saving.register_keras_serializable(package="keras_resnext")
class ResNeXtImageConverter(ImageConverter):
    """Resizes, center-crops and normalises raw images for a ResNeXt.

    Args:
        image_size: `(height, width)` of the output, or None to keep the input's size;
            with `crop_pct < 1` a square (torchvision's crop is).
        crop_pct: the fraction of the resized image the center crop keeps (timm's name):
            images are resized to `floor(image_size / crop_pct)`, then cropped to `image_size`.
        **kwargs: keras-hub's `ImageConverter` arguments (`scale`, `offset`, `interpolation`, ...).
    """

    backbone_cls = ResNeXtBackbone
    presets = registry_presets.RegistryPresets()

    def __init__(self, image_size=None, crop_pct=1.0, **kwargs):
        if not (isinstance(crop_pct, (int, float)) and 0 < crop_pct <= 1):
            raise ValueError(f"crop_pct must be a number in (0, 1], got {crop_pct!r}.")
        super().__init__(image_size=image_size, **kwargs)
        self.crop_pct = float(crop_pct)
        self.image_size = image_size

    @property
    def image_size(self):
        """The output `(height, width)`, settable as keras-hub's is."""
        if isinstance(getattr(self, "resizing", None), EvaluationCrop):
            return (self.resizing.size, self.resizing.size)
        return super().image_size

    @image_size.setter
    def image_size(self, value):
        if value is None or getattr(self, "crop_pct", 1.0) == 1:
            if isinstance(self.resizing, EvaluationCrop):
                self.resizing = keras.layers.Resizing(None, None, crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                                                      interpolation=self.interpolation, antialias=self.antialias,
                                                      dtype=self.dtype_policy)
            self.resizing.height, self.resizing.width = value or (None, None)
            return
        if value[0] != value[1]:
            raise ValueError(f"crop_pct < 1 crops a square, as torchvision's eval transform; image_size={value}.")
        self.resizing = EvaluationCrop(value[0], self.crop_pct, interpolation=self.interpolation,
                                       dtype=self.dtype_policy, name="evaluation_crop")

    def _call_python(self, inputs):
        if isinstance(inputs, dict) and isinstance(self.resizing, EvaluationCrop):
            raise ValueError(
                "ResNeXtImageConverter with crop_pct < 1 crops images only; for images with bounding "
                "boxes use crop_pct=1."
            )
        if hasattr(inputs, "dtype") and "float" not in keras.backend.standardize_dtype(inputs.dtype):
            # Keras' Resizing keeps an integer dtype, rounding each resized pixel: resize uint8 pictures
            # in float instead, as `eval_transform` and torchvision's tensor transforms do.
            inputs, _ = self._convert_types(inputs, 0.0, self.compute_dtype)
        return super()._call_python(inputs)

    def get_config(self):
        return {**super().get_config(), "crop_pct": self.crop_pct}

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """A converter from a preset folder, an `hf://` / `kaggle://` handle, or a registry tag's eval transform."""
        preset = registry_presets.check_preset(preset)
        if registry_presets.is_registry_preset(preset):
            return registry_presets.RegistryPreset(preset).load_image_converter(cls, **kwargs)
        return super().from_preset(preset, **kwargs)

"""The evaluation crop of torchvision and timm, written once: `EvaluationCrop`.

Pretrained ImageNet weights are evaluated by resizing the shorter side to
`floor(size / crop_pct)` with antialiasing (torchvision's `Resize(int)`: the longer side
to `int(new_short * long / short)`), then cropping the central `size` x `size`
(torchvision's `CenterCrop`: the offset rounded half to even). Parity with their published
accuracies rests on it, so the data pipeline's evaluation split
(`keras_resnext.data.load_dataset`), a pretrained model's `weights.eval_transform` and the
keras-hub image converter (`hub.ResNeXtImageConverter`) all run this one layer.

It is a Keras data layer: in a `tf.data` pipeline it computes with TensorFlow whatever the
backend, elsewhere with the backend's own ops.
"""

import math

import keras
from keras.src.layers.preprocessing.data_layer import DataLayer  # Keras' base for layers usable in tf.data


@keras.saving.register_keras_serializable(package="keras_resnext")
class EvaluationCrop(DataLayer):
    """Resizes the shorter side to `floor(size / crop_pct)` (antialiased), then center-crops `size` x `size`.

    Args:
        size: the output side.
        crop_pct: the fraction of the resized image the crop keeps (timm's name), in (0, 1].
        interpolation: `"bilinear"` (torchvision's) or `"bicubic"` (some timm weights').

    Input: `(H, W, C)` or `(B, H, W, C)` images of any size, values as they are ([0, 255]).
    Output: float, `(size, size, C)` or `(B, size, size, C)`.
    """

    def __init__(self, size, crop_pct=0.875, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(crop_pct, (int, float)) and 0 < crop_pct <= 1):
            raise ValueError(f"crop_pct must be a number in (0, 1], got {crop_pct!r}.")
        self.size, self.crop_pct, self.interpolation = int(size), float(crop_pct), interpolation
        self.resize_to = math.floor(self.size / self.crop_pct)

    def call(self, images):
        shape = self.backend.shape(images)
        height, width = shape[-3], shape[-2]
        if isinstance(height, int) and isinstance(width, int):  # known sizes: Python's arithmetic
            new_height, new_width = self._resized(height, width, lambda c, a, b: a if c else b)
            top, left = (int(round((side - self.size) / 2)) for side in (new_height, new_width))
        else:  # a tf.data pipeline's images: tensors, the same integer arithmetic
            np = self.backend.numpy
            new_height, new_width = self._resized(height, width, np.where)
            top, left = (self.backend.cast(np.round((side - self.size) / 2), "int32") for side in (new_height,
                                                                                                   new_width))
        images = self.backend.image.resize(images, (new_height, new_width), interpolation=self.interpolation,
                                           antialias=True)
        return images[..., top:top + self.size, left:left + self.size, :]

    def _resized(self, height, width, where):
        """torchvision's resized `(height, width)`: the shorter side `resize_to`, the longer in proportion (floor)."""
        taller = height > width
        return (where(taller, self.resize_to * height // width, self.resize_to),
                where(taller, self.resize_to, self.resize_to * width // height))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.size, self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "crop_pct": self.crop_pct,
                "interpolation": self.interpolation}

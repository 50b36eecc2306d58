"""The paper's colour augmentation on the device: a Keras layer that acts in training only.

fb.resnet.torch's ColorJitter and Lighting (`keras_resnext.augment`) cost the host more
than decoding the JPEG: per-pixel work after the crop. `PaperColorAugmentation` does the
same on the batch once it has crossed to the accelerator, as NVIDIA's DALI and Keras'
preprocessing layers place such work, so the host pipeline runs at crop-and-flip speed.
Each image draws its own factors, order and lighting, as on the host; the maps are
composed by `augment.color_maps`, the same code the host pipeline runs. It follows the
reference in float32 and does not round or clip (the host's uint8 pipeline rounds and
clips, for its uint8 batches).

`with_color_on_device(net)` is the model `fit` trains when `train` puts the colour on the
device: the layer, then `net`, sharing `net`'s layers. `net` itself stays as it was, so
what a run saves and evaluates has no augmentation in it.
"""

import keras
import numpy as np

from keras_resnext.augment import color_maps, lighting_shifts


@keras.saving.register_keras_serializable(package="keras_resnext")
class PaperColorAugmentation(keras.layers.Layer):
    """ColorJitter (brightness, contrast, saturation, 0.4 each, in random order), then Lighting (PCA noise,
    alphastd 0.1), per image of a batch of RGB pixels in [0, 255]; the identity outside training.

    Args:
        brightness, contrast, saturation: the jitter's strengths, fb.resnet.torch's 0.4.
        alphastd: the lighting's standard deviation, fb.resnet.torch's 0.1.
        seed: the seed of the layer's random draws (None: drawn from Keras' global seed).

    Input: `(batch, height, width, 3)`, uint8 or float. Output: float32, the same shape.
    """

    def __init__(self, brightness=0.4, contrast=0.4, saturation=0.4, alphastd=0.1, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # pixels in [0, 255]: bfloat16 would round them to 1-2 levels
        super().__init__(**kwargs)
        self.strengths, self.alphastd, self.seed = (brightness, contrast, saturation), alphastd, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        images = keras.ops.cast(images, self.compute_dtype)
        if not training:
            return images
        return jitter_and_light(images, *self.draws(keras.ops.shape(images)[0]))

    def draws(self, batch):
        """`(factors, order, alpha)` for `batch` images: `1 + U(-s, s)` per strength, a uniformly random order
        (one-hot, `(batch, 3, 3)`), and `N(0, alphastd)` three times."""
        uniform = keras.random.uniform((batch, 3), -1.0, 1.0, seed=self.seed_generator)
        factors = 1.0 + uniform * np.asarray(self.strengths, "float32")
        order = keras.ops.one_hot(keras.ops.argsort(keras.random.uniform((batch, 3), seed=self.seed_generator)), 3)
        return factors, order, keras.random.normal((batch, 3), stddev=self.alphastd, seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        brightness, contrast, saturation = self.strengths
        return {**super().get_config(), "brightness": brightness, "contrast": contrast, "saturation": saturation,
                "alphastd": self.alphastd, "seed": self.seed}


def jitter_and_light(images, factors, order, alpha):
    """fb.resnet.torch's ColorJitter then Lighting of a float batch `(B, H, W, 3)` in [0, 255], for the draws given
    (see `PaperColorAugmentation.draws`), in one pass over the pixels."""
    matrix, offset = color_maps(keras.ops.mean(images, axis=(1, 2)), factors, order, lighting_shifts(alpha))
    return keras.ops.einsum("bhwc,bcd->bhwd", images, matrix) + offset[:, None, None, :]


def with_color_on_device(net, seed=None):
    """A model that trains `net` with `PaperColorAugmentation` in front of it (`net`'s layers, shared)."""
    inputs = keras.Input(shape=net.input_shape[1:], name="pixels")
    return keras.Model(inputs, net(PaperColorAugmentation(seed=seed, name="paper_color")(inputs)),
                       name=f"{net.name}_color_on_device")

"""ResNeXt models: one configurable builder and the named variants as small config entries."""

import os

import keras

from keras_resnext.layers import BN_EPSILON, BN_MOMENTUM, CONV_INITIALIZER, ResNeXtBlock

STEMS = ("imagenet", "cifar")
POOLINGS = (None, "avg", "max")

# Each named model is a config; `ResNeXt` builds any of them (timm's pattern).
VARIANTS = {
    "resnext50_32x4d": dict(depths=(3, 4, 6, 3), cardinality=32, bottleneck_width=4),
    "resnext101_32x4d": dict(depths=(3, 4, 23, 3), cardinality=32, bottleneck_width=4),
    "resnext101_32x8d": dict(depths=(3, 4, 23, 3), cardinality=32, bottleneck_width=8),
    "resnext101_64x4d": dict(depths=(3, 4, 23, 3), cardinality=64, bottleneck_width=4),
    "resnext101_32x16d": dict(depths=(3, 4, 23, 3), cardinality=32, bottleneck_width=16),
    "resnext101_32x32d": dict(depths=(3, 4, 23, 3), cardinality=32, bottleneck_width=32),
    "resnext29_8x64d": dict(depths=(3, 3, 3), cardinality=8, bottleneck_width=64, stem="cifar"),
    "resnext29_16x64d": dict(depths=(3, 3, 3), cardinality=16, bottleneck_width=64, stem="cifar"),
}


def variant_of(depths, cardinality, bottleneck_width, stem="imagenet"):
    """The name of the named variant with this configuration, or None."""
    for name, config in VARIANTS.items():
        if (
            tuple(config["depths"]) == tuple(depths)
            and config["cardinality"] == cardinality
            and config["bottleneck_width"] == bottleneck_width
            and config.get("stem", "imagenet") == stem
        ):
            return name
    return None


def block_plan(depths, cardinality, bottleneck_width, stem_channels=64):
    """Every bottleneck block of a configuration, in order: the one description of the layout.

    Yields `(stage, block, in_channels, width, filters, strides, projection)`, 1-indexed.
    Stage `s` has `planes = 64 * 2**(s-1)`: a bottleneck of
    `int(planes * bottleneck_width / 64) * cardinality` channels and `4 * planes`
    outputs (torchvision's rule; cardinality 1 and width 64 is ResNet-50). The first
    block of every stage after the first has stride 2; a block whose shape changes
    has a projection shortcut. The builder and `keras_resnext.flops` all read this.
    """
    in_channels = stem_channels
    for s, depth in enumerate(depths, start=1):
        planes = 64 * 2 ** (s - 1)
        width, filters = int(planes * bottleneck_width / 64) * cardinality, 4 * planes
        for b in range(1, depth + 1):
            strides = 2 if (b == 1 and s > 1) else 1
            yield s, b, in_channels, width, filters, strides, strides != 1 or in_channels != filters
            in_channels = filters


def ResNeXt(
    depths,
    cardinality,
    bottleneck_width,
    *,
    stem="imagenet",
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    block_form="grouped",
    conv_implementation="auto",
):
    """Instantiates a ResNeXt (Xie et al., 2017) of any depth, cardinality and width.

    Args:
        depths: blocks per stage, e.g. `(3, 4, 6, 3)` for ResNeXt-50.
        cardinality: C, the number of groups of every 3x3 conv.
        bottleneck_width: d, the width of one group in the first stage (4 in 32x4d).
        stem: `"imagenet"` (7x7/2 conv and 3x3/2 max pool, stages strided
            1, 2, 2, ...) or `"cifar"` (3x3 conv, no pool, for 32x32 inputs).
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: as in `keras.applications.ResNet50`.
            `weights` is `None`, `"imagenet"` (for a configuration that has
            pretrained weights), a tag of `keras_resnext.weights.list_weights()`,
            or a path to a Keras `.weights.h5` file or a torchvision/timm
            checkpoint (`.safetensors`, `.pth`, `.bin`).
        block_form: `"grouped"`, `"concat"` or `"split"`, see `ResNeXtBlock`.
        conv_implementation: how grouped convs are computed, see `GroupedConv2D`.

    Returns:
        A `keras.Model`.
    """
    from keras_resnext import weights as weights_lib

    depths = tuple(depths)
    if not depths or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in depths):
        raise ValueError(f"`depths` must be positive block counts per stage; received depths={depths}.")
    for arg, value in (("cardinality", cardinality), ("bottleneck_width", bottleneck_width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{arg}` must be a positive integer; received {arg}={value!r}.")
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {STEMS}; received stem={stem!r}.")
    if pooling not in POOLINGS:
        raise ValueError(
            f"`pooling` must be one of {POOLINGS}; received pooling={pooling!r}."
        )
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras_resnext models are built channels_last; the Keras image data "
            f"format is {keras.config.image_data_format()!r}. Call "
            "keras.config.set_image_data_format('channels_last') first."
        )
    variant = variant_of(depths, cardinality, bottleneck_width, stem)
    pretrained = weights_lib.is_pretrained(variant, weights)
    if not (weights is None or pretrained or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), "
            "'imagenet' (pre-training on ImageNet), a pretrained tag of this model "
            f"({', '.join(weights_lib.tags_for(variant)) or 'none'}), or the path to "
            f"the weights file to be loaded. Received: weights={weights}"
        )
    if pretrained and include_top and classes != 1000:
        raise ValueError(
            "If using pretrained `weights` with `include_top=True`, `classes` should "
            f"be 1000. Received classes={classes}"
        )
    if pretrained and include_top:
        activation = keras.activations.get(classifier_activation)
        if activation not in (keras.activations.get("softmax"), keras.activations.get(None)):
            raise ValueError(
                "Only `None` and `softmax` activations are allowed for the "
                "`classifier_activation` argument when using pretrained weights, "
                f"with `include_top=True`; Received: classifier_activation={classifier_activation}"
            )

    default_size = 224 if stem == "imagenet" else 32
    input_shape = _obtain_input_shape(input_shape, default_size, include_top, pretrained)
    if input_tensor is None:
        img_input = keras.layers.Input(shape=input_shape)
    elif not keras.backend.is_keras_tensor(input_tensor):
        img_input = keras.layers.Input(tensor=input_tensor, shape=input_shape)
    else:
        img_input = input_tensor

    x = _stem(img_input, stem)
    for s, b, _, width, filters, strides, projection in block_plan(depths, cardinality, bottleneck_width):
        x = ResNeXtBlock(
            filters,
            width,
            cardinality,
            strides=strides,
            projection=projection,
            form=block_form,
            conv_implementation=conv_implementation,
            name=f"stage{s}_block{b}",
        )(x)

    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(
            classes, activation=classifier_activation, name="predictions",
            dtype=head_dtype(),
        )(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        inputs = img_input
    name = name or variant or f"resnext_{sum(depths) * 3 + 2}_{cardinality}x{bottleneck_width}d"
    model = keras.Model(inputs, x, name=name)

    if weights is not None:
        weights_lib.load_weights(model, weights, variant=variant)
    return model


def _stem(x, stem):
    def batch_norm(name):
        return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)

    if stem == "cifar":
        x = keras.layers.ZeroPadding2D(1, name="stem_pad")(x)
        x = keras.layers.Conv2D(64, 3, use_bias=False, kernel_initializer=CONV_INITIALIZER, name="stem_conv")(x)
        x = batch_norm("stem_bn")(x)
        return keras.layers.Activation("relu", name="stem_relu")(x)
    # PyTorch pads the stride-2 stem conv and pool symmetrically; Keras "same" would not.
    x = keras.layers.ZeroPadding2D(3, name="stem_pad")(x)
    x = keras.layers.Conv2D(
        64, 7, strides=2, use_bias=False, kernel_initializer=CONV_INITIALIZER, name="stem_conv"
    )(x)
    x = batch_norm("stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU, >= 0.
    x = keras.layers.ZeroPadding2D(1, name="pool_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name="pool")(x)


def head_dtype():
    """The classifier's dtype: float32 under mixed precision (stable softmax and loss), else the policy's."""
    return "float32" if keras.config.dtype_policy().name.startswith("mixed") else None


def _obtain_input_shape(input_shape, default_size, include_top, pretrained, min_size=32):
    """keras.applications' input-shape rules and messages, channels_last."""
    default_shape = (default_size, default_size, 3)
    if pretrained and include_top:
        if input_shape is not None and tuple(input_shape) != default_shape:
            raise ValueError(
                "When setting `include_top=True` and loading pretrained weights, "
                f"`input_shape` should be {default_shape}.  Received: input_shape={input_shape}"
            )
        return default_shape
    if input_shape is None:
        return default_shape if include_top else (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be a tuple of three integers; received input_shape={input_shape}."
        )
    if input_shape[-1] != 3 and pretrained:
        raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
    if input_shape[-1] is None or input_shape[-1] < 1:
        raise ValueError(f"The channel count must be known; Received `input_shape={input_shape}`")
    if any(side is not None and side < min_size for side in input_shape[:2]):
        raise ValueError(
            f"Input size must be at least {min_size}x{min_size}; Received: input_shape={input_shape}"
        )
    return input_shape


def _named(variant, doc_name):
    config = VARIANTS[variant]
    cifar = config.get("stem") == "cifar"

    def constructor(
        include_top=True,
        weights=None if cifar else "imagenet",
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=10 if cifar else 1000,
        classifier_activation="softmax",
        name=variant,
    ):
        return ResNeXt(
            **config,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
        )

    depth = sum(config["depths"]) * 3 + 2
    c, d = config["cardinality"], config["bottleneck_width"]
    constructor.__name__ = constructor.__qualname__ = doc_name
    constructor.variant = variant
    if cifar:
        data = (
            "the paper's CIFAR model: 3x3 stem, three stages, 32x32 inputs. There are "
            "no ImageNet weights, so `weights` defaults to `None` and `classes` to 10."
        )
    else:
        data = (
            "torchvision/timm layout (stride on the 3x3 conv, projection shortcut in each "
            "stage's first block). `weights` takes `None`, `'imagenet'`, a tag from "
            "`keras_resnext.weights.list_weights()` or a file path. The `fb_*` tags "
            "(Facebook's SSL/SWSL/WSL weights) are CC-BY-NC-4.0: non-commercial use only."
        )
    constructor.__doc__ = (
        f"Instantiates ResNeXt-{depth} ({c}x{d}d): cardinality {c}, bottleneck width {d}.\n\n"
        f"{data}\n\nArguments and errors are those of `keras.applications.ResNet50`; "
        "see `keras_resnext.ResNeXt` for their meaning.\n\nReturns:\n    A `keras.Model`.\n"
    )
    return constructor


ResNeXt50 = _named("resnext50_32x4d", "ResNeXt50")
ResNeXt101 = _named("resnext101_32x4d", "ResNeXt101")
ResNeXt101_32x8d = _named("resnext101_32x8d", "ResNeXt101_32x8d")
ResNeXt101_64x4d = _named("resnext101_64x4d", "ResNeXt101_64x4d")
ResNeXt101_32x16d = _named("resnext101_32x16d", "ResNeXt101_32x16d")
ResNeXt101_32x32d = _named("resnext101_32x32d", "ResNeXt101_32x32d")
ResNeXt29_8x64d = _named("resnext29_8x64d", "ResNeXt29_8x64d")
ResNeXt29_16x64d = _named("resnext29_16x64d", "ResNeXt29_16x64d")

# Constructors by name, both "ResNeXt50" and "resnext50_32x4d".
CONSTRUCTORS = {
    key: f
    for f in (
        ResNeXt50, ResNeXt101, ResNeXt101_32x8d, ResNeXt101_64x4d,
        ResNeXt101_32x16d, ResNeXt101_32x32d, ResNeXt29_8x64d, ResNeXt29_16x64d,
    )
    for key in (f.__name__, f.variant)
}

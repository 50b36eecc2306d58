"""Exact multiply-accumulate (MAC) counts, the convention of the paper, pycls and torchvision.

Convolutions and dense layers are counted: one MAC per weight use, and one per
output element for a bias. BatchNorm, ReLU, pooling and additions are not. A
grouped conv costs `H_out * W_out * C_out * (k * k * C_in / groups + bias)`. With
this convention ResNeXt-50 at 224x224 is 4,230,480,872 MACs and ResNet-50
4,089,185,256, the published reference figures.
"""

import keras

from keras_resnext.config import STEM_CHANNELS, STEM_GEOMETRY, block_plan, check_stem, conv_output_size
from keras_resnext.layers import GroupedConv2D, ResNeXtBlock


def _conv_macs(out_hw, out_channels, kernel_size, in_channels, groups=1, use_bias=False):
    per_output = kernel_size[0] * kernel_size[1] * in_channels // groups + int(use_bias)
    return out_hw[0] * out_hw[1] * out_channels * per_output


def layer_macs(layer, input_shape):
    """MACs of one layer (a block: all its convs) for one input of `input_shape` (batch 1)."""
    if isinstance(layer, ResNeXtBlock):
        return _block_macs(layer, input_shape)
    if isinstance(layer, GroupedConv2D):
        out = layer.compute_output_shape(input_shape)
        k = layer.kernel_size
        return _conv_macs(out[1:3], layer.filters, (k, k), input_shape[-1], layer.groups, layer.use_bias)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        out = layer.compute_output_shape(input_shape)
        return _conv_macs(out[1:3], out[-1], layer.kernel_size, 1, use_bias=layer.use_bias)
    if isinstance(layer, keras.layers.Conv2D):
        out = layer.compute_output_shape(input_shape)
        return _conv_macs(
            out[1:3], layer.filters, layer.kernel_size, input_shape[-1], layer.groups, layer.use_bias
        )
    if isinstance(layer, keras.layers.Dense):
        rows = 1
        for d in input_shape[1:-1]:
            rows *= d
        return rows * (input_shape[-1] + int(layer.use_bias)) * layer.units
    if isinstance(layer, keras.Model):
        return count_macs(layer)
    return 0


def _block_macs(block, input_shape):
    mid = (*input_shape[:-1], block.width)
    total = layer_macs(block.conv1, input_shape) + layer_macs(block.conv2, mid)
    total += layer_macs(block.conv3, block.conv2.compute_output_shape(mid))
    if block.downsample_conv is not None:
        total += layer_macs(block.downsample_conv, input_shape)
    return total


def count_macs(model):
    """Multiply-adds of one image through a built functional `model`.

    The model's spatial input size must be known (e.g. `input_shape=(224, 224, 3)`).
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shapes = [t.shape for t in keras.tree.flatten(layer.input)]
        if len(shapes) != 1:
            continue  # merge layers (Add, Concatenate) do no multiplications
        shape = (1, *shapes[0][1:])
        if any(d is None for d in shape):
            raise ValueError(
                f"count_macs needs a fixed input size, but layer {layer.name!r} sees {shapes[0]}; "
                "build the model with e.g. input_shape=(224, 224, 3)."
            )
        total += layer_macs(layer, shape)
    return total


def _stem_macs(stem, input_size, in_channels):
    """MACs of the stem conv and the side it leaves for the first stage (after the pool)."""
    kernel, stride, pad = STEM_GEOMETRY[check_stem(stem)]["conv"]
    size = conv_output_size(input_size, kernel, stride, pad)
    macs = size * size * STEM_CHANNELS * kernel * kernel * in_channels
    if STEM_GEOMETRY[stem]["pool"]:
        size = conv_output_size(size, *STEM_GEOMETRY[stem]["pool"])
    return macs, size


def count_macs_config(
    depths,
    cardinality,
    bottleneck_width,
    *,
    stem="imagenet",
    input_size=224,
    classes=1000,
    include_top=True,
    in_channels=3,
    output_stride=32,
):
    """`count_macs` of `ResNeXt(depths, cardinality, bottleneck_width, ...)`, without building it.

    Fast enough to evaluate thousands of candidate configurations.
    """
    macs, size = _stem_macs(stem, input_size, in_channels)
    channels = STEM_CHANNELS
    for block in block_plan(depths, cardinality, bottleneck_width, stem=stem, output_stride=output_stride):
        width, filters = block.width, block.filters
        out = conv_output_size(size, 3, block.strides, 1)  # a dilated 3x3 is padded by its dilation: same size
        macs += size * size * block.in_channels * width  # 1x1 reduce
        macs += out * out * width * 9 * width // cardinality  # grouped 3x3
        macs += out * out * width * filters  # 1x1 expand
        if block.projection:
            macs += out * out * block.in_channels * filters  # projection shortcut
        size, channels = out, filters
    if include_top:
        macs += (channels + 1) * classes  # the classifier, with its bias
    return macs


def count_params_config(depths, cardinality, bottleneck_width, *, stem="imagenet", classes=1000,
                        include_top=True, in_channels=3):
    """Trainable parameters of `ResNeXt(depths, cardinality, bottleneck_width, ...)`, unbuilt.

    BatchNorm's moving statistics are not trainable and not counted, as in
    torchvision's and timm's published parameter counts.
    """
    kernel = STEM_GEOMETRY[check_stem(stem)]["conv"][0]
    params = kernel * kernel * in_channels * STEM_CHANNELS + 2 * STEM_CHANNELS  # stem conv + BN
    channels = STEM_CHANNELS
    for block in block_plan(depths, cardinality, bottleneck_width, stem=stem):
        width, filters = block.width, block.filters
        params += block.in_channels * width + 9 * width * width // cardinality + width * filters
        params += 2 * (width + width + filters)  # three BatchNorms
        if block.projection:
            params += block.in_channels * filters + 2 * filters  # projection conv + BN
        channels = filters
    if include_top:
        params += (channels + 1) * classes
    return params

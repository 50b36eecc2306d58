"""Exact multiply-accumulate (MAC) counts, the convention of the paper, pycls and torchvision.

Convolutions and dense layers are counted: one MAC per weight use, and one per
output element for a bias. BatchNorm, ReLU, pooling and additions are not. A
grouped conv costs `H_out * W_out * C_out * (k * k * C_in / groups + bias)`. With
this convention ResNeXt-50 at 224x224 is 4,230,480,872 MACs and ResNet-50
4,089,185,256, the published reference figures.
"""

import keras

from keras_resnext.layers import GroupedConv2D, ResNeXtBlock
from keras_resnext.models import STEMS, block_plan


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


def _out(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


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
):
    """`count_macs` of `ResNeXt(depths, cardinality, bottleneck_width, ...)`, without building it.

    Fast enough to evaluate thousands of candidate configurations.
    """
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {STEMS}; received stem={stem!r}.")
    if stem == "imagenet":
        size = _out(input_size, 7, 2, 3)
        macs = size * size * 64 * 49 * in_channels
        size = _out(size, 3, 2, 1)
    else:
        size = input_size
        macs = size * size * 64 * 9 * in_channels
    channels = 64
    for _, _, channels, width, filters, stride, projection in block_plan(depths, cardinality, bottleneck_width):
        out = _out(size, 3, stride, 1)
        macs += size * size * channels * width  # 1x1 reduce
        macs += out * out * width * 9 * width // cardinality  # grouped 3x3
        macs += out * out * width * filters  # 1x1 expand
        if projection:
            macs += out * out * channels * filters  # projection shortcut
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
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {STEMS}; received stem={stem!r}.")
    kernel = 7 if stem == "imagenet" else 3
    params = kernel * kernel * in_channels * 64 + 2 * 64  # stem conv + BN
    channels = 64
    for _, _, channels, width, filters, _, projection in block_plan(depths, cardinality, bottleneck_width):
        params += channels * width + 9 * width * width // cardinality + width * filters
        params += 2 * (width + width + filters)  # three BatchNorms
        if projection:
            params += channels * filters + 2 * filters  # projection conv + BN
        channels = filters
    if include_top:
        params += (channels + 1) * classes
    return params

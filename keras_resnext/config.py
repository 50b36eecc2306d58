"""What a ResNeXt is, as data: variants, stems, the block layout and argument checks.

This module imports no Keras, so the builder (`models`), the layers, the unbuilt
counters (`flops`), the tuner and the weights registry all read one description
without importing each other. Names used throughout the package:

- `cardinality` (C): the number of groups of every 3x3 conv.
- `bottleneck_width` (d): the width of one group in the first stage (4 in 32x4d).
- `width`: the channels of a block's bottleneck, `C * d * 2**(stage - 1)`.
- `filters`: a block's output channels, `4 * planes`.
"""

import collections
import math
import numbers
import re

STEMS = ("imagenet", "cifar")
POOLINGS = (None, "avg", "max")
BLOCK_FORMS = ("grouped", "concat", "split")
OUTPUT_STRIDES = (8, 16, 32)
# "batch_norm": Keras' BatchNormalization. "frozen_bn": always its moving statistics, never
# updated, gamma and beta fixed (torchvision's FrozenBatchNorm2d, detectron2's FrozenBN).
NORMS = ("batch_norm", "frozen_bn")
TUNERS = ("random", "bayesian", "grid", "hyperband")
# The recipes' SGD (keras_resnext.training.sgd): the paper's step, or Keras' SGD with decoupled decay.
OPTIMIZERS = ("paper", "decoupled")
STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
RECIPES = ("paper", "torchvision")  # `train --recipe`: the paper's, or the one behind torchvision's v2 weights
# Small images: the paper's pad-and-crop, no colour augmentation (its CIFAR recipe has none), the data set's own side.
SMALL_IMAGE_DATASETS = ("digits", "cifar10", "cifar100")
COLOR_PLACES = ("auto", "host", "device")  # where the paper recipe's colour augmentation runs (`--color-augmentation`)
DATASETS = ("digits", "cifar10", "cifar100", "imagenet2012", "folder:<root>")

# Each named model is a config; `keras_resnext.ResNeXt` builds any of them (timm's pattern).
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

# torchvision's ResNet-50: the cost every ResNeXt-50 is compared with.
RESNET50 = dict(depths=(3, 4, 6, 3), cardinality=1, bottleneck_width=64)

STEM_CHANNELS = 64
# The stem as (kernel, stride, padding) convs and pools, PyTorch's geometry.
STEM_GEOMETRY = {
    "imagenet": dict(conv=(7, 2, 3), pool=(3, 2, 1), input_size=224),
    "cifar": dict(conv=(3, 1, 1), pool=None, input_size=32),
}

# What `inference_model` and the CLI's --precision accept ("auto": the fastest here).
INFERENCE_PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")  # "auto" never picks int8
INT8_ENGINES = ("auto", "litert", "openvino")  # "auto": devices.fastest_int8_engine()

# The names of the layers other modules look up (weights conversion, fine-tuning, export).
STEM_CONV = "stem_conv"
STEM_BN = "stem_bn"
STEM_RELU = "stem_relu"
CLASSIFIER = "predictions"
NONFINITE_GUARD = "propagate_nonfinite"
PREPROCESSING = "preprocessing"  # with include_preprocessing: the input's normalisation


_BLOCK_NAME = re.compile(r"stage(\d+)_block(\d+)")


def block_name(stage, block):
    """The layer name of block `block` of stage `stage` (both 1-indexed): `stage3_block6`."""
    return f"stage{stage}_block{block}"


def parse_block_name(name):
    """`(stage, block)` of a block's layer name (`stage3_block6` -> (3, 6)), or None for other layers."""
    match = _BLOCK_NAME.fullmatch(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def positive_int(name, value):
    """`value` as an int if it is a positive integer (NumPy integers included), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}.")
    return int(value)


def check_fraction(name, value, allow_zero=False):
    """`value` as a float if it is a fraction in (0, 1) (in [0, 1) with `allow_zero`), else a ValueError."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (number and (0 <= value if allow_zero else 0 < value) and value < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"`{name}` must be a fraction in {interval}; received {name}={value!r}.")
    return float(value)


def check_choice(name, value, choices):
    """`value` if it is one of `choices`, else a ValueError that lists them."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}; received {name}={value!r}.")
    return value


def check_stem(stem):
    return check_choice("stem", stem, STEMS)


def positive_ints(name, values, what):
    """`values` as a tuple of positive integers (at least one), else a ValueError that says they are `what`."""
    try:
        checked = tuple(positive_int(name, value) for value in values)
    except (TypeError, ValueError):
        checked = ()
    if not checked:
        raise ValueError(f"`{name}` must be {what}; received {name}={values!r}.")
    return checked


def check_depths(depths):
    return positive_ints("depths", depths, "positive block counts per stage")


def check_architecture(depths, cardinality, bottleneck_width, stem="imagenet"):
    """The checked `(depths, cardinality, bottleneck_width, stem)` of a ResNeXt."""
    return (
        check_depths(depths),
        positive_int("cardinality", cardinality),
        positive_int("bottleneck_width", bottleneck_width),
        check_stem(stem),
    )


def model_depth(depths):
    """Weighted layers of a ResNeXt: three convs a block, the stem conv and the classifier (50, 101)."""
    return sum(depths) * 3 + 2


def default_name(depths, cardinality, bottleneck_width, stem="imagenet"):
    """The variant's name (`resnext50_32x4d`), or `resnext_{depth}_{C}x{d}d` for other configurations."""
    return variant_of(depths, cardinality, bottleneck_width, stem) or (
        f"resnext_{model_depth(depths)}_{cardinality}x{bottleneck_width}d"
    )


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


def conv_output_size(size, kernel, stride, pad):
    """PyTorch's output side of a conv or pool with symmetric zero padding."""
    return (size + 2 * pad - kernel) // stride + 1


def stem_output_size(stem, input_size):
    """`(side after the stem conv, side after the stem's pool)` for a square input."""
    geometry = STEM_GEOMETRY[check_stem(stem)]
    conv = conv_output_size(input_size, *geometry["conv"])
    pool = conv_output_size(conv, *geometry["pool"]) if geometry["pool"] else conv
    return conv, pool


Block = collections.namedtuple(
    "Block", "stage block in_channels width filters strides dilation projection"
)


def block_plan(depths, cardinality, bottleneck_width, stem_channels=STEM_CHANNELS, *, stem="imagenet",
               output_stride=32):
    """Every bottleneck block of a configuration, in order: the one description of the layout.

    Yields `Block(stage, block, in_channels, width, filters, strides, dilation, projection)`,
    1-indexed. Stage `s` has `planes = 64 * 2**(s-1)`: a bottleneck of
    `int(planes * bottleneck_width / 64) * cardinality` channels (`width`) and
    `4 * planes` outputs (`filters`), torchvision's rule; cardinality 1 and
    bottleneck width 64 is ResNet-50. The first block of every stage after the
    first has stride 2; a block whose shape changes has a projection shortcut.

    `output_stride` (8, 16 or 32) caps the model's total stride: a stage that would
    exceed it dilates its 3x3 convs instead of striding, exactly as torchvision's
    `replace_stride_with_dilation` (the stage's first block keeps the previous
    dilation, the others use the new one). The builder and `keras_resnext.flops`
    all read this.
    """
    check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    in_channels, reduction, dilation = stem_channels, stem_reduction(stem), 1
    for s, depth in enumerate(depths, start=1):
        planes = 64 * 2 ** (s - 1)
        width, filters = int(planes * bottleneck_width / 64) * cardinality, 4 * planes
        stage_stride, first_dilation = (2 if s > 1 else 1), dilation
        if reduction * stage_stride > output_stride:
            dilation, stage_stride = dilation * stage_stride, 1
        reduction *= stage_stride
        for b in range(1, depth + 1):
            strides = stage_stride if b == 1 else 1
            block_dilation = first_dilation if b == 1 else dilation
            projection = strides != 1 or in_channels != filters
            yield Block(s, b, in_channels, width, filters, strides, block_dilation, projection)
            in_channels = filters


def stem_reduction(stem):
    """The stride of the stem's output: 4 for the ImageNet stem (conv and pool), 1 for CIFAR's."""
    geometry = STEM_GEOMETRY[check_stem(stem)]
    return geometry["conv"][1] * (geometry["pool"][1] if geometry["pool"] else 1)


def feature_levels(depths, stem="imagenet", output_stride=32):
    """The feature levels of a ResNeXt: `[(key, layer name, reduction), ...]`, shallowest first.

    Keys are keras-hub's: `"Pn"` is the level whose feature map is `2**n` times
    smaller than the input at output stride 32 (the ImageNet stem's ReLU is P1, its
    stages P2..P5). At output stride 8 or 16 the keys stay and `reduction` is the
    true stride. Where the stem's output and the first stage's share a level (the
    CIFAR stem: both stride 1), the stage's output is the level.
    """
    geometry = STEM_GEOMETRY[check_stem(stem)]
    conv_stride = geometry["conv"][1]
    levels = {int(math.log2(conv_stride)): (STEM_RELU, conv_stride)}
    nominal, true = stem_reduction(stem), stem_reduction(stem)
    for s, depth in enumerate(depths, start=1):
        if s > 1:
            nominal, true = nominal * 2, min(true * 2, output_stride)
        levels[int(math.log2(nominal))] = (block_name(s, depth), true)
    return [(f"P{level}", name, reduction) for level, (name, reduction) in sorted(levels.items())]


def check_out_indices(out_indices, levels):
    """The keys of the levels `out_indices` selects: indices into `levels` or keys such as "P3"."""
    keys = [key for key, _, _ in levels]
    if out_indices is None:
        return keys
    selected = []
    for index in out_indices:
        if isinstance(index, str) and index in keys:
            selected.append(index)
        elif isinstance(index, numbers.Integral) and not isinstance(index, bool) and -len(keys) <= index < len(keys):
            selected.append(keys[index])
        else:
            raise ValueError(
                f"`out_indices` entry {index!r} is not a level of this model; it has {len(keys)} levels, "
                f"indices 0 to {len(keys) - 1} or keys {', '.join(keys)}. Received out_indices={out_indices!r}."
            )
    if not selected or len(set(selected)) != len(selected):
        raise ValueError(
            f"`out_indices` must name each level at most once and at least one; received out_indices={out_indices!r}."
        )
    return sorted(selected, key=keys.index)


def check_freeze_stages(freeze_stages, depths):
    """`None` (nothing frozen) or 0..len(depths): the stem and stages 1..k are frozen."""
    if freeze_stages is None:
        return None
    if isinstance(freeze_stages, bool) or not isinstance(freeze_stages, numbers.Integral) or not (
        0 <= freeze_stages <= len(depths)
    ):
        raise ValueError(
            f"`freeze_stages` must be None (train everything) or 0 (the stem) to {len(depths)} (the stem and "
            f"every stage); received freeze_stages={freeze_stages!r}."
        )
    return int(freeze_stages)


def eval_split(dataset):
    """The split a data set is evaluated on: ImageNet's `validation`, everyone else's `test`."""
    return "validation" if dataset == "imagenet2012" else "test"

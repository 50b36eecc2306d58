"""ResNeXt models: one configurable builder, `ResNeXt`, and the named variants as constructors.

The architecture itself is data in `keras_resnext.config` (variants, stems, the
block layout); this module turns it into a functional `keras.Model` with the
rules and error messages of `keras.applications`.
"""

import functools
import math
import os

import keras

from keras_resnext import config
from keras_resnext import weights as weights_lib
from keras_resnext.config import POOLINGS, STEMS, VARIANTS, block_plan, variant_of  # noqa: F401 (re-exported)
from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD
from keras_resnext.layers import PixelNormalization, PropagateNonFinite, ResNeXtBlock, batch_norm, conv2d

MIN_INPUT_SIZE = 32


def ResNeXt(
    depths, cardinality, bottleneck_width, *, stem="imagenet",
    include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
    classifier_activation="softmax", name=None,
    block_form="grouped", conv_implementation="auto", output_stride=32,
    features_only=False, out_indices=None, freeze_stages=None, norm="batch_norm", include_preprocessing=False,
):
    """Instantiates a ResNeXt (Xie et al., 2017) of any depth, cardinality and width.

    Args:
        depths: blocks per stage, e.g. `(3, 4, 6, 3)` for ResNeXt-50.
        cardinality: C, the number of groups of every 3x3 conv.
        bottleneck_width: d, the width of one group in the first stage (4 in 32x4d).
        stem: `"imagenet"` (7x7/2 conv and 3x3/2 max pool, stages strided
            1, 2, 2, ...) or `"cifar"` (3x3 conv, no pool, for 32x32 inputs).
        include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation, name: as in
            `keras.applications.ResNet50`. `weights` is `None`, `"imagenet"` (for a configuration that has
            pretrained weights), a tag of `keras_resnext.weights.list_weights()`,
            or a path to a Keras `.weights.h5` file or a torchvision/timm
            checkpoint (`.safetensors`, `.pth`, `.bin`). With pretrained weights
            and `input_shape=(H, W, n)`, n != 3, the stem kernel is adapted as
            timm does (1 channel: the sum over RGB; else RGB repeated, times 3/n).
        block_form: `"grouped"`, `"concat"` or `"split"`, see `ResNeXtBlock`.
        conv_implementation: how grouped convs are computed, see `GroupedConv2D`.
        output_stride: 32, or 16 / 8 for dense prediction: the last stages
            dilate instead of striding (torchvision's `replace_stride_with_dilation`),
            with the same weights.
        features_only: return a model whose outputs are the feature levels
            (a dict keyed `"P1"`..`"P5"`), with no head (timm's `features_only`).
        out_indices: with `features_only`, the levels to output: indices into
            `model.feature_info` or keys such as `"P3"`; default all.
        freeze_stages: `None`, or k: the stem and stages 1..k are not trained
            (their BatchNorms then use their moving statistics).
        norm: `"batch_norm"`, or `"frozen_bn"`: every BatchNorm always uses its
            moving statistics and never updates them, even in `fit`.
        include_preprocessing: whether the model takes raw RGB pixels in [0, 255]
            (uint8 or float) and normalises them itself, first thing on its device,
            as `keras_resnext.preprocess_input` does (keras.applications' ConvNeXt,
            EfficientNetV2 and RegNet convention). `True` normalises with ImageNet's
            mean and std, those of every pretrained weight here; a `(mean, std)` pair
            of per-channel values in [0, 1] with those (e.g. CIFAR's). The layer,
            `preprocessing`, has no weights and computes in float32.

    Returns:
        A `ResNeXtModel`: a functional `keras.Model` with `pyramid_outputs` (the
        feature levels as symbolic tensors, keras-hub's form) and `feature_info`
        (timm's form). Loaded with pretrained weights, it carries their registry
        entry as `model.pretrained_cfg`, which `keras_resnext.weights.eval_transform(model)` reads.

    Example:

    >>> import keras_resnext as kr
    >>> model = kr.ResNeXt((1, 1, 1), cardinality=8, bottleneck_width=4, classes=10,
    ...                    input_shape=(32, 32, 3))
    >>> model.name, model.output.shape
    ('resnext_11_8x4d', (None, 10))
    >>> sorted(model.pyramid_outputs)
    ['P1', 'P2', 'P3', 'P4']
    """
    arguments = dict(locals())  # as given: what the model records of itself (`ResNeXtModel.architecture`)
    depths, cardinality, bottleneck_width, stem = config.check_architecture(depths, cardinality, bottleneck_width, stem)
    config.check_choice("pooling", pooling, POOLINGS)
    config.check_choice("block_form", block_form, config.BLOCK_FORMS)  # named as the caller passed it
    config.check_choice("output_stride", output_stride, config.OUTPUT_STRIDES)
    freeze_stages = config.check_freeze_stages(freeze_stages, depths)
    selected = _selected_levels(features_only, out_indices, depths, stem, output_stride)
    include_top = include_top and not features_only
    _check_data_format()
    variant = variant_of(depths, cardinality, bottleneck_width, stem)
    pretrained = weights_lib.is_pretrained(variant, weights)
    _check_weights_argument(variant, weights, pretrained, include_top, classes, classifier_activation)

    input_size = config.STEM_GEOMETRY[stem]["input_size"]
    image = _image_input(input_tensor, obtain_input_shape(input_shape, input_size, include_top, pretrained))
    normalise = preprocessing_layer(include_preprocessing, image.shape[-1])
    x = trunk(normalise(image) if normalise else image, depths, cardinality, bottleneck_width, stem=stem,
              output_stride=output_stride, block_form=block_form, conv_implementation=conv_implementation, norm=norm)
    x = _head(x, image, include_top, None if features_only else pooling, classes, classifier_activation)
    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else image
    name = name or config.default_name(depths, cardinality, bottleneck_width, stem)
    model = ResNeXtModel(inputs, x, name=name)
    model.record_architecture(**_architecture(arguments, depths, image))
    if weights is not None:
        weights_lib.load_weights(model, weights, variant=variant)
    if selected is not None:
        model = _features_model(model, selected)
    if freeze_stages is not None:
        freeze(model, freeze_stages)
    return model


def _architecture(arguments, depths, image):
    """What a model built by `ResNeXt(**arguments)` records of them (`ResNeXtModel.architecture`): the arguments
    that define it, as a config holds them (no weights, input tensor or name; the input's shape as built)."""
    recorded = {k: v for k, v in arguments.items() if k not in ("weights", "input_tensor", "name")}
    activation, preprocessing = arguments["classifier_activation"], arguments["include_preprocessing"]
    out_indices = arguments["out_indices"]
    return dict(recorded, depths=list(depths), input_shape=list(image.shape[1:]),
                out_indices=None if out_indices is None else list(out_indices),
                classifier_activation=activation if activation is None or isinstance(activation, str)
                else keras.activations.serialize(activation),
                include_preprocessing=preprocessing if isinstance(preprocessing, bool)
                else [list(v) for v in preprocessing])


def preprocessing_layer(include_preprocessing, channels=3):
    """The layer normalising raw [0, 255] pixels that `include_preprocessing` asks for, or None (False)."""
    if include_preprocessing is False or include_preprocessing is None:
        return None
    if include_preprocessing is True:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        try:
            mean, std = (tuple(float(v) for v in values) for values in include_preprocessing)
        except (TypeError, ValueError):
            mean = std = ()
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0 or channels != 3:
        raise ValueError("`include_preprocessing` must be True, False or a (mean, std) pair of three per-channel "
                         f"values in [0, 1], std positive, for RGB inputs; received {include_preprocessing!r} "
                         f"for {channels} channels.")
    return PixelNormalization(mean, std, name=config.PREPROCESSING, dtype=head_dtype())  # float32, as the head


def includes_preprocessing(model):
    """Whether `model` takes raw [0, 255] pixels and normalises them itself (`include_preprocessing`)."""
    return any(layer.name == config.PREPROCESSING for layer in model.layers)


def _selected_levels(features_only, out_indices, depths, stem, output_stride):
    """The level keys a `features_only` model outputs, or None for a full model."""
    if not features_only:
        if out_indices is not None:
            raise ValueError(f"`out_indices` needs features_only=True; received out_indices={out_indices!r}.")
        return None
    return config.check_out_indices(out_indices, config.feature_levels(depths, stem, output_stride))


def _features_model(model, keys):
    """`model`'s feature levels `keys` as the outputs of a model of the same layers and weights."""
    levels, guard = model.pyramid_outputs, model.get_layer(config.NONFINITE_GUARD)
    image = guard.input[1]
    features = ResNeXtModel(model.inputs, {key: guard([levels[key], image]) for key in keys}, name=model.name)
    if model.architecture:
        features.record_architecture(**model.architecture)
    if hasattr(model, "pretrained_cfg"):
        object.__setattr__(features, "pretrained_cfg", model.pretrained_cfg)
    return features


def trunk(x, depths, cardinality, bottleneck_width, *, stem="imagenet", output_stride=32, block_form="grouped",
          conv_implementation="auto", norm="batch_norm", dtype=None):
    """The stem and every stage of a ResNeXt applied to `x`; the last stage's output.

    `dtype` is the layers' dtype policy (None: the global one).
    """
    x = _stem(x, stem, norm, dtype)
    for block in block_plan(depths, cardinality, bottleneck_width, stem=stem, output_stride=output_stride):
        x = ResNeXtBlock(
            block.filters, block.width, cardinality, strides=block.strides, projection=block.projection,
            form=block_form, conv_implementation=conv_implementation, dilation=block.dilation, norm=norm,
            name=config.block_name(block.stage, block.block), dtype=dtype,
        )(x)
    return x


def freeze(model, stages=None, frozen=True):
    """Stops training (or, `frozen=False`, trains again) the stem and stages 1..`stages` of `model`
    (detectron2's FREEZE_AT idea), or with `stages=None` every layer but the classifier (a backbone under a
    new head). The one way the package freezes layers.

    Frozen layers keep their weights, and their BatchNorms use the moving
    statistics, also in `fit` (Keras' rule for `trainable=False`). Recompile after it.
    """
    for layer in model.layers:
        stage = config.parse_block_name(layer.name)
        if (layer.name != config.CLASSIFIER if stages is None
                else layer.name in (config.STEM_CONV, config.STEM_BN) or (stage and stage[0] <= stages)):
            layer.trainable = not frozen
    return model


@keras.saving.register_keras_serializable(package="keras_resnext")
class ResNeXtModel(keras.Model):
    """A functional ResNeXt that knows its feature levels; what `ResNeXt` and the named constructors return.

    It is a plain functional model (built with `ResNeXtModel(inputs, outputs)`,
    saved and loaded like one, after `import keras_resnext`) with two views of
    its multi-level features, read from its layers so they survive a save:

    - `pyramid_outputs`: `{"P1": stem, "P2": stage 1, ..., "P5": stage 4}` as
      symbolic tensors, keras-hub's form: `keras.Model(model.inputs, model.pyramid_outputs)`.
    - `feature_info`: per level (the outputs of a `features_only` model) a dict
      `{"key", "module", "num_chs", "reduction"}`, timm's form.

    Built by `ResNeXt` (and every named constructor), it keeps the arguments that
    define it as `architecture` (depths, cardinality, width, stem, head, ...), and
    the levels come from them. `get_config()` holds them under `"architecture"`
    beside the layer graph (which `inference_model` and older Keras files rely on),
    and `from_config` gives them back; a config of the architecture alone (no
    `"layers"`) is built again by `ResNeXt`.
    """

    @property
    def architecture(self):
        """The `ResNeXt` arguments that define this model (without weights), or None when it was put together
        otherwise (a saved file from before, a new head on a backbone)."""
        return getattr(self, "_architecture", None)

    def record_architecture(self, **arguments):
        object.__setattr__(self, "_architecture", dict(arguments))  # a plain dict, out of Keras' tracking

    def get_config(self):
        config = super().get_config()
        if self.architecture:
            config["architecture"] = dict(self.architecture)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        architecture = config.pop("architecture", None)
        if "layers" not in config and architecture:  # the arguments alone
            return ResNeXt(**architecture, name=config.get("name"))
        model = super().from_config(config, custom_objects=custom_objects)
        if architecture:
            model.record_architecture(**architecture)
        return model

    def _levels(self):
        """`[(key, layer name, reduction)]` of the levels whose layers this model holds."""
        names = {layer.name for layer in self.layers}
        if self.architecture:  # recorded structure
            arch = self.architecture
            levels = config.feature_levels(arch["depths"], arch["stem"], arch["output_stride"])
            return [level for level in levels if level[1] in names]
        # A model saved before its architecture was recorded: read from its layers' names.
        stages = {}
        for layer in self.layers:
            parsed = config.parse_block_name(layer.name)
            if parsed:
                stages[parsed[0]] = max(stages.get(parsed[0], 0), parsed[1])
        depths = [stages[s] for s in sorted(stages)]
        stem = "imagenet" if "pool" in names else "cifar"
        blocks = [layer for layer in self.layers if isinstance(layer, ResNeXtBlock)]
        output_stride = 32
        if any(block.dilation > 1 for block in blocks):
            output_stride = config.stem_reduction(stem) * math.prod(block.strides for block in blocks)
        levels = config.feature_levels(depths, stem, output_stride) if depths else []
        return [level for level in levels if level[1] in names]

    @property
    def pyramid_outputs(self):
        return {key: self.get_layer(name).output for key, name, _ in self._levels()}

    @property
    def feature_info(self):
        outputs = self.output if isinstance(self.output, dict) else None
        return [
            {"key": key, "module": name, "num_chs": int(self.get_layer(name).output.shape[-1]), "reduction": reduction}
            for key, name, reduction in self._levels()
            if outputs is None or key in outputs
        ]


def _check_data_format():
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras_resnext models are built channels_last; the Keras image data "
            f"format is {keras.config.image_data_format()!r}. Call "
            "keras.config.set_image_data_format('channels_last') first."
        )


def _check_weights_argument(variant, weights, pretrained, include_top, classes, classifier_activation):
    """keras.applications' rules for `weights` with `include_top`, `classes` and the activation."""
    is_file = isinstance(weights, (str, os.PathLike)) and os.path.exists(weights)
    if not (weights is None or pretrained or is_file):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), "
            "'imagenet' (pre-training on ImageNet), a pretrained tag of this model "
            f"({', '.join(weights_lib.tags_for(variant)) or 'none'}), or the path to "
            f"the weights file to be loaded. Received: weights={weights}"
        )
    if not (pretrained and include_top):
        return
    if classes != 1000:
        raise ValueError(
            "If using pretrained `weights` with `include_top=True`, `classes` should "
            f"be 1000. Received classes={classes}"
        )
    activation = keras.activations.get(classifier_activation)
    if activation not in (keras.activations.get("softmax"), keras.activations.get(None)):
        raise ValueError(
            "Only `None` and `softmax` activations are allowed for the "
            "`classifier_activation` argument when using pretrained weights, "
            f"with `include_top=True`; Received: classifier_activation={classifier_activation}"
        )


def _image_input(input_tensor, input_shape):
    if input_tensor is None:
        return keras.layers.Input(shape=input_shape)
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.layers.Input(tensor=input_tensor, shape=input_shape)
    return input_tensor


def _stem(x, stem, norm="batch_norm", dtype=None):
    (kernel, strides, pad), pool = config.STEM_GEOMETRY[stem]["conv"], config.STEM_GEOMETRY[stem]["pool"]
    # PyTorch pads the stride-2 stem conv and pool symmetrically; Keras "same" would not.
    x = keras.layers.ZeroPadding2D(pad, name="stem_pad", dtype=dtype)(x)
    x = conv2d(config.STEM_CHANNELS, kernel, config.STEM_CONV, strides=strides, dtype=dtype)(x)
    x = batch_norm(config.STEM_BN, norm=norm, dtype=dtype)(x)
    x = keras.layers.Activation("relu", name=config.STEM_RELU, dtype=dtype)(x)
    if pool is None:
        return x
    pool_kernel, pool_strides, pool_pad = pool
    # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU, >= 0.
    x = keras.layers.ZeroPadding2D(pool_pad, name="pool_pad", dtype=dtype)(x)
    return keras.layers.MaxPooling2D(pool_kernel, strides=pool_strides, name="pool", dtype=dtype)(x)


def _head(x, image, include_top, pooling, classes, classifier_activation):
    """The classifier or pooling, if any, after the NaN guard (see `PropagateNonFinite`).

    The guard sits on the last stage's output, before the head, so keras.applications'
    layer order holds: the classifier is the last layer (its output keeps Keras' logits
    for the losses) and `layers[-2]` gives the pooled features. An image with NaN or an
    infinity in it still gets NaN out: pooling and the classifier propagate NaN.
    """
    x = PropagateNonFinite(name=config.NONFINITE_GUARD)([x, image])
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return classifier(classes, x.shape[-1], classifier_activation)(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def classifier(classes, features, activation="softmax"):
    """The classification layer, `predictions`: float32 under mixed precision (stable softmax and loss).

    Initialised as torchvision's `nn.Linear(features, classes)`: kernel and bias
    uniform in +-1/sqrt(features). Keras' glorot_uniform would start a new head 2.45x
    larger (2048 features, 3 classes), which overshoots when fine-tuning on a few classes.
    """
    bound = 1 / features**0.5
    return keras.layers.Dense(
        classes, activation=activation, name=config.CLASSIFIER, dtype=head_dtype(),
        # kaiming_uniform(a=sqrt(5)), nn.Linear's kernel rule: limit sqrt(3 * scale / fan_in) = 1/sqrt(fan_in)
        kernel_initializer=keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform"),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
    )


def head_dtype():
    """The classifier's dtype: float32 under mixed precision, else the global policy's."""
    return "float32" if keras.config.dtype_policy().name.startswith("mixed") else None


def classifier_layer(model):
    """`model`'s classifier (the layer named `predictions`), or None for a headless model."""
    return next((layer for layer in model.layers if layer.name == config.CLASSIFIER), None)


def outputs_probabilities(model):
    """Whether `model` ends in a classifier with an activation (softmax), not in logits or features."""
    head = classifier_layer(model)
    return head is not None and head.get_config().get("activation") not in (None, "linear")


def obtain_input_shape(input_shape, default_size, include_top, pretrained, min_size=MIN_INPUT_SIZE):
    """keras.applications' input-shape rules and messages, channels_last, any channel count.

    Pretrained weights take any channel count (the stem is adapted); with the
    top they need the size they were trained at.
    """
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(
                f"`input_shape` must be a tuple of three integers; received input_shape={input_shape}."
            )
        if input_shape[-1] is None:
            raise ValueError(f"The channel count must be known; Received `input_shape={input_shape}`")
        if input_shape[-1] < 1:
            raise ValueError(f"The channel count must be at least 1; Received `input_shape={input_shape}`")
    channels = input_shape[-1] if input_shape is not None else 3
    default_shape = (default_size, default_size, channels)
    if pretrained and include_top:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError(
                "When setting `include_top=True` and loading pretrained weights, "
                f"`input_shape` should be {(default_size, default_size, 3)}.  Received: input_shape={input_shape}"
            )
        return default_shape
    if input_shape is None:
        return default_shape if include_top else (None, None, 3)
    if any(side is not None and side < min_size for side in input_shape[:2]):
        raise ValueError(
            f"Input size must be at least {min_size}x{min_size}; Received: input_shape={input_shape}"
        )
    return input_shape


# The named constructors. Each is a variant of `VARIANTS` with keras.applications'
# signature; further keyword arguments (`block_form`, `conv_implementation`) go to `ResNeXt`.

_IMAGENET_DOC = """Instantiates ResNeXt-{depth} ({cardinality}x{bottleneck_width}d), `{variant}`.

Cardinality {cardinality}, bottleneck width {bottleneck_width}; torchvision/timm layout (stride
on the 3x3 conv, projection shortcut in each stage's first block).

Args:
    include_top: whether to include the classifier.
    weights: `None`, `"imagenet"` (the best permissively licensed tag), a tag
        from `keras_resnext.weights.list_weights("{variant}")` or a file path.
        The `fb_*` tags (Facebook's SSL/SWSL/WSL weights) are CC-BY-NC-4.0:
        non-commercial use only.
    input_tensor: optional Keras tensor to use as the image input.
    input_shape: optional `(height, width, 3)`; at least 32x32. With
        `include_top=True` and pretrained weights it must be (224, 224, 3).
    pooling: `None`, `"avg"` or `"max"` global pooling when `include_top=False`.
    classes: number of classes (1000 with pretrained weights and the top).
    classifier_activation: `"softmax"`, `None` or another activation.
    name: the model's name.
    **kwargs: passed to `keras_resnext.ResNeXt` (`block_form`, `conv_implementation`).

Returns:
    A `keras.Model`.

Example:

>>> import keras_resnext as kr
>>> model = kr.{name}(weights=None, include_top=False, pooling="avg", input_shape=(64, 64, 3))
>>> model.output.shape
(None, 2048)
"""

_CIFAR_DOC = """Instantiates ResNeXt-{depth} ({cardinality}x{bottleneck_width}d), `{variant}`: the paper's CIFAR model.

A 3x3 stem, three stages, 32x32 inputs. There are no ImageNet weights, so
`weights` defaults to `None` and `classes` to 10.

Args:
    include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in `keras_resnext.ResNeXt50`.
    **kwargs: passed to `keras_resnext.ResNeXt` (`block_form`, `conv_implementation`).

Returns:
    A `keras.Model`.

Example:

>>> import keras_resnext as kr
>>> kr.{name}().output.shape
(None, 10)
"""


def _named_constructor(variant):
    """Attaches the shared documentation and the variant name to a named constructor."""

    def decorate(constructor):
        spec = VARIANTS[variant]
        template = _CIFAR_DOC if spec.get("stem") == "cifar" else _IMAGENET_DOC
        constructor.__doc__ = template.format(
            name=constructor.__name__, variant=variant, depth=config.model_depth(spec["depths"]),
            cardinality=spec["cardinality"], bottleneck_width=spec["bottleneck_width"],
        )
        constructor.variant = variant
        return constructor

    return decorate


@_named_constructor("resnext50_32x4d")
def ResNeXt50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", name="resnext50_32x4d", **kwargs):
    return ResNeXt(**VARIANTS["resnext50_32x4d"], include_top=include_top, weights=weights,
                   input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                   classifier_activation=classifier_activation, name=name, **kwargs)


@_named_constructor("resnext101_32x4d")
def ResNeXt101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name="resnext101_32x4d", **kwargs):
    return ResNeXt(**VARIANTS["resnext101_32x4d"], include_top=include_top, weights=weights,
                   input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                   classifier_activation=classifier_activation, name=name, **kwargs)


@_named_constructor("resnext101_32x8d")
def ResNeXt101_32x8d(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", name="resnext101_32x8d", **kwargs):
    return ResNeXt(**VARIANTS["resnext101_32x8d"], include_top=include_top, weights=weights,
                   input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                   classifier_activation=classifier_activation, name=name, **kwargs)


@_named_constructor("resnext101_64x4d")
def ResNeXt101_64x4d(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", name="resnext101_64x4d", **kwargs):
    return ResNeXt(**VARIANTS["resnext101_64x4d"], include_top=include_top, weights=weights,
                   input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                   classifier_activation=classifier_activation, name=name, **kwargs)


@_named_constructor("resnext101_32x16d")
def ResNeXt101_32x16d(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name="resnext101_32x16d", **kwargs):
    return ResNeXt(**VARIANTS["resnext101_32x16d"], include_top=include_top, weights=weights,
                   input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                   classifier_activation=classifier_activation, name=name, **kwargs)


@_named_constructor("resnext101_32x32d")
def ResNeXt101_32x32d(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name="resnext101_32x32d", **kwargs):
    return ResNeXt(**VARIANTS["resnext101_32x32d"], include_top=include_top, weights=weights,
                   input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                   classifier_activation=classifier_activation, name=name, **kwargs)


@_named_constructor("resnext29_8x64d")
def ResNeXt29_8x64d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=10, classifier_activation="softmax", name="resnext29_8x64d", **kwargs):
    return ResNeXt(**VARIANTS["resnext29_8x64d"], include_top=include_top, weights=weights,
                   input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                   classifier_activation=classifier_activation, name=name, **kwargs)


@_named_constructor("resnext29_16x64d")
def ResNeXt29_16x64d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                     classes=10, classifier_activation="softmax", name="resnext29_16x64d", **kwargs):
    return ResNeXt(**VARIANTS["resnext29_16x64d"], include_top=include_top, weights=weights,
                   input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                   classifier_activation=classifier_activation, name=name, **kwargs)


NAMED_CONSTRUCTORS = (
    ResNeXt50, ResNeXt101, ResNeXt101_32x8d, ResNeXt101_64x4d, ResNeXt101_32x16d, ResNeXt101_32x32d,
    ResNeXt29_8x64d, ResNeXt29_16x64d,
)
# Constructors by name, both "ResNeXt50" and "resnext50_32x4d".
CONSTRUCTORS = {key: f for f in NAMED_CONSTRUCTORS for key in (f.__name__, f.variant)}


# The main job's model ("default"): an 11-layer ResNeXt (8x4d, three one-block stages) with the ImageNet
# stem, small enough to train on the 32x32 digits in seconds.
DEFAULT_MODEL = dict(depths=(1, 1, 1), cardinality=8, bottleneck_width=4, stem="imagenet", name="resnext11_8x4d")


def constructor_for(name):
    """The constructor every command means by `name`: "default" (resnext11_8x4d), a named one
    ("ResNeXt50" or "resnext50_32x4d"), or "depths:C:d" ("1,1,1,1:8:4"); else a ValueError."""
    if name in (None, "default"):
        return functools.partial(ResNeXt, **DEFAULT_MODEL)
    if ":" in str(name):
        try:
            depths, cardinality, bottleneck_width = str(name).split(":")
            depths = tuple(int(d) for d in depths.split(","))
            return functools.partial(ResNeXt, depths, int(cardinality), int(bottleneck_width))
        except ValueError:
            raise ValueError(f"Cannot read model {name!r}: give depths:C:d, e.g. 1,1,1,1:8:4 or 3,4,6,3:32:4.") from None
    if name not in CONSTRUCTORS:
        raise ValueError(f"unknown model {name!r}; choose default, depths:C:d (e.g. 1,1,1,1:8:4) or one of "
                         f"{', '.join(CONSTRUCTORS)}.")
    return CONSTRUCTORS[name]

"""ResNeXt building blocks as small serializable Keras layers."""

import keras
from keras import ops

from keras_resnext import fused_batch_norm, grouped_conv
from keras_resnext.config import BLOCK_FORMS, NORMS, check_choice, positive_int
from keras_resnext.imagenet_utils import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["FrozenBatchNormalization", "GroupedConv2D", "PixelNormalization", "ResNeXtBlock", "TorchBatchNormalization"]

# torchvision initialises convs with kaiming_normal_(mode="fan_out", nonlinearity="relu").
CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}
# PyTorch BatchNorm: eps 1e-5, running stats updated with momentum 0.1.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def batch_norm(name, dtype=None, norm="batch_norm"):
    """The BatchNorm of every block and stem: PyTorch's epsilon, momentum and statistics; frozen for `norm="frozen_bn"`."""
    layer = FrozenBatchNormalization if check_choice("norm", norm, NORMS) == "frozen_bn" else TorchBatchNormalization
    return layer(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_resnext")
class TorchBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization keeping PyTorch's running variance, trained with one fused kernel.

    Both normalise a training batch with its biased variance; PyTorch's running
    estimate (what inference uses) takes the unbiased one, `n / (n - 1)` times larger,
    `n` the values per channel (batch x height x width). With small batches and
    feature maps the two differ, so weights trained here keep the statistics a
    PyTorch run would. Masked, renormalised and synchronized batches keep Keras' rule.

    On TensorFlow the training step is one fused kernel (`keras_resnext.fused_batch_norm`)
    where it serves (4-D float inputs): the same function, several times fewer passes
    over the activations. `fused=False` keeps Keras' separate ops everywhere.
    """

    def __init__(self, *args, fused=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fused = bool(fused)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm or self.synchronized:
            return super().call(inputs, training=training, mask=mask)
        if self.fused and fused_batch_norm.serves(inputs, self.axis):
            outputs, mean, unbiased = fused_batch_norm.training_step(
                inputs, self.gamma if self.scale else None, self.beta if self.center else None, self.epsilon,
                self.axis)
        else:
            outputs, mean, unbiased = self._training_step(inputs)
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, unbiased)):
            moving.assign(moving * self.momentum + ops.cast(batch, moving.dtype) * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)

    def _training_step(self, inputs):
        """Keras' ops: `(outputs, batch mean, unbiased batch variance)`."""
        inputs = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))  # as Keras: no overflow
        axes = [i for i in range(len(inputs.shape)) if i != self.axis % len(inputs.shape)]
        mean, variance = ops.moments(inputs, axes)
        values = ops.cast(ops.size(inputs) // ops.shape(inputs)[self.axis], inputs.dtype)
        unbiased = variance * values / ops.maximum(values - 1, 1)
        gamma = ops.cast(self.gamma, inputs.dtype) if self.scale else None
        beta = ops.cast(self.beta, inputs.dtype) if self.center else None
        outputs = ops.batch_normalization(inputs, mean, variance, axis=self.axis, offset=beta, scale=gamma,
                                          epsilon=self.epsilon)
        return outputs, mean, unbiased

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}


@keras.saving.register_keras_serializable(package="keras_resnext")
class FrozenBatchNormalization(keras.layers.BatchNormalization):
    """BatchNorm fixed to its moving statistics, gamma and beta: torchvision's `FrozenBatchNorm2d`.

    It normalises with the moving mean and variance in `fit` too and never updates
    them, and its gamma and beta are not trainable, even when the model is set
    trainable. Detection and segmentation fine-tune with it because their batches
    are too small for batch statistics.
    """

    def build(self, input_shape):
        super().build(input_shape)
        for variable in (self.gamma, self.beta):
            if variable is not None:
                variable.trainable = False

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)


def conv2d(filters, kernel_size, name, strides=1, dtype=None):
    """A bias-free dense conv with torchvision's initialisation."""
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, use_bias=False, kernel_initializer=CONV_INITIALIZER,
        name=name, dtype=dtype,
    )


@keras.saving.register_keras_serializable(package="keras_resnext")
class GroupedConv2D(keras.layers.Layer):
    """A 2D convolution whose channels are split into `groups` independent groups.

    Same kernel layout as `keras.layers.Conv2D(groups=...)`, i.e.
    `(kernel_size, kernel_size, in_channels // groups, filters)`, so weights move
    freely between the two, but the convolution is computed by the fastest correct
    path for the backend and device (see `keras_resnext.grouped_conv`).

    Args:
        filters: number of output channels; a multiple of `groups`.
        kernel_size: side of the square kernel.
        groups: number of groups; must divide the input channels and `filters`.
        strides: stride on both spatial axes.
        padding: `"symmetric"` (PyTorch's `padding=dilation * (kernel_size // 2)`,
            zeros on both sides, also for stride 2), `"valid"`, or a number of pixels.
        use_bias: whether to add a bias.
        implementation: `"auto"`, `"native"`, `"direct"` (TensorFlow),
            `"split"` or `"block_diagonal"`; all compute the same function.
        dilation_rate: spacing of the kernel's taps (atrous conv), with `strides=1`.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        groups=1,
        strides=1,
        padding="symmetric",
        use_bias=False,
        implementation="auto",
        kernel_initializer=CONV_INITIALIZER,
        bias_initializer="zeros",
        dilation_rate=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.kernel_size = positive_int("kernel_size", kernel_size)
        self.groups = positive_int("groups", groups)
        self.strides = positive_int("strides", strides)
        self.dilation_rate = positive_int("dilation_rate", dilation_rate)
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                f"`strides` and `dilation_rate` cannot both exceed 1; received strides={strides}, "
                f"dilation_rate={dilation_rate}."
            )
        if self.filters % self.groups:
            raise ValueError(
                f"`filters` must be a multiple of `groups`; received filters={filters}, "
                f"groups={groups}."
            )
        if padding == "symmetric":
            self.pad = self.dilation_rate * (self.kernel_size // 2)
        elif padding == "valid":
            self.pad = 0
        elif isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
            self.pad = padding
        else:
            raise ValueError(
                "`padding` must be 'symmetric', 'valid' or a non-negative number of "
                f"pixels; received padding={padding!r}."
            )
        self.padding = padding
        self.use_bias = use_bias
        self.implementation = grouped_conv.validate_implementation(implementation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"The input channels ({channels}) of layer {self.name!r} must be a "
                f"known multiple of groups={self.groups}."
            )
        span = self.dilation_rate * (self.kernel_size - 1) + 1
        if any(d is not None and d + 2 * self.pad < span for d in input_shape[1:3]):
            raise ValueError(
                f"Layer {self.name!r}: its {self.kernel_size}x{self.kernel_size} kernel (dilation "
                f"{self.dilation_rate}) spans {span} pixels, more than its {input_shape[1]}x{input_shape[2]} "
                f"input padded by {self.pad}; use a larger input or more padding."
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    @property
    def resolved_implementation(self):
        """The implementation `"auto"` stands for here and now, at this layer's compute dtype."""
        return grouped_conv.resolve(self.implementation, self.compute_dtype)

    def call(self, inputs):
        y = self.convolve(inputs, self.kernel)
        if self.bias is not None:
            y = grouped_conv.bias_add(y, self.bias, grouped=self.groups > 1)
        return y

    def convolve(self, inputs, kernel):
        """This layer's convolution with another kernel of the same shape (e.g. BN-folded)."""
        return grouped_conv.grouped_conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.pad,
            groups=self.groups,
            implementation=self.resolved_implementation,
            dilation_rate=self.dilation_rate,
        )

    def compute_output_shape(self, input_shape):
        def out(size):
            if size is None:
                return None
            span = self.dilation_rate * (self.kernel_size - 1) + 1  # the dilated kernel's extent
            return (size + 2 * self.pad - span) // self.strides + 1

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "groups": self.groups,
            "strides": self.strides,
            "dilation_rate": self.dilation_rate,
            "padding": self.padding,
            "use_bias": self.use_bias,
            "implementation": self.implementation,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package="keras_resnext")
class ResNeXtBlock(keras.layers.Layer):
    """The ResNeXt bottleneck: 1x1 reduce, 3x3 with `cardinality` paths, 1x1 expand.

    `form` selects one of the paper's three equivalent forms (Fig. 3), all with the
    same weights:

    - `"grouped"` (c): dense 1x1, one grouped 3x3, dense 1x1. The fast one.
    - `"concat"` (b): each path has its own 1x1 and 3x3; their outputs are
      concatenated and merged by one dense 1x1.
    - `"split"` (a): each path has its own 1x1, 3x3 and 1x1 back to `filters`
      channels; the paths are summed (split-transform-merge).

    Path `i` owns channels `[i * d, (i + 1) * d)` of the bottleneck (d = width /
    cardinality), which is how a grouped conv lays its groups out. BatchNorm and
    ReLU act per channel, so applying them once to the concatenated paths is
    exactly applying them to each path.

    Args:
        filters: output channels (4x the stage's base planes in ResNeXt).
        width: bottleneck channels, `cardinality * d`.
        cardinality: number of paths (groups of the 3x3 conv).
        strides: stride of the block, on the 3x3 conv as in torchvision.
        projection: whether the shortcut is a strided 1x1 conv + BN. `None`
            means "when the shape changes".
        form: `"grouped"`, `"concat"` or `"split"`.
        conv_implementation: passed to the 3x3 `GroupedConv2D`.
        dilation: dilation of the 3x3 conv (output stride 8/16 backbones), with stride 1.
        norm: `"batch_norm"` or `"frozen_bn"` (see `FrozenBatchNormalization`).
    """

    def __init__(
        self,
        filters,
        width,
        cardinality,
        strides=1,
        projection=None,
        form="grouped",
        conv_implementation="auto",
        dilation=1,
        norm="batch_norm",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dilation = positive_int("dilation", dilation)
        self.norm = check_choice("norm", norm, NORMS)
        self.filters = positive_int("filters", filters)
        self.width = positive_int("width", width)
        self.cardinality = positive_int("cardinality", cardinality)
        self.strides = positive_int("strides", strides)
        self.form = check_choice("form", form, BLOCK_FORMS)
        self.projection = projection
        self.conv_implementation = conv_implementation

        self.conv1 = self._conv1x1(width, "conv1")
        self.bn1 = self._batch_norm("bn1")
        self.conv2 = GroupedConv2D(
            width, 3, groups=cardinality, strides=strides, implementation=conv_implementation,
            dilation_rate=self.dilation, name="conv2", dtype=self.dtype_policy,
        )
        self.bn2 = self._batch_norm("bn2")
        self.conv3 = self._conv1x1(filters, "conv3")
        self.bn3 = self._batch_norm("bn3")
        self.downsample_conv = None
        self.downsample_bn = None
        if projection:
            self._make_projection()

    def _conv1x1(self, units, name, strides=1):
        return conv2d(units, 1, name, strides=strides, dtype=self.dtype_policy)

    def _batch_norm(self, name):
        return batch_norm(name, dtype=self.dtype_policy, norm=self.norm)

    def _make_projection(self):
        self.downsample_conv = self._conv1x1(self.filters, "downsample_conv", strides=self.strides)
        self.downsample_bn = self._batch_norm("downsample_bn")

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.projection is None and self.downsample_conv is None:
            if self.strides != 1 or channels != self.filters:
                self._make_projection()
        elif not self.projection and (self.strides != 1 or channels != self.filters):
            raise ValueError(
                f"Block {self.name!r} maps {channels} channels to {self.filters} with "
                f"stride {self.strides}, so it needs projection=True or None."
            )
        self.conv1.build(input_shape)
        self.bn1.build((*input_shape[:-1], self.width))
        self.conv2.build((*input_shape[:-1], self.width))
        mid_shape = self.conv2.compute_output_shape((*input_shape[:-1], self.width))
        self.bn2.build(mid_shape)
        self.conv3.build(mid_shape)
        self.bn3.build((*mid_shape[:-1], self.filters))
        if self.downsample_conv is not None:
            self.downsample_conv.build(input_shape)
            self.downsample_bn.build((*mid_shape[:-1], self.filters))

    def call(self, inputs, training=None):
        if self.downsample_conv is not None and not training:
            shortcut = _conv_bn_folded(inputs, self.downsample_conv, self.downsample_bn)
        elif self.downsample_conv is not None:
            shortcut = self.downsample_bn(self.downsample_conv(inputs), training=training)
        else:
            shortcut = inputs
        if self.form == "grouped" and not training:
            x = ops.relu(_conv_bn_folded(inputs, self.conv1, self.bn1))
            x = ops.relu(_conv_bn_folded(x, self.conv2, self.bn2))
            x = _conv_bn_folded(x, self.conv3, self.bn3)
        elif self.form == "grouped":
            x = ops.relu(self.bn1(self.conv1(inputs), training=training))
            x = ops.relu(self.bn2(self.conv2(x), training=training))
            x = self.bn3(self.conv3(x), training=training)
        else:
            x = self._call_paths(inputs, training)
        return ops.relu(x + shortcut)

    def _call_paths(self, inputs, training):
        """Forms (a) and (b): every path computed with its own slice of the weights."""
        c = self.cardinality
        dtype = inputs.dtype  # the sublayers' kernels, read here, are not autocast for us

        def kernel(layer):
            return ops.cast(layer.kernel, dtype)

        w1 = ops.split(kernel(self.conv1), c, axis=-1)
        w2 = ops.split(kernel(self.conv2), c, axis=-1)
        h = ops.concatenate([ops.conv(inputs, w, padding="valid") for w in w1], axis=-1)
        h = ops.split(ops.relu(self.bn1(h, training=training)), c, axis=-1)
        d = self.dilation
        pad = [[0, 0], [d, d], [d, d], [0, 0]]
        h = [ops.conv(ops.pad(hi, pad), w, strides=self.strides, padding="valid", dilation_rate=d)
             for hi, w in zip(h, w2)]
        h = ops.split(ops.relu(self.bn2(ops.concatenate(h, axis=-1), training=training)), c, axis=-1)
        if self.form == "concat":
            merged = self.conv3(ops.concatenate(h, axis=-1))
        else:  # "split": every path projects back to `filters` channels; the paths are summed
            w3 = ops.split(kernel(self.conv3), c, axis=-2)
            merged = sum(ops.conv(hi, w, padding="valid") for hi, w in zip(h, w3))
        return self.bn3(merged, training=training)

    def compute_output_shape(self, input_shape):
        return (*self.conv2.compute_output_shape((*input_shape[:-1], self.width))[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "width": self.width,
            "cardinality": self.cardinality,
            "strides": self.strides,
            "projection": self.projection,
            "form": self.form,
            "conv_implementation": self.conv_implementation,
            "dilation": self.dilation,
            "norm": self.norm,
        }


@keras.saving.register_keras_serializable(package="keras_resnext")
class PropagateNonFinite(keras.layers.Layer):
    """`[outputs, images]` -> `outputs`, NaN for every image that holds a NaN or an infinity.

    Fused inference kernels (oneDNN's conv + bias + ReLU, max pooling) map NaN to 0,
    so a broken image would otherwise get finite, plausible scores. Checking the
    input costs one pass over it, nothing next to the convolutions.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._convert_input_args = False  # pass the outputs through in their own dtype (a float32 head stays so)

    def call(self, inputs):
        outputs, images = inputs
        finite = ops.all(ops.isfinite(images), axis=tuple(range(1, len(images.shape))))
        finite = ops.reshape(finite, (-1,) + (1,) * (len(outputs.shape) - 1))
        return ops.where(finite, outputs, ops.cast(float("nan"), outputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="keras_resnext")
class PixelNormalization(keras.layers.Layer):
    """Raw RGB pixels in [0, 255] (uint8 or float) to `(pixels - 255 mean) / (255 std)`, per channel.

    What `keras_resnext.preprocess_input` and the float32 pipelines of `keras_resnext.data`
    do, inside the model (`include_preprocessing=True`), so uint8 batches cross to the
    device and are normalised there. Keras' `Normalization` would do the same, but it
    keeps its statistics as captured tensors, which tf2onnx turns into missing inputs;
    these are constants of the graph.

    Args:
        mean, std: per-channel statistics in [0, 1] (ImageNet's by default).
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        if len(self.mean) != len(self.std) or not self.mean or min(self.std) <= 0:
            raise ValueError(f"PixelNormalization needs a mean and a positive std per channel; received mean={mean!r}, "
                             f"std={std!r}.")

    def call(self, inputs):
        pixels = ops.cast(inputs, self.compute_dtype)
        mean = ops.convert_to_tensor([255.0 * m for m in self.mean], self.compute_dtype)
        std = ops.convert_to_tensor([255.0 * s for s in self.std], self.compute_dtype)
        return (pixels - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def _conv_bn_folded(x, conv, bn):
    """conv then BatchNorm with its moving statistics, as one conv with a bias.

    Inference only. The folded form lets oneDNN/cuDNN fuse conv, bias and ReLU
    into one kernel instead of three passes over the activations.
    """
    # Folded in float32, then cast to the compute dtype (mixed precision runs float16 convs).
    def f32(variable):
        return ops.cast(variable, "float32")

    scale = f32(bn.gamma) * ops.rsqrt(f32(bn.moving_variance) + bn.epsilon)
    kernel = ops.cast(f32(conv.kernel) * scale, x.dtype)
    bias = ops.cast(f32(bn.beta) - f32(bn.moving_mean) * scale, x.dtype)
    grouped = isinstance(conv, GroupedConv2D) and conv.groups > 1
    if isinstance(conv, GroupedConv2D):
        y = conv.convolve(x, kernel)
    else:
        y = ops.conv(x, kernel, strides=conv.strides, padding=conv.padding)
    return grouped_conv.bias_add(y, bias, grouped=grouped)

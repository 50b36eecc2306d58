"""The torchvision/timm ResNeXt state_dict layout, mapped onto keras_resnext models.

Both libraries name a ResNeXt's tensors `conv1`, `bn1`, `layer{s}.{i}.conv{1,2,3}`,
`layer{s}.{i}.bn{1,2,3}`, `layer{s}.{i}.downsample.{0,1}` and `fc`. Convolution
kernels are (out, in/groups, kh, kw) in PyTorch and (kh, kw, in/groups, out) in
Keras; a Linear weight is (out, in) and a Dense kernel (in, out).
"""

import math
import warnings

import keras
import numpy as np

from keras_resnext import config
from keras_resnext.layers import GroupedConv2D, ResNeXtBlock

_BN_FIELDS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
_BLOCK_SUBLAYERS = {
    "conv1": "conv1", "bn1": "bn1", "conv2": "conv2", "bn2": "bn2", "conv3": "conv3", "bn3": "bn3",
    "downsample_conv": "downsample.0", "downsample_bn": "downsample.1",
}
# The model's top-level layers with a torch counterpart, by their names in keras_resnext.config.
_TOP_LEVEL = {config.STEM_CONV: "conv1", config.STEM_BN: "bn1", config.CLASSIFIER: "fc"}
_IGNORED_SUFFIX = ".num_batches_tracked"  # a BatchNorm counter with no Keras counterpart


def _conv_to_keras(w):
    return np.transpose(w, (2, 3, 1, 0))


def _conv_shape_to_torch(shape):
    kh, kw, i, o = shape
    return (o, i, kh, kw)


def _entries_for_layer(layer, prefix):
    """Yields (torch key, keras variable, to_keras, torch shape) for one leaf layer."""
    if isinstance(layer, keras.layers.BatchNormalization):
        for torch_name, attr in _BN_FIELDS.items():
            v = getattr(layer, attr)
            yield f"{prefix}.{torch_name}", v, None, tuple(v.shape)
    elif isinstance(layer, (keras.layers.Conv2D, GroupedConv2D)):
        yield f"{prefix}.weight", layer.kernel, _conv_to_keras, _conv_shape_to_torch(layer.kernel.shape)
    elif isinstance(layer, keras.layers.Dense):
        yield f"{prefix}.weight", layer.kernel, np.transpose, tuple(reversed(layer.kernel.shape))
        yield f"{prefix}.bias", layer.bias, None, tuple(layer.bias.shape)


def layout(model):
    """`{torch key: (keras variable, to_keras or None, torch shape)}` for a keras_resnext model.

    A model nested in `model` (the backbone inside a keras-hub classifier) is walked too, so
    its trunk and the outer model's `predictions` head map as one ResNeXt.
    """
    result = {}

    def add(layer, prefix):
        for key, variable, to_keras, shape in _entries_for_layer(layer, prefix):
            result[key] = (variable, to_keras, shape)

    for layer in model.layers:
        if isinstance(layer, ResNeXtBlock):
            s, b = config.parse_block_name(layer.name)
            for attr, torch_name in _BLOCK_SUBLAYERS.items():
                sub = getattr(layer, attr)
                if sub is not None:
                    add(sub, f"layer{s}.{b - 1}.{torch_name}")
        elif layer.name in _TOP_LEVEL:
            add(layer, _TOP_LEVEL[layer.name])
        elif isinstance(layer, keras.Model):
            result.update(layout(layer))
    return result


def expected_state_dict_shapes(model):
    """The torch state_dict keys and shapes this model corresponds to (with BN counters)."""
    shapes = {}
    for key, (_, _, shape) in layout(model).items():
        shapes[key] = list(shape)
        if key.endswith(".running_var"):
            shapes[key[: -len(".running_var")] + _IGNORED_SUFFIX] = []
    return shapes


def adapt_input_conv(weight, in_channels):
    """A stem kernel `(out, 3, kh, kw)` for `in_channels` inputs, as timm's `adapt_input_conv`.

    One channel: the sum over RGB (a gray image then gives what the RGB model gives
    on that image replicated). Other counts: RGB repeated cyclically to
    `in_channels`, scaled by 3 / in_channels so activations keep their scale.
    """
    if weight.ndim != 4 or weight.shape[1] == in_channels or weight.shape[1] != 3:
        return weight  # nothing to adapt, or not an RGB kernel: the shape check reports it
    if in_channels == 1:
        return weight.sum(axis=1, keepdims=True)
    repeated = np.tile(weight, (1, math.ceil(in_channels / 3), 1, 1))[:, :in_channels]
    return (repeated * (3 / in_channels)).astype(weight.dtype)


def load_torch_state_dict(model, state_dict, allow_new_head=False):
    """Copies a torchvision/timm-layout ResNeXt state_dict into `model`, exactly.

    Every tensor the model needs must be present with the right shape, and every
    tensor given must be used, except the classifier `fc.*` when the model has no
    top. With `allow_new_head=True`, an `fc` of another class count is skipped
    and the model keeps its freshly initialised head.

    Raises:
        ValueError: listing the missing, unexpected and mis-shaped keys, when
            the checkpoint is not of this architecture.
    """
    targets = layout(model)
    given = {k: np.asarray(v) for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIX)}
    if "conv1.weight" in targets and "conv1.weight" in given:
        given["conv1.weight"] = adapt_input_conv(given["conv1.weight"], targets["conv1.weight"][2][1])
    has_top = "fc.weight" in targets
    missing = sorted(set(targets) - set(given))
    unexpected = sorted(k for k in set(given) - set(targets) if has_top or not k.startswith("fc."))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(given[k].shape)}, model {targets[k][2]}"
        for k in set(targets) & set(given)
        if tuple(given[k].shape) != targets[k][2]
    )
    if allow_new_head and misshaped and all(m.startswith("fc.") for m in misshaped):
        warnings.warn(
            f"The checkpoint's classifier does not fit this model ({'; '.join(misshaped)}); "
            "keeping the model's new, randomly initialised head.",
            stacklevel=2,
        )
        targets = {k: v for k, v in targets.items() if not k.startswith("fc.")}
        misshaped = []
    _check_keys(model, missing, unexpected, misshaped)
    # Convert everything before assigning anything: a failed load leaves the model as it was.
    values = {key: _to_variable(key, given[key], variable, to_keras) for key, (variable, to_keras, _) in targets.items()}
    for key, (variable, _, _) in targets.items():
        variable.assign(values[key])


def _to_variable(key, value, variable, to_keras):
    if value.dtype.kind not in "fiu" and value.dtype.name != "bfloat16":
        raise ValueError(f"Checkpoint tensor {key!r} has dtype {value.dtype}; a number type is needed.")
    value = to_keras(value) if to_keras is not None else value
    return np.asarray(value, dtype=variable.dtype)


def _check_keys(model, missing, unexpected, misshaped):
    if missing or unexpected or misshaped:
        def fmt(keys):
            return ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "") or "none"

        raise ValueError(
            f"The checkpoint does not match {model.name!r} (a ResNeXt in torchvision/timm layout). "
            f"Missing keys: {fmt(missing)}. Unexpected keys: {fmt(unexpected)}. "
            f"Mis-shaped keys: {fmt(misshaped)}."
        )

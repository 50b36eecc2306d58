"""The grouped convolution, computed the fastest correct way for each backend and device.

Keras 3 runs ``Conv2D(groups>1)`` through XLA on the TensorFlow backend, and XLA's
CPU grouped convolution is two orders of magnitude slower than a dense one (see
BENCHMARKS.md). The same kernel can be applied in four equivalent ways:

- ``"native"``: ``keras.ops.conv`` with a grouped kernel (XLA's grouped conv on
  TensorFlow; ``feature_group_count`` on JAX; ``groups`` on torch).
- ``"direct"``: TensorFlow only, a plain ``tf.nn.conv2d`` outside XLA. On CPU this
  is oneDNN's grouped kernel, on GPU cuDNN's, and under XLA it lowers to XLA's
  native grouped conv. tf2onnx turns it into one ``Conv(group=C)`` node.
- ``"split"``: one dense conv per group, then concatenation (the paper's Fig. 3b).
- ``"block_diagonal"``: one dense conv with a block-diagonal kernel.

``"auto"`` picks per backend and device (`keras_resnext.devices.fastest_grouped_conv`);
``KERAS_RESNEXT_GROUPED_CONV`` overrides the
default for every layer, and each layer's ``implementation`` argument overrides both.
"""

import contextlib
import os

import keras
from keras import ops

from keras_resnext import devices

IMPLEMENTATIONS = ("auto", "native", "direct", "split", "block_diagonal")
ENV_VAR = "KERAS_RESNEXT_GROUPED_CONV"

_forced = []  # stack of implementations forced by `force_implementation`


def validate_implementation(implementation):
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"Unknown grouped-conv implementation {implementation!r}; "
            f"expected one of {IMPLEMENTATIONS}."
        )
    if implementation == "direct" and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "implementation='direct' needs the TensorFlow backend; "
            f"the active backend is {keras.backend.backend()!r}."
        )
    return implementation


@contextlib.contextmanager
def force_implementation(implementation):
    """Make every `GroupedConv2D` traced inside this block use `implementation`.

    Export uses it to trace the ``"direct"`` path that tf2onnx understands.
    """
    _forced.append(validate_implementation(implementation))
    try:
        yield
    finally:
        _forced.pop()


def resolve(implementation, dtype="float32"):
    """Turns ``"auto"`` (or the env var's default) into a concrete implementation for `dtype`."""
    if _forced:
        return _forced[-1]
    if implementation == "auto":
        implementation = validate_implementation(os.environ.get(ENV_VAR, "auto"))
    if implementation != "auto":
        return implementation
    return devices.fastest_grouped_conv(keras.backend.backend(), str(dtype))


def grouped_conv(x, kernel, strides, padding, groups, implementation, dilation_rate=1):
    """Applies `kernel` (kh, kw, in/groups, out) to NHWC `x`, zero-padded `padding` px each side.

    `dilation_rate` spaces the kernel's taps (atrous convolution); it needs `strides=1`.
    Under a JAX distribution that shards the batch, each device computes its own shard
    (`on_local_batch_shards`).
    """
    if groups > 1 and (local := local_batch_mesh(x)) is not None:
        return on_local_batch_shards(local, lambda x, kernel: _grouped_conv(
            x, kernel, strides, padding, groups, implementation, dilation_rate), x, kernel)
    return _grouped_conv(x, kernel, strides, padding, groups, implementation, dilation_rate)


# XLA's SPMD partitioner all-gathers the batch around a batch-sharded convolution with
# feature_group_count > 1 that is not depthwise, computes it whole on every device and
# slices the result (openxla/xla#47945; a fix is proposed in openxla/xla#48086): on N
# devices each grouped conv costs N times its share. A shard_map keeps it on the local
# shard. When XLA keeps such convolutions local itself, set this to False.
KEEP_GROUPED_CONVS_LOCAL = True


def local_batch_mesh(x):
    """`(jax mesh, batch axis)` when `x` is traced under a Keras distribution that shards its batch over
    several devices (JAX), else None: symbolic shapes, a batch the devices do not divide, no distribution."""
    if not KEEP_GROUPED_CONVS_LOCAL or keras.backend.backend() != "jax":
        return None
    distribution = keras.distribution.distribution()
    axis = getattr(distribution, "batch_dim_name", None)
    if distribution is None or axis is None:
        return None
    mesh = distribution.device_mesh
    shards = mesh.shape[mesh.axis_names.index(axis)]
    if shards < 2 or not isinstance(x.shape[0], int) or x.shape[0] % shards:
        return None
    import jax

    return jax.sharding.Mesh(mesh.devices, mesh.axis_names), axis


def on_local_batch_shards(local, conv, x, kernel):
    """`conv(x, kernel)` with `x` split on its batch over `local`'s mesh axis, each device on its own shard, and
    the kernel whole on each (its gradient summed over the devices by the shard_map's transpose)."""
    import jax
    from jax.sharding import PartitionSpec

    mesh, axis = local
    return jax.shard_map(conv, mesh=mesh, in_specs=(PartitionSpec(axis), PartitionSpec()),
                         out_specs=PartitionSpec(axis))(x, ops.convert_to_tensor(kernel))  # a Variable's value


def _grouped_conv(x, kernel, strides, padding, groups, implementation, dilation_rate):
    kernel_size = kernel.shape[0]
    if strides == 1 and dilation_rate == 1 and kernel_size % 2 and padding == kernel_size // 2:
        # Symmetric for odd kernels at stride 1; saves a padded copy. Dilated convs are padded
        # explicitly: onnxruntime refuses SAME padding with dilations.
        pad_mode = "same"
    else:
        pad_mode = "valid"
        if padding:
            x = ops.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    conv = dict(strides=strides, padding=pad_mode, dilation_rate=dilation_rate)
    if groups == 1 or implementation == "native":
        return ops.conv(x, kernel, **conv)
    if implementation == "direct":
        import tensorflow as tf

        return tf.nn.conv2d(x, kernel, strides=strides, padding=pad_mode.upper(), dilations=dilation_rate)
    if implementation == "split":
        xs = ops.split(x, groups, axis=-1)
        kernels = ops.split(kernel, groups, axis=-1)
        return ops.concatenate([ops.conv(xi, ki, **conv) for xi, ki in zip(xs, kernels)], axis=-1)
    if implementation == "block_diagonal":
        return ops.conv(x, block_diagonal_kernel(kernel, groups), **conv)
    raise ValueError(f"Unresolved grouped-conv implementation {implementation!r}.")


def block_diagonal_kernel(kernel, groups):
    """The dense (kh, kw, in, out) kernel equal to a grouped one: zeros off the diagonal blocks."""
    kh, kw, in_per_group, out = kernel.shape
    out_per_group = out // groups
    blocks = ops.reshape(kernel, (kh, kw, in_per_group, groups, out_per_group))
    eye = ops.eye(groups, dtype=kernel.dtype)
    # dense[h, w, g, i, G, o] = blocks[h, w, i, G, o] * eye[g, G]
    dense = ops.einsum("hwiGo,gG->hwgiGo", blocks, eye)
    return ops.reshape(dense, (kh, kw, groups * in_per_group, out))


def bias_add(x, bias, grouped=False):
    """x + bias on the channel axis; TensorFlow's BiasAdd op lets grappler fuse it into the conv.

    After a grouped conv, BiasAdd is used only where the fused kernel supports
    groups: otherwise grappler would still fuse the ops, into a kernel that fails.
    """
    if keras.backend.backend() == "tensorflow" and (
        not grouped or devices.tf_grouped_kernels_complete(keras.backend.standardize_dtype(x.dtype))
    ):
        import tensorflow as tf

        return tf.nn.bias_add(x, ops.cast(bias, x.dtype))
    return x + ops.cast(bias, x.dtype)

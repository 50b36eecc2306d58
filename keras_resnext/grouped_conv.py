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

``"auto"`` picks per backend and device; ``KERAS_RESNEXT_GROUPED_CONV`` overrides the
default for every layer, and each layer's ``implementation`` argument overrides both.
"""

import contextlib
import functools
import os
import platform
import warnings

import keras
from keras import ops

from keras_resnext import devices, startup

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
    return _auto_for_backend(keras.backend.backend(), str(dtype))


@functools.cache
def _auto_for_backend(backend, dtype):
    if backend == "tensorflow":
        if tf_grouped_kernels_complete(dtype):
            return "direct"
        # TF's own CPU kernels have no grouped-conv gradient: without oneDNN, or for
        # float16 on CPUs where oneDNN has no half-precision kernels.
        if dtype != "float16":
            _warn_without_onednn()
        return "split"
    if backend == "jax":
        import jax

        return "native" if jax.default_backend() in ("gpu", "tpu") else "split"
    return "native"


_warned = []


def _warn_without_onednn():
    """Once per process: TensorFlow was imported before keras_resnext, so oneDNN stayed off on this x86-64 CPU."""
    if (_warned or os.environ.get(startup.ONEDNN_VAR) == "0" or platform.machine().lower() not in startup.X86_64
            or devices.tf_onednn_enabled() is not False):
        return
    _warned.append(True)
    warnings.warn(
        "TensorFlow runs without oneDNN here, so grouped convolutions fall back to 'split': ResNeXt runs "
        "at about 0.66x of ResNet50's speed instead of 0.93x (BENCHMARKS.md). Import keras_resnext before "
        "tensorflow, or set TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported.",
        stacklevel=2,
    )


def tf_grouped_kernels_complete(dtype="float32"):
    """Whether TensorFlow here has every grouped-conv kernel: gradients and fused conv+bias+ReLU.

    True on GPUs and TPUs, and on CPUs where TensorFlow runs oneDNN (on by default
    only on CPUs with AVX-512 VNNI/BF16 or AMX). TensorFlow's own CPU kernels have
    neither: no grouped gradient, and grappler's fused conv refuses groups.
    """
    return bool(devices.tf_accelerator()) or _tf_cpu_grouped_gradients_work(str(dtype))


@functools.cache
def _tf_cpu_grouped_gradients_work(dtype):
    """oneDNN computes grouped-conv gradients on CPU; stock TF kernels refuse. Probed once per dtype.

    The probe runs in a fresh thread: TensorFlow's eager context is per thread, so it
    executes eagerly even when called while a `tf.function` is being traced (where
    `tf.init_scope` would pause the gradient tape and prove nothing).
    """
    import concurrent.futures

    import tensorflow as tf

    def probe():
        x = tf.ones([2, 8, 8, 16], dtype)  # 4 groups of 4 channels: small but typical
        kernel = tf.ones([3, 3, 4, 16], dtype)
        try:
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                y = tf.nn.conv2d(x, kernel, 1, "VALID")
            return all(g is not None for g in tape.gradient(y, [x, kernel]))
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.NotFoundError):
            return False

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(probe).result()


def grouped_conv(x, kernel, strides, padding, groups, implementation, dilation_rate=1):
    """Applies `kernel` (kh, kw, in/groups, out) to NHWC `x`, zero-padded `padding` px each side.

    `dilation_rate` spaces the kernel's taps (atrous convolution); it needs `strides=1`.
    """
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
        not grouped or tf_grouped_kernels_complete(keras.backend.standardize_dtype(x.dtype))
    ):
        import tensorflow as tf

        return tf.nn.bias_add(x, ops.cast(bias, x.dtype))
    return x + ops.cast(bias, x.dtype)

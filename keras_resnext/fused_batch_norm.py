"""BatchNorm's training step as one fused kernel on TensorFlow (`FusedBatchNormV3`).

Keras 3's `BatchNormalization` computes the batch moments and the normalisation as
separate float32 ops, forward and backward, with casts around them in mixed
precision: a dozen passes over every activation of a ResNeXt block. TensorFlow's
fused op makes one forward and one backward pass (oneDNN on CPUs, cuDNN on GPUs,
XLA's own batch-norm ops under `jit_compile`), reads bfloat16 and float16
activations directly with float32 statistics, and returns the unbiased batch
variance: the one PyTorch's running variance takes (`TorchBatchNormalization`).

JAX and torch keep Keras' ops, which their compilers fuse.
"""

import keras

# The activations the fused kernels take, each with float32 statistics and scale.
FUSED_DTYPES = frozenset({"float32", "float16", "bfloat16"})
# (rank, channel axis) -> the op's data format. 5-D inputs (NDHWC) keep Keras' ops: untested here.
DATA_FORMATS = {(4, 3): "NHWC", (4, 1): "NCHW"}


def serves(inputs, axis):
    """Whether the fused op computes this BatchNorm's training step: TensorFlow, 4-D, float activations."""
    rank = len(inputs.shape)
    return (keras.backend.backend() == "tensorflow" and keras.backend.standardize_dtype(inputs.dtype) in FUSED_DTYPES
            and (rank, axis % rank) in DATA_FORMATS)


def training_step(inputs, gamma, beta, epsilon, axis):
    """`(outputs, batch mean, unbiased batch variance)` of a training batch, in one fused kernel.

    `outputs` keep the inputs' dtype; the statistics are float32. `gamma` or `beta`
    None stands for ones or zeros (a BatchNorm without scale or center).
    """
    import tensorflow as tf

    rank = len(inputs.shape)
    channels = inputs.shape[axis]
    scale = tf.ones([channels]) if gamma is None else keras.ops.cast(gamma, "float32")
    offset = tf.zeros([channels]) if beta is None else keras.ops.cast(beta, "float32")
    empty = tf.constant([], "float32")  # no running statistics in: the op returns the batch's own
    outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
        x=inputs, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=epsilon,
        data_format=DATA_FORMATS[(rank, axis % rank)], is_training=True,
    )
    return outputs, mean, variance

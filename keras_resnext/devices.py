"""What TensorFlow runs on here: the one place that asks for GPUs and TPUs."""


def tf_gpus():
    """TensorFlow's logical GPU devices."""
    import tensorflow as tf

    return tf.config.list_logical_devices("GPU")


def tf_accelerator():
    """`"tpu"`, `"gpu"` or None: the accelerator TensorFlow sees, TPUs first."""
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        return "tpu"
    return "gpu" if tf_gpus() else None

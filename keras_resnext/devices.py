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


def accelerator():
    """`"tpu"`, `"gpu"` or None: the accelerator the active Keras backend runs on."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return tf_accelerator()
    if backend == "jax":
        import jax

        platform = jax.default_backend()
        return platform if platform in ("gpu", "tpu") else None
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else None
    return None


def cpu_flags():
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16():
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16), as oneDNN needs to run it fast."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})

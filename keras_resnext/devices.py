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


def cpu_name():
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` says."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tf_onednn_enabled():
    """Whether TensorFlow runs its CPU ops through oneDNN in this process (None without TensorFlow)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def _onednn_line():
    import os

    from keras_resnext import startup

    enabled = tf_onednn_enabled()
    if enabled is None:
        return "n/a (no TensorFlow)"
    if startup.onednn_set_here:
        why = "turned on by keras_resnext; TensorFlow leaves it off on this CPU"
    elif startup.ONEDNN_VAR in os.environ:
        why = f"{startup.ONEDNN_VAR}={os.environ[startup.ONEDNN_VAR]} set by the user"
    else:
        why = "TensorFlow's default here"
    return f"{'on' if enabled else 'off'} ({why})"


def facts():
    """What runs here, as `(name, value)` rows: versions, the CPU's features, oneDNN, grouped-conv paths, accelerators."""
    import os
    import platform

    import keras

    from keras_resnext import grouped_conv

    flags = cpu_flags()
    rows = [("python", platform.python_version()), ("keras", keras.__version__),
            ("keras backend", keras.backend.backend())]
    for module in ("tensorflow", "jax"):
        try:
            rows.append((module, __import__(module).__version__))
        except ImportError:
            pass
    rows += [
        ("cpu", f"{cpu_name()} ({platform.machine()}, {os.cpu_count()} cores)"),
        ("cpu features", ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                                                "amx_bf16", "amx_int8") if f in flags) or "none read"),
        ("native bfloat16", "yes" if cpu_has_native_bf16() else "no (emulated, slow)"),
        ("int8 dot products (VNNI)", "yes" if flags & {"avx512_vnni", "avx_vnni", "amx_int8"} else "no"),
        ("AMX", "yes" if flags & {"amx_bf16", "amx_int8", "amx_tile"} else "no"),
        ("oneDNN (TensorFlow)", _onednn_line()),
    ]
    for dtype in ("float32", "bfloat16"):
        rows.append((f"grouped conv 'auto', {dtype}", grouped_conv.resolve("auto", dtype)))
    rows.append(("accelerator", accelerator() or "none (CPU)"))
    return rows


def report(file=None):
    """Prints `facts()` as an aligned table (the header of every benchmark; `keras-resnext info`)."""
    rows = facts()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:{width}s}  {value}", file=file)
    return dict(rows)

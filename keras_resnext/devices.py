"""What runs here: the accelerators, the CPU's features, oneDNN, and the grouped-conv path that is fastest.

The one place that asks for GPUs and TPUs; `report()` prints it all (`keras-resnext info`).
"""

import functools
import os
import platform
import warnings

from keras_resnext import startup

INT8_DOT_PRODUCT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# With these CPU features TensorFlow 2.21 turns oneDNN on by itself (AVX-512 VNNI/BF16, AMX).
TF_ONEDNN_DEFAULT_FLAGS = frozenset({"avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"})
# Linux gives a process AMX's tile registers only once it asks (arch_prctl, kernel 5.16 and later).
_ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA, _SYS_ARCH_PRCTL = 0x1023, 18, 158


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

        device = jax.default_backend()
        return device if device in ("gpu", "tpu") else None
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
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16), as oneDNN needs to run it fast.

    `ONEDNN_MAX_CPU_ISA` below `AVX512_CORE_BF16` (e.g. `AVX2`) holds oneDNN to older
    instructions, without a bfloat16 convolution at all: then the answer is no.
    """
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    allowed = cap == "ALL" or any(isa in cap for isa in ("BF16", "FP16", "AMX", "AVX10"))  # the ISAs at or above it
    return allowed and bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_has_int8_dot_products():
    """True when the CPU multiplies int8 in one instruction (VNNI or AMX), which int8 inference needs to pay off."""
    return bool(cpu_flags() & INT8_DOT_PRODUCT_FLAGS)


@functools.cache
def amx_usable():
    """`(usable, why)`: whether this process can run AMX instructions (the CPU has them and Linux grants them)."""
    if "amx_tile" not in cpu_flags():
        return False, "the CPU has no AMX"
    import ctypes

    try:  # what oneDNN does before its first AMX kernel; granting it twice is harmless
        libc = ctypes.CDLL(None, use_errno=True)
        granted = libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False, "the kernel's permission could not be asked"
    return (True, "yes") if granted else (False, "the CPU has it, but the kernel refuses it (Linux 5.16+ needed)")


def openvino_installed():
    """Whether OpenVINO's runtime imports here (the `[openvino]` extra)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def fastest_int8_engine():
    """`(engine, why)`: the int8 engine `Int8Predictor(engine="auto")` uses on this CPU.

    A CPU-feature rule from BENCHMARKS.md's figures (ResNeXt50, batch 16), not a timed probe,
    which would cost seconds per predictor and flip with the machine's load: LiteRT on an
    AVX-512 VNNI CPU without AMX (XNNPACK was fastest there, 3.0x ResNet50 fp32, OpenVINO no
    faster than onnxruntime); OpenVINO elsewhere: with AMX its oneDNN kernels use it (1.6x
    LiteRT's on an Intel Xeon), and on AVX2 it ran 1.8x LiteRT's. AVX-VNNI CPUs (Intel
    client) are unmeasured and follow AVX2.
    """
    amx = amx_usable()[0]
    if "avx512_vnni" in cpu_flags() and not amx:
        return "litert", "AVX-512 VNNI without AMX: LiteRT's XNNPACK measured fastest"
    why = "AMX: OpenVINO's oneDNN int8 kernels use it" if amx else "no VNNI: OpenVINO measured 1.8x LiteRT"
    if not openvino_installed():
        return "litert", f"{why}, but OpenVINO is not installed (pip install 'keras-resnext[openvino]')"
    return "openvino", why


def training_precision():
    """`(policy, why)`: the Keras dtype policy `train --precision auto` trains under here.

    A rule from BENCHMARKS.md's figures (ResNeXt50, one training step), not a timed
    probe: `mixed_float16` on a GPU (1.05x bfloat16's speed on an H100 under JAX),
    `mixed_bfloat16` on a TPU, and on a CPU that
    computes bfloat16 natively (AVX-512 BF16 or AMX) under TensorFlow with oneDNN
    (1.66x float32's speed on an AVX-512 BF16 AMD EPYC) or JAX (1.26x there).
    Elsewhere float32: without native bfloat16 it is emulated and slower.
    """
    import keras

    device = accelerator()
    if device == "gpu":
        return "mixed_float16", "a GPU: float16 on its tensor cores"
    if device == "tpu":
        return "mixed_bfloat16", "a TPU: bfloat16 is its native type"
    backend = keras.backend.backend()
    if not cpu_has_native_bf16():
        return "float32", "this CPU has no native bfloat16 (AVX-512 BF16 or AMX): emulated, it trains slower"
    if backend == "tensorflow" and not tf_onednn_enabled():
        return "float32", "TensorFlow runs without oneDNN, whose kernels make bfloat16 fast"
    if backend not in ("tensorflow", "jax"):
        return "float32", f"bfloat16 training on the {backend} backend's CPU path is unmeasured"
    native = "AMX" if amx_usable()[0] else "AVX-512 BF16"
    return "mixed_bfloat16", f"{native}: ResNeXt50 trains faster in bfloat16 than in float32 here (BENCHMARKS.md)"


def inference_precision():
    """`(precision, why)`: what `inference_model(precision="auto")` computes in here (beside `training_precision`,
    the package's other precision rule): float16 on a GPU (1.24x bfloat16's ResNeXt50 img/s on an H100 under
    JAX), bfloat16 on a TPU and on a CPU with native bfloat16, else float32."""
    device = accelerator()
    if device == "gpu":
        return "float16", "a GPU: float16 on its tensor cores"
    if device == "tpu":
        return "bfloat16", "a TPU: bfloat16 is its native type"
    if cpu_has_native_bf16():
        return "bfloat16", "this CPU computes bfloat16 natively (AVX-512 BF16 or AMX)"
    return "float32", "this CPU has no native bfloat16: emulated, it would be slower"


@functools.cache
def fastest_grouped_conv(backend, dtype="float32"):
    """The grouped-conv implementation `"auto"` stands for on `backend` here, for `dtype`."""
    if backend == "tensorflow":
        if tf_grouped_kernels_complete(dtype):
            return "direct"
        # TF's own CPU kernels have no grouped-conv gradient: without oneDNN, or for float16
        # (and bfloat16 without AVX-512), which oneDNN has no kernels for on that CPU.
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
    if (_warned or os.environ.get(startup.ONEDNN_VAR) == "0" or not startup.on_x86_64()
            or tf_onednn_enabled() is not False):
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

    True on GPUs and TPUs, and on CPUs where TensorFlow runs oneDNN (TensorFlow turns it
    on only on CPUs with AVX-512 VNNI/BF16 or AMX; `keras_resnext.startup` on every
    x86-64 CPU). TensorFlow's own CPU kernels have
    neither: no grouped gradient, and grappler's fused conv refuses groups.
    """
    return bool(tf_accelerator()) or _tf_cpu_grouped_gradients_work(str(dtype))


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
        except tf.errors.OpError:  # no kernel, no gradient, or (oneDNN held to AVX2) no bfloat16 primitive
            return False

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(probe).result()


def cpu_name():
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` says."""
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
    enabled = tf_onednn_enabled()
    if enabled is None:
        return "n/a (no TensorFlow)"
    if startup.onednn_set_here:  # set on every x86-64 CPU; TensorFlow would have set it on some of them
        why = ("TensorFlow's default on this CPU" if cpu_flags() & TF_ONEDNN_DEFAULT_FLAGS
               else "turned on by keras_resnext; TensorFlow leaves it off on this CPU")
    elif startup.ONEDNN_VAR in os.environ:
        why = f"{startup.ONEDNN_VAR}={os.environ[startup.ONEDNN_VAR]} set by the user"
    else:
        why = "TensorFlow's default here"
    return f"{'on' if enabled else 'off'} ({why})"


def facts():
    """What runs here, as `(name, value)` rows: versions, CPU features, oneDNN, grouped-conv paths, accelerators."""
    import keras

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
        ("int8 dot products (VNNI)", "yes" if flags & INT8_DOT_PRODUCT_FLAGS else "no"),
        ("AMX", amx_usable()[1] if "amx_tile" in flags else "no"),
        ("int8 engine 'auto'", "{} ({})".format(*fastest_int8_engine())),
        ("training precision 'auto'", "{} ({})".format(*training_precision())),
        ("inference precision 'auto'", "{} ({})".format(*inference_precision())),
        ("oneDNN (TensorFlow)", _onednn_line()),
    ]
    for dtype in ("float32", "bfloat16"):
        rows.append((f"grouped conv 'auto', {dtype}", fastest_grouped_conv(keras.backend.backend(), dtype)))
    if os.environ.get("KERAS_RESNEXT_GROUPED_CONV"):
        rows.append(("KERAS_RESNEXT_GROUPED_CONV", os.environ["KERAS_RESNEXT_GROUPED_CONV"] + " (overrides 'auto')"))
    rows.append(("accelerator", accelerator() or "none (CPU)"))
    return rows


def report(file=None):
    """Prints `facts()` as an aligned table (the header of every benchmark; `keras-resnext info`)."""
    rows = facts()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:{width}s}  {value}", file=file)
    return dict(rows)

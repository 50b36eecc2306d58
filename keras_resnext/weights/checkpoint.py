"""Reading PyTorch-layout checkpoints into NumPy without unpickling untrusted code.

`.safetensors` is read with the safetensors library (no torch needed). A `.pth` /
`.bin` in PyTorch's zip format is read with a restricted unpickler that admits only
the handful of globals a plain state_dict needs (tensors, storages, OrderedDict),
the same allow-list idea as `torch.load(weights_only=True)`. Anything else, such
as a pickled model object or code, is refused.
"""

import collections
import os
import pickle
import zipfile

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def _bfloat16():
    import ml_dtypes  # ships with TensorFlow and JAX

    return ml_dtypes.bfloat16


def read_state_dict(path):
    """Returns `{key: np.ndarray}` from a `.safetensors`, `.pth`, `.pt` or `.bin` file."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return _unwrap(load_file(path))
    if zipfile.is_zipfile(path):
        return _unwrap(_read_torch_zip(path))
    return _unwrap(_read_with_torch(path))


def _unwrap(state_dict):
    """Accepts `{"state_dict": ...}` / `{"model": ...}` wrappers and DataParallel's `module.`."""
    for key in ("state_dict", "model"):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


class _Storage:
    def __init__(self, dtype, key):
        self.dtype, self.key = dtype, key


def _rebuild_tensor(storage, offset, size, stride, *unused):
    itemsize = np.dtype(storage.dtype).itemsize
    flat = storage.data
    if not size:
        return flat[offset:offset + 1].reshape(()).copy()
    return np.lib.stride_tricks.as_strided(
        flat[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    ).copy()


def _rebuild_parameter(tensor, requires_grad, backward_hooks, *unused):
    return tensor


class _RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self._archive, self._prefix = archive, prefix

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module == "torch" and name == "BFloat16Storage":
            return _bfloat16()
        raise pickle.UnpicklingError(
            f"Refusing to load {module}.{name}: only plain state_dicts of tensors are "
            "accepted (as with torch.load(weights_only=True))."
        )

    def persistent_load(self, pid):
        kind, dtype, key, _location, _numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"Unsupported persistent id {kind!r}.")
        storage = _Storage(dtype, key)
        raw = self._archive.read(f"{self._prefix}/data/{key}")
        storage.data = np.frombuffer(raw, dtype=dtype)
        return storage


def _read_torch_zip(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError(f"{path} is a zip file but not a PyTorch checkpoint (no single data.pkl).")
        prefix = pickles[0].rsplit("/", 1)[0] if "/" in pickles[0] else ""
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ValueError(f"{path} stores big-endian tensors, which are not supported.")
        with archive.open(pickles[0]) as f:
            result = _RestrictedUnpickler(f, archive, prefix).load()
    if not isinstance(result, dict):
        raise ValueError(f"{path} holds a {type(result).__name__}, not a state_dict.")
    return result


def _read_with_torch(path):
    """Legacy (pre-1.6, non-zip) checkpoints: only torch can read them, safely."""
    try:
        import torch
    except ImportError as e:
        raise ValueError(
            f"{path} is a legacy (non-zip) PyTorch checkpoint; reading it needs torch "
            "(pip install 'keras-resnext[torch]'), or convert it to .safetensors."
        ) from e
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy() for k, v in state_dict.items()}

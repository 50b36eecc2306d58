"""Reading PyTorch-layout checkpoints into NumPy, treating every file as hostile.

`.safetensors` is read with the safetensors library (no torch needed). A `.pth` /
`.bin` in PyTorch's zip format is read with a restricted unpickler that admits only
the handful of globals a plain state_dict needs (tensors, storages, OrderedDict),
the same allow-list idea as `torch.load(weights_only=True)`.

What the zip reader guarantees, whatever the bytes:
- no code runs: any other global, and any attempt to modify a tensor or storage
  after it is built (the pickle's BUILD opcode), is refused;
- no read outside the bytes present: every tensor's offset, sizes and strides are
  checked against its storage before a view is made, and a storage must be as
  long as it declares;
- bounded memory: each storage is read once, no more bytes than it declares,
  only from an uncompressed entry (as `torch.save` writes them), so the arrays
  never hold more than the file's own bytes. Tensors are read-only views of them.
Every malformed file is one `ValueError` that names it and says what is wrong.
"""

import collections
import io
import os
import pickle
import re
import zipfile

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
# A legacy (pre-1.6) torch.save file starts with its magic number pickled at protocol 2.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_MAX_PICKLE_BYTES = 64 << 20  # a state_dict's pickle is kilobytes; its tensors live in the storages
_MAX_DIMS = 32
_STORAGE_KEY = re.compile(r"^[0-9A-Za-z_]{1,64}$")


class _Malformed(ValueError):
    """What is wrong with the file; `read_state_dict` adds the file's name."""


def read_state_dict(path):
    """Returns `{key: np.ndarray}` from a `.safetensors`, `.pth`, `.pt` or `.bin` file.

    The arrays of a `.pth` are read-only views of the file's storages.

    Raises:
        ValueError: the file is missing, unreadable or not a well-formed
            checkpoint of tensors; the message names the file and the fault.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
        reader = _reader_for(path, head)
        return _unwrap(reader(path))
    except _Malformed as e:
        raise ValueError(f"Checkpoint {path!r} is malformed: {e}") from None
    except OSError as e:
        raise ValueError(f"Cannot read checkpoint {path!r}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - any parser failure on untrusted bytes is a malformed file
        raise ValueError(f"Checkpoint {path!r} is malformed: {type(e).__name__}: {e}") from None


def _reader_for(path, head):
    if path.endswith(".safetensors"):
        return _read_safetensors
    if head.startswith(b"PK"):
        return _read_torch_zip
    if head == _LEGACY_MAGIC:
        return _read_with_torch
    raise _Malformed("it is neither safetensors, a PyTorch zip checkpoint nor a legacy PyTorch file.")


def _read_safetensors(path):
    from safetensors.numpy import load_file

    return load_file(path)


def _unwrap(state_dict):
    """Accepts `{"state_dict": ...}` / `{"model": ...}` wrappers and DataParallel's `module.`."""
    if not isinstance(state_dict, dict):
        raise _Malformed(f"it holds a {type(state_dict).__name__}, not a state_dict.")
    for key in ("state_dict", "model"):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
    if state_dict and all(isinstance(k, str) and k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise _Malformed(f"entry {key!r} is a {type(value).__name__}, not a tensor.")
    return dict(state_dict)


def _dtype(name):
    if name == "bfloat16":
        import ml_dtypes  # ships with TensorFlow and JAX

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class _Immutable:
    """Pickle may BUILD (set state on) what it made; a tensor or storage must stay as checked."""

    __slots__ = ()

    def __setstate__(self, state):
        raise _Malformed(f"the pickle modifies a {type(self).__name__.strip('_')} after creating it.")


class _StorageType(_Immutable):
    __slots__ = ("name",)

    def __init__(self, name):
        object.__setattr__(self, "name", name)


class _Storage(_Immutable):
    __slots__ = ("key", "array")

    def __init__(self, key, array):
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "array", array)


class _Tensor(_Immutable):
    """A checked (storage, offset, size, stride); made into a NumPy view once the pickle is read."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        for name, value in zip(self.__slots__, (storage, offset, size, stride)):
            object.__setattr__(self, name, value)

    def to_numpy(self):
        data = self.storage.array
        if 0 in self.size:
            return np.empty(self.size, data.dtype)
        return np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size, strides=[s * data.itemsize for s in self.stride],
            writeable=False,
        )


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(value, what):
    if not isinstance(value, tuple) or len(value) > _MAX_DIMS or not all(_is_int(v) and v >= 0 for v in value):
        raise _Malformed(f"a tensor's {what} is {value!r}, not a tuple of at most {_MAX_DIMS} non-negative ints.")
    return value


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """torch._utils._rebuild_tensor_v2, checked: the tensor must lie inside its storage."""
    if not isinstance(storage, _Storage):
        raise _Malformed(f"a tensor is built on a {type(storage).__name__}, not a storage.")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride) or not _is_int(offset) or offset < 0:
        raise _Malformed(f"a tensor has size {size}, stride {stride} and offset {offset!r}.")
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.array.size:
            raise _Malformed(
                f"a tensor of size {size}, stride {stride} and offset {offset} reaches element {last} "
                f"of storage {storage.key!r}, which has {storage.array.size}."
            )
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(tensor, *unused):
    return tensor


class _StorageReader:
    """Reads each storage of a torch zip once, checked against its zip entry."""

    def __init__(self, archive, prefix, file_size):
        self._archive, self._prefix, self._file_size = archive, prefix, file_size
        self._storages = {}

    def storage(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Malformed(f"unsupported persistent id {pid!r:.80}.")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not _STORAGE_KEY.match(key):
            raise _Malformed(f"a storage reference ({storage_type!r:.40}, {key!r:.40}) is not valid.")
        if not _is_int(numel) or numel < 0:
            raise _Malformed(f"storage {key!r} declares {numel!r:.40} elements.")
        dtype = _dtype(_STORAGE_DTYPES[storage_type.name])
        if key in self._storages:
            storage = self._storages[key]
            if storage.array.dtype != dtype or storage.array.size != numel:
                raise _Malformed(f"storage {key!r} is declared twice with different types or sizes.")
            return storage
        storage = _Storage(key, self._read(key, dtype, numel))
        self._storages[key] = storage
        return storage

    def _read(self, key, dtype, numel):
        name = f"{self._prefix}/data/{key}"
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise _Malformed(f"storage {key!r} is missing ({name} is not in the zip).") from None
        nbytes = numel * dtype.itemsize
        if info.compress_type != zipfile.ZIP_STORED:
            raise _Malformed(f"storage {key!r} is compressed; torch.save writes storages uncompressed.")
        if nbytes > info.file_size or info.file_size > self._file_size:
            raise _Malformed(
                f"storage {key!r} declares {nbytes} bytes but its zip entry holds {info.file_size} "
                f"(and the file is {self._file_size} bytes)."
            )
        with self._archive.open(info) as f:
            raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise _Malformed(f"storage {key!r} is truncated: {len(raw)} of {nbytes} bytes.")
        return np.frombuffer(raw, dtype=dtype)


class _RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, storages):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _Malformed(
            f"refusing to load {module}.{name}: only plain state_dicts of tensors are "
            "accepted (as with torch.load(weights_only=True))."
        )

    def persistent_load(self, pid):
        return self._storages.storage(pid)


def _to_numpy(obj):
    """The unpickled object with every checked tensor made into its NumPy view."""
    if isinstance(obj, _Tensor):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v) for v in obj)
    if isinstance(obj, _Immutable):
        raise _Malformed(f"a bare {type(obj).__name__.strip('_')} where a tensor was expected.")
    return obj


def _pickle_of(archive):
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if "data.pkl" in names or len(pickles) != 1:
        raise _Malformed("it is a zip file but not a PyTorch checkpoint (it needs exactly one <name>/data.pkl).")
    info = archive.getinfo(pickles[0])
    if info.file_size > _MAX_PICKLE_BYTES:
        raise _Malformed(f"its data.pkl declares {info.file_size} bytes (at most {_MAX_PICKLE_BYTES} accepted).")
    with archive.open(info) as f:
        raw = f.read(_MAX_PICKLE_BYTES + 1)
    return pickles[0][: -len("/data.pkl")], raw


def _read_torch_zip(path):
    with zipfile.ZipFile(path) as archive:
        prefix, raw = _pickle_of(archive)
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise _Malformed("it stores big-endian tensors, which are not supported.")
        storages = _StorageReader(archive, prefix, os.path.getsize(path))
        result = _RestrictedUnpickler(io.BytesIO(raw), storages).load()
    return _to_numpy(result)


def _read_with_torch(path):
    """Legacy (pre-1.6, non-zip) checkpoints: only torch can read them, safely."""
    try:
        import torch
    except ImportError:
        raise _Malformed(
            "it is a legacy (non-zip) PyTorch checkpoint; reading it needs torch "
            "(pip install 'keras-resnext[torch]'), or convert it to .safetensors."
        ) from None
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy() for k, v in state_dict.items()}

"""Hand-made PyTorch zip checkpoints, honest or hostile, written without torch.

`torch.save` writes `<name>/data.pkl` (a protocol-2 pickle whose tensors are
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` and whose
storages are persistent ids `("storage", torch.FloatStorage, key, "cpu", numel)`)
and one uncompressed entry `<name>/data/<key>` per storage. This module emits the
same opcodes directly, so a test can declare any header it likes.
"""

import zipfile

import numpy as np

STORAGE_TYPES = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
                 "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage",
                 "uint8": "ByteStorage", "bool": "BoolStorage"}


def text(s):
    data = s.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def integer(n):
    data = n.to_bytes(n.bit_length() // 8 + 1, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def tuple_of(items):
    return b"(" + b"".join(items) + b"t"


def global_(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def storage_ref(key, dtype, numel):
    pid = tuple_of([text("storage"), global_("torch", STORAGE_TYPES[dtype]), text(key), text("cpu"), integer(numel)])
    return pid + b"Q"  # BINPERSID


def tensor(key, dtype, numel, offset, size, stride, extra=b""):
    """The opcodes of one tensor; `extra` is appended right after it (e.g. a BUILD)."""
    args = tuple_of([storage_ref(key, dtype, numel), integer(offset), tuple_of(map(integer, size)),
                     tuple_of(map(integer, stride)), b"\x89", global_("collections", "OrderedDict") + b")R"])
    return global_("torch._utils", "_rebuild_tensor_v2") + args + b"R" + extra


def state_dict_pickle(entries):
    """`entries`: {name: opcodes of the value} -> a whole data.pkl."""
    body = b"".join(text(name) + value for name, value in entries.items())
    return b"\x80\x02}(" + body + b"u."


def write(path, pickle_bytes, storages, prefix="archive", compression=zipfile.ZIP_STORED):
    """A torch-format zip: `storages` maps key -> raw bytes."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prefix}/data.pkl", pickle_bytes)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, raw in storages.items():
            z.writestr(f"{prefix}/data/{key}", raw, compress_type=compression)
    return path


def write_tensors(path, tensors):
    """A checkpoint of plain contiguous tensors: {name: np.ndarray}, one storage each."""
    entries, storages = {}, {}
    for i, (name, array) in enumerate(tensors.items()):
        array = np.ascontiguousarray(array)
        strides = tuple(s // array.itemsize for s in array.strides)
        entries[name] = tensor(str(i), array.dtype.name, array.size, 0, array.shape, strides)
        storages[str(i)] = array.tobytes()
    return write(path, state_dict_pickle(entries), storages)

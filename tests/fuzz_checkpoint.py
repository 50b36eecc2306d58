"""Property-based fuzzing of the .pth reader; run in a subprocess by test_checkpoint.py so a crash is seen.

    python tests/fuzz_checkpoint.py [EXAMPLES]

Loads `keras_resnext/weights/checkpoint.py` on its own (it needs only NumPy), then
1. random tensor headers (offset, size, stride, storage length, dtype, truncation):
   the reader returns exactly the elements torch's indexing rule gives, or raises
   ValueError when the header is invalid;
2. random mutations of a valid checkpoint's bytes: ValueError, or the original tensors.
Any other exception fails; a segfault shows as the subprocess's exit status.
"""

import importlib.util
import itertools
import pathlib
import sys
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torch_zip

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("checkpoint", ROOT / "keras_resnext" / "weights" / "checkpoint.py")
checkpoint = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checkpoint)

EXAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 300
TMP = pathlib.Path(tempfile.mkdtemp())
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


def reference(values, offset, size, stride):
    """What torch.as_strided(storage, size, stride, offset) holds, element by element."""
    flat = [values[offset + sum(i * s for i, s in zip(index, stride))]
            for index in itertools.product(*(range(n) for n in size))]
    return np.array(flat, dtype=values.dtype).reshape(size)


def is_valid(numel, cut, offset, size, stride):
    if cut or offset < 0 or len(size) != len(stride) or min(size + stride, default=0) < 0:
        return False
    return 0 in size or offset + sum((n - 1) * s for n, s in zip(size, stride)) < numel


dims = st.integers(0, 3)


@SETTINGS
@given(numel=st.integers(0, 40), dtype=st.sampled_from(sorted(torch_zip.STORAGE_TYPES)),
       offset=st.integers(-3, 45), ndim=dims, ndim_stride=dims, data=st.data(), cut=st.sampled_from([0, 0, 0, 1, 7]))
def check_header(numel, dtype, offset, ndim, ndim_stride, data, cut):
    size = tuple(data.draw(st.lists(st.integers(-1, 6), min_size=ndim, max_size=ndim)))
    if data.draw(st.booleans()):
        ndim_stride = ndim
    stride = tuple(data.draw(st.lists(st.integers(-2, 12), min_size=ndim_stride, max_size=ndim_stride)))
    values = (np.arange(numel) % 97).astype(dtype)
    raw = values.tobytes()[: max(0, values.nbytes - cut)] if numel else values.tobytes()
    cut = cut if numel else 0
    path = TMP / "case.pth"
    pickle_bytes = torch_zip.state_dict_pickle({"w": torch_zip.tensor("0", dtype, numel, offset, size, stride)})
    torch_zip.write(path, pickle_bytes, {"0": raw})
    try:
        out = checkpoint.read_state_dict(path)["w"]
    except ValueError:
        assert not is_valid(numel, cut, offset, size, stride), (numel, cut, offset, size, stride)
        return
    assert is_valid(numel, cut, offset, size, stride), (numel, cut, offset, size, stride)
    expected = reference(values, offset, size, stride)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


def valid_checkpoint():
    path = TMP / "valid.pth"
    tensors = {"a": np.arange(12, dtype="float32").reshape(3, 4), "b": np.arange(5, dtype="int64")}
    torch_zip.write_tensors(path, tensors)
    return path.read_bytes(), tensors


VALID, TENSORS = valid_checkpoint()
mutation = st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.integers(0, len(VALID) - 1), st.integers(1, 255))


@SETTINGS
@given(mutations=st.lists(mutation, min_size=1, max_size=4))
def check_mutated_zip(mutations):
    raw = bytearray(VALID)
    for kind, at, byte in mutations:
        at %= max(len(raw), 1)
        if kind == "flip" and raw:
            raw[at] ^= byte
        elif kind == "cut":
            del raw[at:]
        else:
            raw[at:at] = bytes([byte])
    path = TMP / "mutated.pth"
    path.write_bytes(bytes(raw))
    try:
        out = checkpoint.read_state_dict(path)
    except ValueError:
        return
    assert out.keys() == TENSORS.keys()
    for key, value in TENSORS.items():
        assert out[key].dtype == value.dtype
        np.testing.assert_array_equal(out[key], value)


if __name__ == "__main__":
    check_header()
    check_mutated_zip()
    print(f"fuzzed {EXAMPLES} headers and {EXAMPLES} mutated files: no crash, no out-of-bounds read")

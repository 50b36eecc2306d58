"""The checkpoint reader against hostile and broken files: each one a ValueError naming the file."""

import subprocess
import sys
import zipfile

import numpy as np
import pytest

import keras_resnext as kr
import torch_zip
from helpers import FIXTURES, TINY
from keras_resnext.weights import checkpoint
from keras_resnext.weights.torch_layout import load_torch_state_dict

pytestmark = pytest.mark.portable
FOUR_FLOATS = np.arange(4, dtype="float32").tobytes()


def one_tensor(tmp_path, offset=0, size=(4,), stride=(1,), numel=4, raw=FOUR_FLOATS, extra=b"", **kwargs):
    pickle_bytes = torch_zip.state_dict_pickle({"w": torch_zip.tensor("0", "float32", numel, offset, size, stride, extra)})
    return torch_zip.write(tmp_path / "crafted.pth", pickle_bytes, {"0": raw}, **kwargs)


def refused(path, match):
    with pytest.raises(ValueError, match=match) as info:
        checkpoint.read_state_dict(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_a_hand_made_checkpoint_reads_as_torch_would(tmp_path):
    # A transposed view: offset 1, size (2, 3), strides (1, 2) over 8 elements.
    path = one_tensor(tmp_path, offset=1, size=(2, 3), stride=(1, 2), numel=8,
                      raw=np.arange(8, dtype="float32").tobytes())
    np.testing.assert_array_equal(checkpoint.read_state_dict(path)["w"], [[1, 3, 5], [2, 4, 6]])


@pytest.mark.parametrize("header", [
    dict(size=(64,)), dict(size=(1_000_000_000,)), dict(size=(2, 2), stride=(3, 1)),
    dict(stride=(-1,)), dict(offset=-1), dict(offset=4), dict(size=(4,), stride=(1, 1)),
    dict(size=(-4,)),
])
def test_a_tensor_outside_its_storage_is_refused(tmp_path, header):
    refused(one_tensor(tmp_path, **header), "malformed: a tensor")


def test_a_storage_longer_than_its_bytes_is_refused_before_reading(tmp_path):
    refused(one_tensor(tmp_path, numel=1 << 28, size=(1 << 28,)), "declares 1073741824 bytes but its zip entry holds 16")
    refused(one_tensor(tmp_path, raw=FOUR_FLOATS[:10]), "declares 16 bytes but its zip entry holds 10")


def test_a_compressed_storage_is_refused(tmp_path):
    refused(one_tensor(tmp_path, compression=zipfile.ZIP_DEFLATED), "compressed")


def test_build_cannot_replace_a_tensor_or_storage_after_its_checks(tmp_path):
    # BUILD with {"dtype": object}: what once turned a storage into an object array.
    state = b"}" + torch_zip.text("dtype") + torch_zip.text("object") + b"s" + b"b"
    refused(one_tensor(tmp_path, extra=state), "modifies a Tensor")


def test_one_storage_shared_by_many_tensors_is_read_once(tmp_path):
    entries = {f"w{i}": torch_zip.tensor("0", "float32", 4, i % 4, (1,), (1,)) for i in range(16)}
    path = torch_zip.write(tmp_path / "shared.pth", torch_zip.state_dict_pickle(entries), {"0": FOUR_FLOATS})
    tensors = checkpoint.read_state_dict(path)
    assert [float(tensors[f"w{i}"][0]) for i in range(5)] == [0, 1, 2, 3, 0]
    assert all(np.shares_memory(tensors[f"w{i}"], tensors[f"w{i + 4}"]) for i in range(12))  # one buffer
    assert not tensors["w0"].flags.writeable


@pytest.mark.parametrize("damage, match", [
    (lambda raw: raw[: len(raw) // 2], "malformed: BadZipFile"),
    (lambda raw: raw[:-40], "malformed: BadZipFile"),
    (lambda raw: b"\x00" * 64, "neither safetensors"),
    (lambda raw: b"\x80\x02}q\x00.", "neither safetensors"),  # a pickle, but not torch's: torch is not asked
])
def test_a_damaged_or_foreign_file_is_refused(tmp_path, damage, match):
    path = tmp_path / "model.pth"
    path.write_bytes(damage((FIXTURES / "tv_resnext_tiny.pth").read_bytes()))
    message = refused(path, match)
    assert "needs torch" not in message


def test_a_crc_error_in_a_storage_is_refused(tmp_path):
    path = one_tensor(tmp_path)
    raw = bytearray(path.read_bytes())
    at = bytes(raw).index(FOUR_FLOATS)
    raw[at + 5] ^= 0xFF
    path.write_bytes(bytes(raw))
    refused(path, "Bad CRC-32")


def test_structural_faults_are_named(tmp_path):
    pickle_bytes = torch_zip.state_dict_pickle({"w": torch_zip.tensor("7", "float32", 4, 0, (4,), (1,))})
    refused(torch_zip.write(tmp_path / "a.pth", pickle_bytes, {"0": FOUR_FLOATS}), "storage '7' is missing")
    with zipfile.ZipFile(tmp_path / "root.pth", "w") as z:
        z.writestr("data.pkl", pickle_bytes)
    refused(tmp_path / "root.pth", "exactly one <name>/data.pkl")
    bad_global = b"\x80\x02" + torch_zip.global_("posix", "system") + b"."
    refused(torch_zip.write(tmp_path / "g.pth", bad_global, {}), "refusing to load posix.system")
    refused(torch_zip.write(tmp_path / "list.pth", b"\x80\x02](K\x01e.", {}), "holds a list, not a state_dict")


def test_a_corrupt_safetensors_header_is_refused(tmp_path):
    raw = (FIXTURES / "tv_resnext_tiny.safetensors").read_bytes()
    path = tmp_path / "model.safetensors"
    path.write_bytes(raw[:8] + b"{not json" + raw[17:])
    refused(path, "malformed")
    path.write_bytes(raw[:100])
    refused(path, "malformed")
    refused(tmp_path / "absent.safetensors", "Cannot read checkpoint")


def test_a_failed_load_changes_no_weight(tmp_path):
    model = kr.ResNeXt(**TINY, classes=10, weights=None)
    before = [np.array(w) for w in model.get_weights()]
    state = dict(checkpoint.read_state_dict(FIXTURES / "tv_resnext_tiny.safetensors"))
    state["fc.bias"] = np.array(["x"] * 10)  # the last tensor assigned is the bad one
    with pytest.raises(ValueError, match="'fc.bias' has dtype <U1"):
        load_torch_state_dict(model, state)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.slow
@pytest.mark.backend_independent  # the reader alone, on NumPy
def test_the_reader_survives_fuzzing_in_a_subprocess():
    pytest.importorskip("hypothesis")
    run = subprocess.run([sys.executable, "fuzz_checkpoint.py", "400"], cwd=FIXTURES.parent,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "no crash" in run.stdout

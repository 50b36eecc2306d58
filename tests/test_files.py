"""Atomic writes keep the permissions `open()` would give: the user's umask for a new file, the old mode for a replaced one."""

import os
import stat

import pytest

from keras_resnext import files


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_a_new_file_and_folder_get_the_umasks_mode(tmp_path, umask):
    files.write_json(tmp_path / "metrics.json", {"a": 1})
    files.write_csv(tmp_path / "log.csv", [{"epoch": 0}], ["epoch"])
    with files.atomic_path(tmp_path / "model.keras") as tmp:
        with open(tmp, "wb") as f:
            f.write(b"x")
    with files.atomic_dir(tmp_path / "saved_model") as tmp:
        with open(os.path.join(tmp, "saved_model.pb"), "wb") as f:
            f.write(b"x")
    for name in ("metrics.json", "log.csv", "model.keras"):
        assert mode(tmp_path / name) == 0o666 & ~umask, name
    assert mode(tmp_path / "saved_model") == 0o777 & ~umask
    assert files.current_umask() == umask


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "metrics.json"
    path.write_text("{}")
    os.chmod(path, 0o640)
    files.write_json(path, {"b": 2})
    assert mode(path) == 0o640 and path.read_text().strip().startswith("{")


def test_a_writer_that_replaces_its_temporary_still_gets_the_mode(tmp_path, umask):
    with files.atomic_path(tmp_path / "curves.png") as tmp:
        os.unlink(tmp)  # as some savers do: remove the file they are given and write a new one
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    assert mode(tmp_path / "curves.png") == 0o666 & ~umask

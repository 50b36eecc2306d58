"""Writing files atomically: a reader (or a rerun after a kill) sees the old file or the new one, never half."""

import contextlib
import errno
import csv
import json
import math
import os
import shutil
import stat
import tempfile
import threading

TEMPORARY_PREFIX = ".tmp-"
_umask_lock = threading.Lock()


def current_umask():
    """The process's umask (read by setting and restoring it: POSIX has no read-only call)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _final_mode(path, default):
    """The mode a new file at `path` should get: a replaced file keeps its own, else `default & ~umask`.

    `mkstemp`/`mkdtemp` make private (0600/0700) temporaries; without this every file the
    package writes would stay private to its creator.
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return default & ~current_umask()


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds.

    The temporary name ends like `path` (`.keras`, `.png`, ...), since some writers
    pick the format from the suffix. On failure it is removed and `path` is untouched.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "it is a folder", path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMPORARY_PREFIX, suffix="-" + os.path.basename(path))
    except OSError as e:  # name the file asked for, not the temporary beside it
        raise type(e)(e.errno, e.strerror, path) from None
    os.close(fd)
    mode = _final_mode(path, 0o666)
    try:
        yield tmp
        os.chmod(tmp, mode)  # after the writer: some writers replace the file they are given
        with open(tmp, "rb") as f:  # on disk before it takes the name, so a crash cannot leave it empty
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path):
    """`atomic_path` for a folder (a SavedModel): a temporary folder beside `path`, renamed onto it."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix=TEMPORARY_PREFIX)
    except OSError as e:  # name the folder asked for, not the temporary beside it
        raise type(e)(e.errno, e.strerror, path) from None
    mode = _final_mode(path, 0o777)
    try:
        yield tmp
        os.chmod(tmp, mode)
        if os.path.isdir(path):  # the old folder is kept until the new one is whole
            os.replace(path, tmp + "-old")
        os.replace(tmp, path)
        shutil.rmtree(tmp + "-old", ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path, data):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_json(path, obj):
    """`obj` as strict JSON: NaN and infinities, which JSON lacks, are written as null."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(_finite(obj), f, indent=2, allow_nan=False)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_csv(path, rows, columns):
    """`rows` (dicts) as CSV with these `columns`; keys not in `columns` are left out."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

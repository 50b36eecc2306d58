"""Fetching pretrained checkpoints through huggingface_hub.

huggingface_hub gives us, without HTTP code of our own: the shared Hugging Face
cache (the one timm uses, so files timm already fetched are reused), downloads
written to `*.incomplete` and renamed when whole, resumption, progress bars,
`HF_ENDPOINT` for a mirror and `HF_HUB_OFFLINE=1` for cache-only use. We add
content verification: the Hub names each LFS blob by its SHA-256, so every cached
file is hashed against that name (or the registry's `sha256`) before use; a
corrupt file is deleted and fetched once more, and refused if still wrong. A file
that passed is remembered by path, size and modification time (in
`$KERAS_RESNEXT_CACHE`, default `~/.cache/keras_resnext`), so a 1.9 GB checkpoint
is hashed once, not on every load, and again whenever it changes.
"""

import hashlib
import json
import os
import re

from keras_resnext.files import write_json

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_record(expected, path):
    """The record of `path` verified as `expected`: one per file, so that copies of one checkpoint in two
    caches do not overwrite each other's record (each would then be hashed again at every load)."""
    root = os.environ.get("KERAS_RESNEXT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "keras_resnext")
    where = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(root, "verified", f"{expected}-{where}.json")


def _has_hash(path, expected):
    """Whether `path` hashes to `expected`; a file verified before and unchanged since is not re-read."""
    stat = os.stat(path)
    identity = {"path": os.path.realpath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    record = _verified_record(expected, identity["path"])
    try:
        with open(record) as f:
            if json.load(f) == identity:
                return True
    except (OSError, ValueError):
        pass  # not verified yet, or an unreadable record: hash the file
    if _sha256(path) != expected:
        return False
    try:
        write_json(record, identity)
    except OSError:
        pass  # a read-only home only costs the hash next time
    return True


def _expected_sha256(entry, path):
    if entry.get("sha256"):
        return entry["sha256"]
    blob = os.path.basename(os.path.realpath(path))
    return blob if _SHA256.match(blob) else None


def _remove_cached(path):
    for p in {os.path.realpath(path), path}:
        if os.path.lexists(p):
            os.remove(p)


def fetch(entry, cache_dir=None):
    """Local path of `entry`'s checkpoint, downloaded into the Hugging Face cache if needed.

    Reads `HF_ENDPOINT`, `HF_HUB_CACHE` and `HF_HUB_OFFLINE` at call time.

    Raises:
        OSError: offline and not cached, or the download failed.
        ValueError: the file's SHA-256 is wrong even after fetching it again.
    """
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = _env_flag("HF_HUB_OFFLINE")
    kwargs = dict(
        repo_id=entry["hf_hub_id"],
        filename=entry["filename"],
        revision=entry.get("revision"),
        cache_dir=cache_dir or os.environ.get("HF_HUB_CACHE") or None,
        endpoint=os.environ.get("HF_ENDPOINT") or None,
        local_files_only=offline,
    )
    name = f"{entry['model']}.{entry['tag']}"
    for attempt in range(2):
        try:
            path = huggingface_hub.hf_hub_download(**kwargs, force_download=attempt > 0)
        except LocalEntryNotFoundError as e:
            if offline:
                raise OSError(
                    f"Weights {name!r} are not in the cache and HF_HUB_OFFLINE is set. Run once "
                    f"online, or put {entry['filename']} of {entry['hf_hub_id']} in the cache "
                    "(or pass weights=<path to the file>)."
                ) from e
            raise OSError(f"Could not download weights {name!r} from {entry['hf_hub_id']}: {e}") from e
        expected = _expected_sha256(entry, path)
        if expected is None or _has_hash(path, expected):
            return path
        _remove_cached(path)
        if offline:
            break
    raise ValueError(
        f"The checkpoint for {name!r} is corrupt: its SHA-256 does not match the published "
        "hash, also after downloading it again. It was deleted and not used."
    )

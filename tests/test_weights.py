import json
import os
import pickle
import re
import zipfile

import numpy as np
import pytest

import keras_resnext as kr
from helpers import FIXTURES, TINY, TINY_CHECKPOINT, TINY_ENTRY, TINY_HUB_KEY, shapes_only
from keras_resnext import models
from keras_resnext.weights import checkpoint, download, registry
from keras_resnext.weights.torch_layout import expected_state_dict_shapes, load_torch_state_dict

UPSTREAM = json.loads((FIXTURES / "upstream_state_dict_shapes.json").read_text())
def test_download_verifies_converts_and_caches(tiny_registry, tiny_io, monkeypatch):
    def features():
        return kr.ResNeXt(**TINY, include_top=False, pooling="avg", weights="test_in1k")

    first = features()  # downloads, checks the SHA-256, converts
    np.testing.assert_allclose(first.predict(tiny_io["x_nhwc_64"], verbose=0), tiny_io["pooled_64"], atol=1e-4)
    assert tiny_registry.gets[TINY_HUB_KEY] == 1
    features()  # from the cache
    assert tiny_registry.gets[TINY_HUB_KEY] == 1
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    offline = features()
    np.testing.assert_allclose(offline.predict(tiny_io["x_nhwc_75"], verbose=0), tiny_io["pooled_75"], atol=1e-4)


def test_a_corrupted_cached_file_is_detected_and_fetched_again(tiny_registry):
    path = kr.weights.fetch(TINY_ENTRY)
    blob = os.path.realpath(path)
    downloaded = os.stat(blob)
    with open(blob, "r+b") as f:  # flip one byte in the cache
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0x01]))
    # An edit within the download's clock tick keeps its mtime: move it on, as any later edit would, without a sleep.
    os.utime(blob, ns=(downloaded.st_atime_ns, downloaded.st_mtime_ns + 1_000_000_000))
    path = kr.weights.fetch(TINY_ENTRY)
    assert open(path, "rb").read() == TINY_CHECKPOINT
    assert tiny_registry.gets[TINY_HUB_KEY] == 2


def test_a_cached_file_is_hashed_once_until_it_changes(tiny_registry, monkeypatch):
    hashed = []
    real_sha256 = download._sha256
    monkeypatch.setattr(download, "_sha256", lambda path: hashed.append(path) or real_sha256(path))
    path = kr.weights.fetch(TINY_ENTRY)
    assert kr.weights.fetch(TINY_ENTRY) == path and len(hashed) == 1  # verified once, remembered
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # "changed": hashed again
    assert kr.weights.fetch(TINY_ENTRY) == path and len(hashed) == 2
    assert kr.weights.fetch(TINY_ENTRY) == path and len(hashed) == 2


def test_two_copies_of_a_checkpoint_are_each_remembered_as_verified(tmp_path, monkeypatch):
    """One record per file: two caches of the same checkpoint (two tests, two users' caches) once thrashed one."""
    import hashlib

    hashed = []
    real_sha256 = download._sha256
    monkeypatch.setattr(download, "_sha256", lambda path: hashed.append(path) or real_sha256(path))
    copies = [tmp_path / "first.safetensors", tmp_path / "second.safetensors"]
    for copy in copies:
        copy.write_bytes(TINY_CHECKPOINT)
    expected = hashlib.sha256(TINY_CHECKPOINT).hexdigest()
    for _ in range(3):
        assert all(download._has_hash(str(copy), expected) for copy in copies)
    assert len(hashed) == 2


def test_a_corrupt_download_is_refused_and_not_kept(tiny_registry, tmp_path):
    tiny_registry.corrupt_bodies = True
    with pytest.raises(ValueError, match="corrupt"):
        kr.weights.fetch(TINY_ENTRY)
    assert tiny_registry.gets[TINY_HUB_KEY] == 2  # tried twice
    blobs = list((tmp_path / "hub").rglob("blobs/*"))
    assert not [b for b in blobs if not b.name.endswith(".incomplete")]


@pytest.fixture
def hub_imported_offline(monkeypatch):
    """huggingface_hub as a pytest worker has it when a test that set HF_HUB_OFFLINE imported it first (it reads
    the variable once, at import)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_the_loopback_hub_serves_a_worker_that_imported_huggingface_hub_offline(hub_imported_offline,
                                                                               tiny_registry):
    assert os.path.isfile(kr.weights.fetch(TINY_ENTRY)) and tiny_registry.gets[TINY_HUB_KEY] == 1


def test_offline_without_cache_says_how_to_proceed(tiny_registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="HF_HUB_OFFLINE"):
        kr.weights.fetch(TINY_ENTRY)
    assert tiny_registry.gets == {}


@pytest.mark.parametrize("variant", sorted({e["model"] for e in registry.entries()}))
def test_every_registry_model_maps_onto_the_upstream_state_dict(variant):
    constructor = models.CONSTRUCTORS[variant]
    with shapes_only():
        model = constructor(weights=None)
        headless = constructor(weights=None, include_top=False)
    assert expected_state_dict_shapes(model) == UPSTREAM[f"timm.{variant}"]["state_dict"]
    expected = {k: v for k, v in UPSTREAM[f"timm.{variant}"]["state_dict"].items() if not k.startswith("fc.")}
    assert expected_state_dict_shapes(headless) == expected


def test_registry_entries_are_complete_and_licences_are_stated():
    seen = set()
    for e in registry.entries():
        assert (e["model"], e["tag"]) not in seen
        seen.add((e["model"], e["tag"]))
        assert e["model"] in models.VARIANTS
        assert e["hf_hub_id"] == f"timm/{e['model']}.{e['tag']}"
        assert e["num_classes"] == 1000 and e["tag"].endswith("in1k")  # every tag is an ImageNet-1k classifier
        assert e["license"] in {"bsd-3-clause", "apache-2.0", "cc-by-nc-4.0"}
        assert e["license"] == "cc-by-nc-4.0" if e["tag"].startswith("fb_") else e["license"] != "cc-by-nc-4.0"
        assert not (e["default"] and e["license"] == "cc-by-nc-4.0")
    defaults = [e["model"] for e in registry.entries() if e["default"]]
    assert len(defaults) == len(set(defaults))
    table = kr.weights.format_table(kr.weights.list_weights())
    assert re.search(r"resnext50_32x4d +tv2_in1k +81\.198 +224 +bsd-3-clause +25\.03", table)
    assert re.search(r"resnext101_32x32d +fb_wsl_ig1b_ft_in1k .* cc-by-nc-4.0", table)
    assert "CC-BY-NC-4.0" in kr.ResNeXt101_32x8d.__doc__


def test_imagenet_without_a_permissive_tag_explains_the_licence():
    with pytest.raises(ValueError, match="CC-BY-NC-4.0"):
        kr.ResNeXt101_32x16d()
    with pytest.raises(ValueError, match="available tags: tv2_in1k"):
        kr.ResNeXt50(weights="fb_wsl_ig1b_ft_in1k")  # a known tag, but of other models


def test_a_checkpoint_of_another_architecture_is_refused_with_the_keys():
    resnet50 = kr.ResNeXt((3, 4, 6, 3), 1, 64)
    state = {k: np.zeros(v, "float32") for k, v in expected_state_dict_shapes(resnet50).items()}
    state["extra.weight"] = np.zeros(3, "float32")
    with pytest.raises(ValueError) as info:
        load_torch_state_dict(kr.ResNeXt50(weights=None), state)
    message = str(info.value)
    assert "Unexpected keys: extra.weight" in message
    assert "layer1.0.conv2.weight: checkpoint (64, 64, 3, 3), model (128, 4, 3, 3)" in message
    del state["layer4.2.bn3.running_var"]
    with pytest.raises(ValueError, match="Missing keys: layer4.2.bn3.running_var"):
        load_torch_state_dict(resnet50, state)


def test_a_checkpoint_with_another_class_count_gets_a_fresh_head(tiny_io):
    with pytest.warns(UserWarning, match="new, randomly initialised head"):
        model = kr.ResNeXt(**TINY, classes=7, input_shape=(64, 64, 3), weights=FIXTURES / "tv_resnext_tiny.pth")
    assert model.output.shape == (None, 7)
    backbone = kr.ResNeXt(**TINY, include_top=False, pooling="avg", weights=FIXTURES / "tv_resnext_tiny.pth")
    np.testing.assert_allclose(backbone.predict(tiny_io["x_nhwc_64"], verbose=0), tiny_io["pooled_64"], atol=1e-4)


def test_keras_weights_files_load_too(tmp_path, tiny_io):
    source = kr.ResNeXt(**TINY, classes=10, classifier_activation=None, weights=FIXTURES / "tv_resnext_tiny.safetensors")
    path = tmp_path / "tiny.weights.h5"
    source.save_weights(path)
    model = kr.ResNeXt(**TINY, classes=10, classifier_activation=None, input_shape=(None, None, 3), weights=path)
    np.testing.assert_allclose(model.predict(tiny_io["x_nhwc_75"], verbose=0), tiny_io["logits_75"], atol=1e-4)
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"x")
    with pytest.raises(ValueError, match="Cannot tell the format"):
        kr.ResNeXt(**TINY, weights=odd)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_in_a_pth_file_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"conv1.weight": _Exploit()}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load (posix|os|nt).system"):
        checkpoint.read_state_dict(path)


def test_pth_and_safetensors_readers_agree():
    a = checkpoint.read_state_dict(FIXTURES / "tv_resnext_tiny.pth")
    b = checkpoint.read_state_dict(FIXTURES / "tv_resnext_tiny.safetensors")
    assert a.keys() == b.keys() and len(a) == 104
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_eval_transform_resizes_crops_and_normalises():
    transform = kr.weights.eval_transform("resnext50_32x4d", "tv2_in1k")  # 232 -> 224, bilinear
    image = np.full((1, 300, 400, 3), 255, "uint8")
    out = np.asarray(transform(image.astype("float32")))
    assert out.shape == (1, 224, 224, 3)
    np.testing.assert_allclose(out[0, 100, 100], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225], rtol=1e-5)
    with pytest.raises(ValueError, match="known tags"):
        kr.weights.eval_transform("resnext50_32x4d", "nope")


def test_state_dict_wrappers_are_unwrapped():
    inner = {"conv1.weight": np.zeros(1)}
    assert checkpoint._unwrap({"state_dict": {f"module.{k}": v for k, v in inner.items()}}).keys() == inner.keys()
    assert checkpoint._unwrap({"model": inner}).keys() == inner.keys()


def test_a_keras_hub_backbone_gets_pretrained_weights_by_preset(tiny_registry, tiny_io):
    pytest.importorskip("keras_hub")
    from keras_resnext.hub import ResNeXtBackbone

    backbone = ResNeXtBackbone.from_preset("resnext_tiny.test_in1k")  # downloaded, verified, converted
    pooled = np.mean(np.asarray(backbone.predict(tiny_io["x_nhwc_64"], verbose=0)), axis=(1, 2))
    np.testing.assert_allclose(pooled, tiny_io["pooled_64"], atol=1e-4)
    assert backbone.pretrained_cfg["tag"] == "test_in1k"
    assert tiny_registry.gets[TINY_HUB_KEY] == 1


def test_a_pretrained_model_knows_its_weights_and_their_eval_transform(tiny_registry):
    model = kr.ResNeXt(**TINY, include_top=False, weights="test_in1k", features_only=True)
    assert model.pretrained_cfg["tag"] == "test_in1k" and model.pretrained_cfg["model"] == "resnext_tiny"
    transform = kr.weights.eval_transform(model)  # no variant or tag repeated
    assert transform.name == "resnext_tiny_test_in1k_eval_transform"
    size = TINY_ENTRY["test_input_size"]
    assert tuple(transform(np.zeros((1, 300, 400, 3), "float32")).shape) == (1, size, size, 3)
    with pytest.raises(ValueError, match="not built with pretrained weights"):
        kr.weights.eval_transform(kr.ResNeXt(**TINY, include_top=False))

import os
import shutil
import sys
import tempfile

_THROWAWAY = []


def _throwaway_folder(variable, prefix):
    """Point `variable` at a new temporary folder, removed after the run, unless it is set already.

    Under pytest-xdist the workers inherit the controller's folder, so they share it.
    """
    if variable not in os.environ:
        os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
        _THROWAWAY.append(os.environ[variable])


def pytest_unconfigure(config):
    for folder in _THROWAWAY:
        shutil.rmtree(folder, ignore_errors=True)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Records of verified downloads go to a throwaway folder, never the user's ~/.cache.
_throwaway_folder("KERAS_RESNEXT_CACHE", "keras-resnext-cache-")
# The processes the tests kill cannot remove their temporary files (TensorFlow's autograph writes one
# per converted function and deletes it at exit): 240 were left in /tmp by test_resume.py alone.
_throwaway_folder("TMPDIR", "keras-resnext-tmp-")
if os.environ.get("KERAS_BACKEND") == "jax":  # TensorFlow runs without XLA on CPUs
    # Compiling each new model, shape and eager op with XLA is most of a JAX test's time, and most
    # tests build the same few models: one persistent compilation cache for the run (every worker)
    # makes every graph after the first a load. Every entry is kept, however small or quick to compile.
    _throwaway_folder("JAX_COMPILATION_CACHE_DIR", "keras-resnext-jax-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
    # The tests' graphs are small and run a few times each, so LLVM's optimizations cost more than
    # they save: without them XLA compiles in about half the time (XLA's own graph passes still run).
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
sys.path.insert(0, os.path.dirname(__file__))  # tests import their shared helpers as `helpers`

import keras_resnext  # noqa: E402,F401 - first, as users do: it turns oneDNN on before TensorFlow loads
import filelock  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import FIXTURES, TINY, TINY_CHECKPOINT, TINY_ENTRY, TINY_HUB_KEY, cli  # noqa: E402
from hub_server import HubServer  # noqa: E402
from keras_resnext import config as resnext_config  # noqa: E402
from keras_resnext.weights import registry  # noqa: E402


def pytest_collection_modifyitems(config, items):
    # The slow tests first: with several workers (make test hands them out one at a time, in this order)
    # the long ones start early and the short ones fill the gaps, instead of one worker finishing a
    # kill chain alone at the end.
    # One test that needs the main job goes first of all, so the first worker trains it (~90 s) while
    # the other starts the slow tests that do not need it; its other users come later and find it
    # trained, instead of one worker idling at the job's lock while the other trains it.
    def uses_main_job(item):
        return "main_job" in getattr(item, "fixturenames", ())

    first_user = next((item for item in items if uses_main_job(item)), None)
    items.sort(key=lambda item: (item is not first_user, "slow" not in item.keywords, uses_main_job(item)))
    # Under another backend (make test-jax) only tests marked `portable` run, less those the backend cannot
    # change: the TensorFlow half has run them.
    if keras.backend.backend() != "tensorflow":
        independent = [item for item in items if "backend_independent" in item.keywords]
        if independent:
            config.hook.pytest_deselected(items=independent)
            items[:] = [item for item in items if "backend_independent" not in item.keywords]
        for item in items:
            if "portable" not in item.keywords:
                item.add_marker(pytest.mark.skip(reason="TensorFlow-only test"))


@pytest.fixture(scope="session")
def fixtures_dir():
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_io():
    return dict(np.load(FIXTURES / "tv_resnext_tiny_io.npz"))


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(scope="session")
def main_job(tmp_path_factory):
    """`keras-resnext train` with no arguments but --output: the README's main job.

    Trained once per session even under pytest-xdist: the first worker trains it, under a lock,
    in the folder all workers share; the tests only read it.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above each worker's own
    out = shared / "main_job"
    with filelock.FileLock(str(shared / "main_job.lock")):
        if not (out / "metrics.json").exists():
            result = cli("train", "--output", str(out), timeout=600)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def tiny_model():
    """The torchvision fixture model with logits out, at 64x64 (one per test module)."""
    import keras_resnext as kr

    return kr.ResNeXt(**TINY, classes=10, classifier_activation=None, input_shape=(64, 64, 3),
                      weights=FIXTURES / "tv_resnext_tiny.safetensors")


@pytest.fixture
def tiny_registry(monkeypatch, tmp_path):
    """A registry with one entry, the tiny fixture model ("resnext_tiny.test_in1k"), served from a loopback 'Hub'."""
    monkeypatch.setitem(resnext_config.VARIANTS, "resnext_tiny", dict(TINY))
    monkeypatch.setattr(registry, "entries", lambda: (TINY_ENTRY,))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported: if a test that sets it (test_weights'
    # offline tests) imported it first in this worker, the whole worker would stay offline.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with HubServer({TINY_HUB_KEY: TINY_CHECKPOINT}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub

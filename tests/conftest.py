import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TINY = dict(depths=(1, 1, 1, 1), cardinality=8, bottleneck_width=4)


def pytest_collection_modifyitems(config, items):
    # Under another backend (make test-jax) only tests marked `portable` run.
    if keras.backend.backend() != "tensorflow":
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

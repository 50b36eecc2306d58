"""Numerical parity with torchvision, from the golden fixture made with real torchvision 0.29."""

import numpy as np
import pytest

import keras_resnext as kr
from helpers import FIXTURES, TINY

pytestmark = pytest.mark.portable


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
@pytest.mark.parametrize("form", ["grouped", "concat", "split"])
def test_logits_and_pooled_features_match_torchvision(tiny_io, fmt, form):
    path = FIXTURES / f"tv_resnext_tiny.{fmt}"
    classifier = kr.ResNeXt(
        **TINY, classes=10, classifier_activation=None, input_shape=(None, None, 3), weights=path, block_form=form
    )
    features = kr.ResNeXt(**TINY, include_top=False, pooling="avg", weights=path, block_form=form)
    for side in (64, 75):  # 75 is odd: PyTorch's symmetric padding of the stride-2 convs shows
        x = tiny_io[f"x_nhwc_{side}"]
        np.testing.assert_allclose(classifier.predict(x, verbose=0), tiny_io[f"logits_{side}"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(features.predict(x, verbose=0), tiny_io[f"pooled_{side}"], atol=1e-4, rtol=0)

import pytest

import keras_resnext as kr
from keras_resnext.flops import count_macs, count_macs_config


def test_resnext50_and_resnet50_mac_counts_are_the_reference_figures():
    assert count_macs(kr.ResNeXt50(weights=None)) == 4_230_480_872
    assert count_macs(kr.ResNeXt((3, 4, 6, 3), 1, 64)) == 4_089_185_256  # ResNet-50


@pytest.mark.parametrize(
    "config",
    [
        dict(depths=(3, 4, 23, 3), cardinality=32, bottleneck_width=8),
        dict(depths=(3, 3, 3), cardinality=8, bottleneck_width=64, stem="cifar", input_size=32, classes=10),
        dict(depths=(1, 2), cardinality=4, bottleneck_width=6, input_size=96, include_top=False),
    ],
)
def test_config_count_agrees_with_the_built_model(config):
    size = config.get("input_size", 224)
    build_args = {k: v for k, v in config.items() if k not in ("input_size",)}
    model = kr.ResNeXt(**build_args, input_shape=(size, size, 3))
    assert count_macs_config(**config) == count_macs(model)


def test_count_macs_needs_a_fixed_input_size():
    with pytest.raises(ValueError, match="fixed input size"):
        count_macs(kr.ResNeXt((1, 1), 4, 4, include_top=False))


def test_count_macs_agrees_with_tensorflow_profiler():
    """TF's profiler counts 2 FLOPs per MAC for every Conv2D and MatMul it sees."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    model = kr.ResNeXt((1, 1), 4, 4, classes=10, input_shape=(32, 32, 3), conv_implementation="direct")
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(
        tf.TensorSpec((1, 32, 32, 3), tf.float32)
    ).graph
    options = (
        option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    options["account_type_regexes"] = ["Conv2D", "MatMul"]
    flops = model_analyzer.profile(graph, options=options).total_float_ops
    classifier_bias = 10  # count_macs adds one MAC per bias element; TF counts bias adds apart
    assert flops == 2 * (count_macs(model) - classifier_bias)


@pytest.mark.parametrize(
    "config",
    [
        dict(depths=(3, 4, 6, 3), cardinality=32, bottleneck_width=4),
        dict(depths=(3, 3, 3), cardinality=16, bottleneck_width=64, stem="cifar", classes=10),
        dict(depths=(2, 1), cardinality=2, bottleneck_width=24, include_top=False),
    ],
)
def test_params_from_config_equal_the_built_model(config):
    import numpy as np

    from keras_resnext.flops import count_params_config

    model = kr.ResNeXt(**config)
    assert count_params_config(**config) == sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize(
    "variant,gmacs",
    [("resnext50_32x4d", 4.23), ("resnext101_32x8d", 16.41), ("resnext101_64x4d", 15.46)],
)
def test_config_counts_match_torchvision_published_gflops(variant, gmacs):
    from keras_resnext.models import VARIANTS

    assert round(count_macs_config(**VARIANTS[variant]) / 1e9, 2) == gmacs  # torchvision's model docs

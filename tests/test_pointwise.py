"""gan/space/pointwise.py: a 1x1 conv as a matmul computes keras' Conv2D, gradients included."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.space.pointwise import Conv2D


def _pair(kernel_size, use_bias, **kwargs):
    """Our Conv2D and keras' with the same float64 weights."""
    ours = Conv2D(5, kernel_size, use_bias=use_bias, dtype="float64", name="conv", **kwargs)
    theirs = keras.layers.Conv2D(5, kernel_size, use_bias=use_bias, dtype="float64", name="conv",
                                 **kwargs)
    shape = (3, 6, 7, 4)
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(0)
    for a, b in zip(ours.weights, theirs.weights):
        value = rng.normal(size=a.shape)
        a.assign(value)
        b.assign(value)
    return ours, theirs, tf.constant(rng.normal(size=shape))


def _forward_and_gradients(layer, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * upstream)
    return [y] + tape.gradient(loss, [x] + layer.trainable_weights)


@pytest.mark.parametrize("use_bias", [True, False])
def test_pointwise_matmul_equals_keras_conv_output_and_gradients(use_bias):
    ours, theirs, x = _pair(1, use_bias)
    assert ours._is_pointwise()  # noqa: SLF001
    upstream = tf.constant(np.random.default_rng(1).normal(size=(3, 6, 7, 5)))
    for a, b in zip(_forward_and_gradients(ours, x, upstream),
                    _forward_and_gradients(theirs, x, upstream)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3, "padding": "same"},
    {"kernel_size": 1, "strides": 2},
    {"kernel_size": 1, "dilation_rate": 2},
])
def test_other_convs_are_keras_own(kwargs):
    kernel_size = kwargs.pop("kernel_size")
    ours, theirs, x = _pair(kernel_size, True, **kwargs)
    assert not ours._is_pointwise()  # noqa: SLF001
    np.testing.assert_array_equal(ours(x), theirs(x))


def test_same_config_and_weight_names_as_keras():
    ours, theirs, _ = _pair(1, True)
    assert ours.get_config() == theirs.get_config()
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert keras.layers.deserialize(keras.layers.serialize(ours)).__class__ is Conv2D


def test_bfloat16_pointwise_is_within_rounding_of_float32():
    rng = np.random.default_rng(2)
    layer = Conv2D(64, 1, dtype="mixed_bfloat16")
    x = rng.normal(size=(2, 8, 8, 64)).astype("float32")
    layer.build(x.shape)
    y = layer(x)
    assert y.dtype == tf.bfloat16 and layer.kernel.dtype == "float32"
    expected = x.reshape(-1, 64) @ layer.kernel.numpy()[0, 0] + layer.bias.numpy()
    error = np.abs(tf.cast(y, tf.float32).numpy().reshape(-1, 64) - expected)
    assert error.max() < 0.05 * np.abs(expected).max()

"""The AutoGAN discriminator: parameter count, shapes, block structure, spectral norm."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.discriminator import DisBlock, Discriminator, OptimizedDisBlock

DF = 8


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def _sigma(kernel):
    kernel = np.asarray(kernel)
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


def _sn_layers(model):
    return [l for l in model._flatten_layers() if isinstance(l, keras.layers.SpectralNormalization)]


def test_full_size_parameter_count_matches_the_paper():
    d = Discriminator(df=128)
    count = _count(d.trainable_variables)
    assert abs(count - 1.05e6) / 1.05e6 < 0.01
    # 151,680 + 311,680 + 2 * 295,168 + 128 (linear, no bias).
    assert count == 1_053_824
    # Only the spectral-norm u vectors are non-trainable (one [1, 128] per conv, [1, 1] for the linear).
    assert _count(d.non_trainable_variables) == 10 * 128 + 1


def test_every_conv_and_the_linear_are_spectrally_normalized():
    d = Discriminator(df=DF)
    wrapped = {id(l.layer) for l in _sn_layers(d)}
    convs = [l for l in d._flatten_layers() if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    # block1: 3 convs, block2: 2 + shortcut, block3 and block4: 2 each (identity shortcut), linear.
    assert len(convs) == 11
    assert all(id(l) in wrapped for l in convs)
    assert d.block2.shortcut is not None
    assert d.block3.shortcut is None and d.block4.shortcut is None


@pytest.mark.parametrize("side", [32, 48])
def test_output_shape(side):
    d = Discriminator(df=DF)
    images = np.random.uniform(-1, 1, (3, side, side, 3)).astype("float32")
    logits = d(images, training=True)
    assert tuple(logits.shape) == (3, 1)
    assert np.isfinite(np.asarray(logits)).all()


def _conv(x, sn_layer):
    conv = sn_layer.layer
    return tf.nn.conv2d(x, conv.kernel, 1, "SAME") + conv.bias


def _pool(x):
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


def test_blocks_match_a_hand_written_reference():
    x = tf.random.normal((2, 8, 8, 3), seed=4)
    first = OptimizedDisBlock(DF)
    first.build(x.shape)
    # Optimized block: conv, ReLU, conv, pool; shortcut: pool THEN 1x1 conv.
    expected = _pool(_conv(tf.nn.relu(_conv(x, first.conv1)), first.conv2)) + _conv(_pool(x), first.shortcut)
    np.testing.assert_allclose(np.asarray(first(x)), np.asarray(expected), atol=1e-5)

    h = tf.random.normal((2, 8, 8, DF), seed=5)
    down = DisBlock(DF, downsample=True)
    down.build(h.shape)
    # Down block: ReLU, conv, ReLU, conv, pool; shortcut: 1x1 conv THEN pool.
    residual = _pool(_conv(tf.nn.relu(_conv(tf.nn.relu(h), down.conv1)), down.conv2))
    expected = residual + _pool(_conv(h, down.shortcut))
    np.testing.assert_allclose(np.asarray(down(h)), np.asarray(expected), atol=1e-5)

    plain = DisBlock(DF)
    plain.build(h.shape)
    residual = _conv(tf.nn.relu(_conv(tf.nn.relu(h), plain.conv1)), plain.conv2)
    np.testing.assert_allclose(np.asarray(plain(h)), np.asarray(residual + h), atol=1e-5)


def test_head_is_relu_global_sum_and_linear():
    d = Discriminator(df=DF)
    images = tf.random.uniform((2, 16, 16, 3), -1, 1, seed=6)
    h = images
    for block in (d.block1, d.block2, d.block3, d.block4):
        h = block(h)
    expected = tf.reduce_sum(tf.nn.relu(h), axis=[1, 2]) @ d.linear.layer.kernel
    np.testing.assert_allclose(np.asarray(d(images)), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_spectral_norm_drives_every_kernel_to_unit_spectral_norm():
    d = Discriminator(df=DF)
    images = np.random.uniform(-1, 1, (2, 8, 8, 3)).astype("float32")
    layers = _sn_layers(d)
    before = [np.asarray(l.kernel).copy() for l in layers]
    d(images, training=False)  # inference leaves the kernels alone
    assert all(np.array_equal(b, np.asarray(l.kernel)) for b, l in zip(before, layers))
    assert max(_sigma(b) for b in before) > 1.2
    for _ in range(30):
        d(images, training=True)
    sigmas = [_sigma(l.kernel) for l in layers]
    np.testing.assert_allclose(sigmas, 1.0, atol=0.05)


def test_config_round_trip():
    d = Discriminator(df=DF, name="d")
    clone = Discriminator.from_config(d.get_config())
    assert clone.get_config() == d.get_config()
    clone.set_weights(d.get_weights())
    images = np.random.uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(clone(images)), np.asarray(d(images)), atol=1e-5)

"""The AutoGAN discriminator: parameter count, shapes, block structure, spectral norm."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.space.discriminator import DisBlock, Discriminator, OptimizedDisBlock
from alphagan_tf.gan.space.spectral_norm import SpectralConv2D, SpectralDense

DF = 8
BOTH = pytest.mark.parametrize("spectral_norm", ["reference", "keras"])


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def _sigma(kernel):
    kernel = np.asarray(kernel)
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


def _sn_layers(model):
    kinds = (SpectralConv2D, SpectralDense, keras.layers.SpectralNormalization)
    return [l for l in model._flatten_layers() if isinstance(l, kinds)]


def _inference_weights(sn_layer):
    """(kernel, bias) the layer applies in a training=False call."""
    if isinstance(sn_layer, keras.layers.SpectralNormalization):
        return sn_layer.layer.kernel, sn_layer.layer.bias
    return sn_layer.normalized_kernel(training=False), sn_layer.bias


@BOTH
def test_full_size_parameter_count_matches_the_paper(spectral_norm):
    d = Discriminator(df=128, spectral_norm=spectral_norm)
    count = _count(d.trainable_variables)
    assert abs(count - 1.05e6) / 1.05e6 < 0.01
    # 151,680 + 311,680 + 2 * 295,168 + 128 (linear, no bias).
    assert count == 1_053_824
    # Only the spectral-norm vectors are non-trainable: u [1, 128] per conv and [1, 1] for the
    # linear; the reference semantics also keep v [1, fan_in] (PyTorch's weight_v).
    u_count = 10 * 128 + 1
    v_count = (27 + 1152 + 3) + (1152 + 1152 + 128) + 2 * 1152 + 2 * 1152 + 128
    expected = u_count + (v_count if spectral_norm == "reference" else 0)
    assert _count(d.non_trainable_variables) == expected


@BOTH
def test_every_conv_and_the_linear_are_spectrally_normalized(spectral_norm):
    d = Discriminator(df=DF, spectral_norm=spectral_norm)
    # block1: 3 convs, block2: 2 + shortcut, block3 and block4: 2 each (identity shortcut), linear.
    assert len(_sn_layers(d)) == 11
    plain = [
        l for l in d._flatten_layers()
        if type(l) in (keras.layers.Conv2D, keras.layers.Dense)
    ]
    wrapped = {id(l.layer) for l in _sn_layers(d) if hasattr(l, "layer")}
    assert all(id(l) in wrapped for l in plain)  # plain layers only inside wrappers
    assert d.block2.shortcut is not None
    assert d.block3.shortcut is None and d.block4.shortcut is None


def test_reference_spectral_norm_makes_the_output_scale_invariant():
    # W / sigma(W) does not change when W is scaled: true only if every layer is normalized.
    d = Discriminator(df=DF)
    images = np.random.uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    before = np.asarray(d(images, training=False))
    for layer in _sn_layers(d):
        layer.kernel.assign(layer.kernel * 3.0)
    np.testing.assert_allclose(np.asarray(d(images, training=False)), before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("side", [32, 48])
def test_output_shape(side):
    d = Discriminator(df=DF)
    images = np.random.uniform(-1, 1, (3, side, side, 3)).astype("float32")
    logits = d(images, training=True)
    assert tuple(logits.shape) == (3, 1)
    assert np.isfinite(np.asarray(logits)).all()


def _conv(x, sn_layer):
    kernel, bias = _inference_weights(sn_layer)
    return tf.nn.conv2d(x, kernel, 1, "SAME") + bias


def _pool(x):
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


@BOTH
def test_blocks_match_a_hand_written_reference(spectral_norm):
    x = tf.random.normal((2, 8, 8, 3), seed=4)
    first = OptimizedDisBlock(DF, spectral_norm=spectral_norm)
    first.build(x.shape)
    # Optimized block: conv, ReLU, conv, pool; shortcut: pool THEN 1x1 conv.
    expected = _pool(_conv(tf.nn.relu(_conv(x, first.conv1)), first.conv2)) + _conv(_pool(x), first.shortcut)
    np.testing.assert_allclose(np.asarray(first(x)), np.asarray(expected), atol=1e-5)

    h = tf.random.normal((2, 8, 8, DF), seed=5)
    down = DisBlock(DF, downsample=True, spectral_norm=spectral_norm)
    down.build(h.shape)
    # Down block: ReLU, conv, ReLU, conv, pool; shortcut: 1x1 conv THEN pool.
    residual = _pool(_conv(tf.nn.relu(_conv(tf.nn.relu(h), down.conv1)), down.conv2))
    expected = residual + _pool(_conv(h, down.shortcut))
    np.testing.assert_allclose(np.asarray(down(h)), np.asarray(expected), atol=1e-5)

    plain = DisBlock(DF, spectral_norm=spectral_norm)
    plain.build(h.shape)
    residual = _conv(tf.nn.relu(_conv(tf.nn.relu(h), plain.conv1)), plain.conv2)
    np.testing.assert_allclose(np.asarray(plain(h)), np.asarray(residual + h), atol=1e-5)


def test_head_is_relu_global_sum_and_linear():
    d = Discriminator(df=DF)
    images = tf.random.uniform((2, 16, 16, 3), -1, 1, seed=6)
    h = images
    for block in (d.block1, d.block2, d.block3, d.block4):
        h = block(h)
    kernel, _ = _inference_weights(d.linear)
    expected = tf.reduce_sum(tf.nn.relu(h), axis=[1, 2]) @ kernel
    np.testing.assert_allclose(np.asarray(d(images)), np.asarray(expected), rtol=1e-5, atol=1e-5)


@BOTH
def test_power_iteration_converges_to_unit_spectral_norm(spectral_norm):
    d = Discriminator(df=DF, spectral_norm=spectral_norm)
    images = np.random.uniform(-1, 1, (2, 8, 8, 3)).astype("float32")
    layers = _sn_layers(d)
    raw = [np.asarray(l.kernel).copy() for l in layers]
    state = [np.asarray(v).copy() for v in d.non_trainable_variables]
    d(images, training=False)  # inference changes no state
    assert all(np.array_equal(a, np.asarray(v)) for a, v in zip(state, d.non_trainable_variables))
    assert max(_sigma(k) for k in raw) > 1.2
    for _ in range(30):
        d(images, training=True)
    sigmas = [_sigma(_inference_weights(l)[0]) for l in layers]
    np.testing.assert_allclose(sigmas, 1.0, atol=0.05)
    kept = all(np.array_equal(k, np.asarray(l.kernel)) for k, l in zip(raw, layers))
    # The reference keeps the raw W; Keras' wrapper overwrites it with W / sigma.
    assert kept == (spectral_norm == "reference")


def test_gradients_reach_every_weight():
    d = Discriminator(df=DF)
    images = tf.random.uniform((2, 16, 16, 3), -1, 1, seed=7)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(d(images, training=True))
    grads = tape.gradient(loss, d.trainable_variables)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@BOTH
def test_config_round_trip(spectral_norm):
    d = Discriminator(df=DF, spectral_norm=spectral_norm, name="d")
    clone = Discriminator.from_config(d.get_config())
    assert clone.get_config() == d.get_config()
    clone.set_weights(d.get_weights())
    images = np.random.uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(clone(images)), np.asarray(d(images)), atol=1e-5)


def test_unknown_spectral_norm_is_rejected():
    with pytest.raises(ValueError, match="spectral_norm must be one of"):
        Discriminator(df=DF, spectral_norm="pytorch")


def test_tf_checkpoint_saves_and_restores_every_variable(tmp_path):
    d = Discriminator(df=DF)
    d(np.random.uniform(-1, 1, (2, 16, 16, 3)).astype("float32"), training=True)  # u moves
    path = tf.train.Checkpoint(d=d).save(str(tmp_path / "ckpt"))
    saved = [n for n in tf.train.list_variables(path) if n[0].startswith("d/")]
    assert len(saved) == len(d.variables)
    restored = Discriminator(df=DF)
    tf.train.Checkpoint(d=restored).restore(path).assert_consumed()
    for a, b in zip(d.variables, restored.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

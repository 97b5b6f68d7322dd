"""gan/space/batch_norm.py: the fused training path computes what the unfused one does."""

import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.space.batch_norm import BatchNormalization
from alphagan_tf.gan.space.operations import batch_norm
from alphagan_tf.utils import precision


def _pair(affine: bool, shape, dtype_policy: str = "float32"):
    """Two batch norms with the same weights, the second forced onto the unfused path."""
    rng = np.random.default_rng(1)
    layers = []
    with precision.dtype_policy(dtype_policy):
        for _ in range(2):
            layer = batch_norm(affine)
            layer.build(shape)
            layers.append(layer)
    if affine:
        gamma, beta = rng.uniform(0.5, 2.0, shape[-1]), rng.uniform(-1.0, 1.0, shape[-1])
        for layer in layers:
            layer.gamma.assign(gamma.astype("float32"))
            layer.beta.assign(beta.astype("float32"))
    fused, unfused = layers
    unfused._fusable = lambda inputs: False  # noqa: SLF001 - the reference path
    return fused, unfused


def _training_step(layer, x, upstream, sources, affine, **call_kwargs):
    """(output, gradients of sum(output * upstream) w.r.t. sources [+ gamma, beta]) in training."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True, **call_kwargs)
        loss = tf.reduce_sum(y * upstream)
    return y, tape.gradient(loss, sources + ([layer.gamma, layer.beta] if affine else []))


@pytest.mark.parametrize("affine", [False, True])
def test_fused_training_step_equals_unfused_outputs_gradients_and_moving_statistics(affine):
    shape = (4, 6, 5, 8)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(1.5, 2.0, shape).astype("float32"))
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    fused, unfused = _pair(affine, shape)
    assert fused._fusable(x) and not unfused._fusable(x)  # noqa: SLF001

    (y_f, grads_f), (y_u, grads_u) = [
        _training_step(layer, x, upstream, [x], affine) for layer in (fused, unfused)
    ]
    np.testing.assert_allclose(y_f, y_u, atol=2e-6)
    # Batch statistics: every channel is normalized to mean beta, std gamma (biased variance).
    gamma = fused.gamma.numpy() if affine else np.ones(shape[-1])
    np.testing.assert_allclose(np.std(y_f, axis=(0, 1, 2)), gamma, rtol=1e-4)
    for g_f, g_u in zip(grads_f, grads_u):
        np.testing.assert_allclose(g_f, g_u, atol=5e-6)
    # PyTorch's moving statistics: momentum 0.1 towards the batch mean and the UNBIASED variance.
    x_np = x.numpy().astype("float64")
    n = shape[0] * shape[1] * shape[2]
    expected_var = 0.9 * 1.0 + 0.1 * x_np.var(axis=(0, 1, 2)) * n / (n - 1)
    expected_mean = 0.1 * x_np.mean(axis=(0, 1, 2))
    for layer in (fused, unfused):
        np.testing.assert_allclose(layer.moving_mean, expected_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance, expected_var, rtol=1e-5)


def test_fused_path_in_bfloat16_keeps_float32_statistics_and_matches_float32():
    shape = (8, 4, 4, 16)
    x32 = tf.constant(np.random.default_rng(2).normal(0.5, 3.0, shape).astype("float32"))
    fused, _ = _pair(True, shape, "bfloat16")
    reference, _ = _pair(True, shape)
    x16 = tf.cast(x32, tf.bfloat16)
    assert fused._fusable(x16)  # noqa: SLF001
    y16 = fused(x16, training=True)
    y32 = reference(tf.cast(x16, tf.float32), training=True)  # the same rounded input
    assert y16.dtype == tf.bfloat16
    assert fused.moving_mean.dtype == fused.moving_variance.dtype == "float32"
    # Statistics in float32: the moving ones equal float32's; the output differs by bf16 rounding.
    np.testing.assert_allclose(fused.moving_mean, reference.moving_mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fused.moving_variance, reference.moving_variance, rtol=1e-6)
    error = np.abs(tf.cast(y16, tf.float32).numpy() - y32.numpy())
    assert 0 < error.max() < 0.03  # bfloat16 keeps 8 bits: |y| < 4 rounds by <= 2^-7 * 4


def test_unfusable_inputs_take_the_unfused_path():
    layer = batch_norm(True)
    layer.build((4, 3))
    assert not layer._fusable(tf.zeros((4, 3)))  # noqa: SLF001 - 2-D
    layer4 = BatchNormalization(momentum=0.9, epsilon=1e-5, dtype="float64")
    layer4.build((2, 3, 3, 4))
    assert not layer4._fusable(tf.zeros((2, 3, 3, 4), tf.float64))  # noqa: SLF001 - parity tests
    y = layer4(tf.constant(np.arange(72.0).reshape(2, 3, 3, 4)), training=True)
    assert y.dtype == tf.float64
    np.testing.assert_allclose(np.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-12)


@pytest.mark.parametrize("affine", [False, True])
def test_output_scale_is_folded_into_the_fused_kernel_with_the_same_gradients(affine):
    # s * BN(x) on both paths: the fused one folds s into gamma / beta, the unfused one multiplies.
    shape = (4, 6, 5, 8)
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(0.5, 1.5, shape).astype("float32"))
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    fused, unfused = _pair(affine, shape)
    s = tf.Variable(0.37)
    (y_f, grads_f), (y_u, grads_u) = [
        _training_step(layer, x, upstream, [x, s], affine, output_scale=s)
        for layer in (fused, unfused)
    ]
    np.testing.assert_allclose(y_f, y_u, atol=2e-6)
    unscaled = fused(x, training=True)
    np.testing.assert_allclose(y_f, 0.37 * unscaled.numpy(), rtol=1e-5, atol=1e-6)
    # d loss / d s = sum(upstream * BN(x)), by hand from the unscaled output.
    expected_ds = float(tf.reduce_sum(upstream * unscaled))
    assert abs(expected_ds) > 1.0
    for g_f, g_u in zip(grads_f, grads_u):
        np.testing.assert_allclose(g_f, g_u, rtol=1e-5, atol=5e-6)
    assert float(grads_f[1]) == pytest.approx(expected_ds, rel=1e-5)
    # Inference (moving statistics) multiplies too.
    np.testing.assert_allclose(fused(x, training=False, output_scale=s),
                               0.37 * fused(x, training=False).numpy(), rtol=1e-6)

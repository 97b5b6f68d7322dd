"""Candidate operations: shapes, parameter counts, op order, serialization, MixedOp."""

import contextlib

import keras
import numpy as np
import pytest

from alphagan_tf.gan.space import operations
from alphagan_tf.gan.space.operations import (
    NORMAL_OPS,
    UP_OPS,
    ReLUConv,
    SepConv,
    TransposedConvUp,
    make_normal_op,
    make_up_op,
)
from alphagan_tf.nas.mixed_op import MixedOp

C = 8


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@contextlib.contextmanager
def _float64_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _built(layer, shape):
    layer.build(shape)
    return layer


def test_registry_names_are_the_genotype_names():
    assert tuple(operations.NORMAL_OP_FACTORIES) == NORMAL_OPS
    assert tuple(operations.UP_OP_FACTORIES) == UP_OPS
    assert NORMAL_OPS == (
        "conv_1x1", "conv_3x3", "conv_5x5", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"
    )
    assert UP_OPS == ("deconv", "nearest", "bilinear")


@pytest.mark.parametrize(
    "name, expected",
    [
        # ReLU + conv with bias: k*k*C*C + C.
        ("conv_1x1", 1 * C * C + C),
        ("conv_3x3", 9 * C * C + C),
        ("conv_5x5", 25 * C * C + C),
        # Two halves of depthwise k*k*C + pointwise C*C, no bias, BN without affine.
        ("sep_conv_3x3", 2 * (9 * C + C * C)),
        ("sep_conv_5x5", 2 * (25 * C + C * C)),
        ("sep_conv_7x7", 2 * (49 * C + C * C)),
    ],
)
def test_normal_op_shapes_and_parameter_counts(name, expected):
    op = _built(make_normal_op(name, C, affine=False), (None, 6, 6, C))
    assert _count(op.trainable_variables) == expected
    y = op(np.random.randn(2, 6, 6, C).astype("float32"), training=True)
    assert tuple(y.shape) == (2, 6, 6, C)


def test_sep_conv_affine_adds_gamma_and_beta_only():
    plain = _built(make_normal_op("sep_conv_3x3", C, affine=False), (None, 6, 6, C))
    affine = _built(make_normal_op("sep_conv_3x3", C, affine=True), (None, 6, 6, C))
    assert _count(affine.trainable_variables) - _count(plain.trainable_variables) == 2 * 2 * C
    assert all(not bn.center and not bn.scale for bn in plain.norms)
    assert all(bn.center and bn.scale for bn in affine.norms)
    # PyTorch's batch-norm defaults (momentum 0.1, eps 1e-5).
    assert affine.norms[0].momentum == pytest.approx(0.9)
    assert affine.norms[0].epsilon == pytest.approx(1e-5)


def test_conv_applies_relu_before_the_conv():
    op = _built(make_normal_op("conv_3x3", C), (None, 5, 5, C))
    op.conv.bias.assign(np.arange(C, dtype="float32"))
    negative = -np.abs(np.random.randn(1, 5, 5, C)).astype("float32") - 0.1
    y = np.asarray(op(negative))
    np.testing.assert_allclose(y, np.broadcast_to(np.arange(C), y.shape), atol=1e-6)


def test_sep_conv_matches_a_hand_composed_reference():
    op = _built(SepConv(C, 3, affine=False), (None, 5, 5, C))
    x = np.random.randn(2, 5, 5, C).astype("float32")
    h = x
    for dw, pw in zip(op.depthwise, op.pointwise):
        h = keras.ops.relu(h)
        h = keras.ops.depthwise_conv(h, dw.kernel, padding="same")
        h = keras.ops.conv(h, pw.kernel, padding="same")
        mean = keras.ops.mean(h, axis=(0, 1, 2))
        var = keras.ops.var(h, axis=(0, 1, 2))
        h = (h - mean) / keras.ops.sqrt(var + 1e-5)
    np.testing.assert_allclose(np.asarray(op(x, training=True)), np.asarray(h), atol=1e-4)


def test_conv_kernels_use_glorot_uniform():
    op = make_normal_op("sep_conv_5x5", C)
    assert isinstance(op.depthwise[0].depthwise_initializer, keras.initializers.GlorotUniform)
    assert isinstance(op.pointwise[0].kernel_initializer, keras.initializers.GlorotUniform)
    assert isinstance(make_normal_op("conv_3x3", C).conv.kernel_initializer, keras.initializers.GlorotUniform)
    assert isinstance(make_up_op("deconv", C, 2).deconv.kernel_initializer, keras.initializers.GlorotUniform)


@pytest.mark.parametrize("name", UP_OPS)
@pytest.mark.parametrize("scale", [2, 4])
def test_up_op_shapes(name, scale):
    op = _built(make_up_op(name, C, scale), (None, 3, 3, C))
    y = op(np.random.randn(2, 3, 3, C).astype("float32"))
    assert tuple(y.shape) == (2, 3 * scale, 3 * scale, C)


def test_deconv_x4_is_one_transposed_conv_applied_twice():
    up4 = _built(make_up_op("deconv", C, 4), (None, 3, 3, C))
    up2 = _built(make_up_op("deconv", C, 2), (None, 3, 3, C))
    # One kernel [2, 2, C, C] and one bias: the same as at x2.
    assert _count(up4.trainable_variables) == _count(up2.trainable_variables) == 4 * C * C + C
    up2.set_weights(up4.get_weights())
    x = np.random.randn(2, 3, 3, C).astype("float32")
    np.testing.assert_allclose(np.asarray(up4(x)), np.asarray(up2(up2(x))), atol=1e-5)


def test_nearest_and_bilinear_values():
    x = np.array([0.0, 1.0], dtype="float32").reshape(1, 1, 2, 1)
    x = np.repeat(x, 2, axis=1)  # [1, 2, 2, 1], rows [0, 1]
    nearest = np.asarray(make_up_op("nearest", 1, 2)(x))[0, 0, :, 0]
    bilinear = np.asarray(make_up_op("bilinear", 1, 2)(x))[0, 0, :, 0]
    np.testing.assert_allclose(nearest, [0, 0, 1, 1])
    # Half-pixel centres (PyTorch align_corners=False): 0, 0.25, 0.75, 1.
    np.testing.assert_allclose(bilinear, [0, 0.25, 0.75, 1], atol=1e-6)


@pytest.mark.parametrize("height, width", [(2, 2), (3, 5), (4, 4), (1, 3)])
def test_bilinear_adjoint_equals_tensorflows_gradient_and_resize(height, width):
    import tensorflow as tf

    from alphagan_tf.gan.space import operations

    rng = np.random.default_rng(height * 10 + width)
    x = tf.constant(rng.normal(size=(2, height, width, 3)))  # float64
    upstream = tf.constant(rng.normal(size=(2, 2 * height, 2 * width, 3)))

    def plain(t):  # TensorFlow differentiates the slices itself
        return operations._bilinear2x(operations._bilinear2x(t, 1), 2)  # noqa: SLF001

    results = []
    for fn in (lambda t: operations.upsample2x(t, "bilinear"), plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * upstream)
        results.append((y.numpy(), tape.gradient(loss, x).numpy()))
    (y, dx), (y_plain, dx_plain) = results
    np.testing.assert_allclose(y, y_plain, rtol=0, atol=1e-14)
    np.testing.assert_allclose(dx, dx_plain, rtol=0, atol=1e-12)
    resized = tf.image.resize(x, [2 * height, 2 * width], method="bilinear").numpy()
    np.testing.assert_allclose(y, resized, atol=1e-5)  # resize computes in float32


def test_unknown_names_and_bad_scales_are_rejected():
    with pytest.raises(ValueError, match="Unknown normal op 'conv_9x9'"):
        make_normal_op("conv_9x9", C)
    with pytest.raises(ValueError, match="Unknown up op 'conv_3x3'"):
        make_up_op("conv_3x3", C, 2)
    with pytest.raises(ValueError, match="scale=3"):
        make_up_op("nearest", C, 3)
    with pytest.raises(ValueError, match="power of two"):
        TransposedConvUp(C, 6)


@pytest.mark.parametrize(
    "layer",
    [ReLUConv(C, 3), SepConv(C, 5, affine=False), SepConv(C, 7, affine=True), TransposedConvUp(C, 4)],
    ids=["relu_conv", "sep_conv", "sep_conv_affine", "deconv"],
)
def test_op_config_round_trip(layer):
    x = np.random.randn(2, 4, 4, C).astype("float32")
    y = layer(x, training=False)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    assert clone.built  # Keras rebuilds from the serialized build config
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x, training=False)), np.asarray(y), atol=1e-6)


def test_mixed_op_of_normal_candidates_round_trip_and_weighting():
    mixed = MixedOp([make_normal_op(n, C, affine=False) for n in NORMAL_OPS], NORMAL_OPS)
    mixed.build((None, 4, 4, C))
    assert tuple(mixed.alpha.shape) == (6,)
    assert np.abs(np.asarray(mixed.alpha)).max() < 1e-2  # 1e-3 * N(0, 1)
    x = np.random.randn(2, 4, 4, C).astype("float32")
    alpha = np.array([0.3, -1.0, 2.0, 0.0, 0.5, -0.2], dtype="float32")
    mixed.alpha.assign(alpha)
    w = np.exp(alpha) / np.exp(alpha).sum()
    expected = sum(w[i] * np.asarray(op(x, training=False)) for i, op in enumerate(mixed.candidates))
    y = np.asarray(mixed(x, training=False))
    np.testing.assert_allclose(y, expected, atol=1e-5)

    clone = MixedOp.from_config(mixed.get_config())
    assert clone.op_names == list(NORMAL_OPS)
    assert [type(c) for c in clone.candidates] == [type(c) for c in mixed.candidates]
    if not clone.built:
        clone.build((None, 4, 4, C))
    clone.set_weights(mixed.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x, training=False)), y, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_up_ops_apply_a_mixed_op_weight_themselves_with_the_same_gradients(scale):
    # output_scale s: folded into the (last) deconv's kernel and bias, or applied to the
    # interpolations' smaller input; s * op(x) either way, with the same gradients (float64).
    import tensorflow as tf

    rng = np.random.default_rng(scale)
    x = tf.constant(rng.normal(size=(2, 3, 4, C)))
    upstream = tf.constant(rng.normal(size=(2, 3 * scale, 4 * scale, C)))
    s = tf.Variable(0.3, dtype=tf.float64)
    for name in UP_OPS:
        with _float64_policy():
            op = _built(make_up_op(name, C, scale), (None, 3, 4, C))
        assert op.accepts_output_scale
        results = []
        for scaled in (True, False):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = op(x, output_scale=s) if scaled else s * op(x)
                loss = tf.reduce_sum(upstream * y)
            results.append((y, tape.gradient(loss, [x, s, *op.trainable_variables])))
        (y_a, g_a), (y_b, g_b) = results
        assert y_a.dtype == tf.float64
        np.testing.assert_allclose(y_a, y_b, rtol=1e-12, atol=1e-12, err_msg=name)
        for a, b in zip(g_a, g_b):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)
        assert abs(float(g_a[1])) > 1e-3


def test_mixed_op_of_up_candidates_weights_by_softmax():
    mixed = MixedOp([make_up_op(n, C, 2) for n in UP_OPS], UP_OPS)
    mixed.build((None, 3, 3, C))
    alpha = np.array([0.4, -1.0, 1.5], dtype="float32")
    mixed.alpha.assign(alpha)
    w = np.exp(alpha) / np.exp(alpha).sum()
    x = np.random.randn(2, 3, 3, C).astype("float32")
    expected = sum(w[i] * np.asarray(op(x)) for i, op in enumerate(mixed.candidates))
    np.testing.assert_allclose(np.asarray(mixed(x)), expected, rtol=1e-5, atol=1e-5)


def test_mixed_op_candidates_are_in_tf_checkpoints(tmp_path):
    import tensorflow as tf

    mixed = MixedOp([make_normal_op(n, C, affine=False) for n in NORMAL_OPS], NORMAL_OPS)
    mixed.build((None, 4, 4, C))
    path = tf.train.Checkpoint(op=mixed).save(str(tmp_path / "ckpt"))
    saved = [n for n in tf.train.list_variables(path) if n[0].startswith("op/")]
    # alpha + every candidate's variables (sep convs: 2 halves of dw, pw, 2 BN stats).
    assert len(saved) == len(mixed.variables) == 1 + 3 * 2 + 3 * 2 * 4

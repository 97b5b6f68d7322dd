"""The masked TextNAS operations: padding never changes what real tokens see."""

import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.textnas.space.architecture import OPS
from alphagan_tf.textnas.space.layers import MaskedBatchNorm
from alphagan_tf.textnas.space.operations import make_op

LENGTHS = [5, 16, 11]
UNITS = 8


def _padded_pair(seed=0):
    """The same real tokens padded to 16 with zeros and to 32 with garbage."""
    rng = np.random.default_rng(seed)
    x32 = rng.normal(size=(3, 32, UNITS)).astype(np.float32) * 3.0  # garbage everywhere
    mask32 = np.zeros((3, 32), bool)
    for r, n in enumerate(LENGTHS):
        mask32[r, :n] = True
    x16 = np.where(mask32[:, :16, None], x32[:, :16], 0.0).astype(np.float32)
    return x16, mask32[:, :16], x32, mask32


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("training", [False, True])
def test_padding_does_not_change_real_tokens(name, training):
    op = make_op(name, UNITS)
    x16, m16, x32, m32 = _padded_pair()
    y16 = op(x16, mask=m16, training=training).numpy()
    y32 = op(x32, mask=m32, training=training).numpy()
    assert y16.shape == (3, 16, UNITS) and y32.shape == (3, 32, UNITS)
    np.testing.assert_allclose(y32[:, :16][m16], y16[m16], rtol=1e-5, atol=1e-5)
    # Output is zero at padding, and the op is not trivially zero on real tokens.
    assert np.all(y32[~m32] == 0.0) and np.all(y16[~m16] == 0.0)
    assert np.abs(y16[m16]).max() > 1e-3


def test_avg_pool_ignores_padding():
    op = make_op("avg_pool_3", 1)
    x = np.array([[1.0, 2.0, 3.0, 100.0]], np.float32)[..., None]
    mask = np.array([[True, True, True, False]])
    y = op(x, mask=mask).numpy()[0, :, 0]
    np.testing.assert_allclose(y, [1.5, 2.0, 2.5, 0.0])


def test_max_pool_padding_never_wins():
    op = make_op("max_pool_3", 1)
    x = np.array([[-1.0, -2.0, -3.0, 0.0]], np.float32)[..., None]  # padding 0 > every real value
    mask = np.array([[True, True, True, False]])
    y = op(x, mask=mask).numpy()[0, :, 0]
    np.testing.assert_allclose(y, [-1.0, -1.0, -2.0, 0.0])


def test_masked_batch_norm_uses_real_token_moments():
    bn = MaskedBatchNorm(epsilon=1e-3, momentum=0.5)
    x16, m16, x32, m32 = _padded_pair()
    y = bn(x32, mask=m32, training=True).numpy()
    real = x32[m32]  # [num_real, C]
    expected = (real - real.mean(0)) / np.sqrt(real.var(0) + 1e-3)
    np.testing.assert_allclose(y[m32], expected, rtol=1e-4, atol=1e-4)
    # Moving averages moved halfway (momentum 0.5) towards the real-token moments.
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.5 * real.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.5 + 0.5 * real.var(0), rtol=1e-4)


def _numpy_gru(x, kernel, recurrent, bias, recurrent_bias):
    h = np.zeros(recurrent.shape[0])
    out = []
    for t in range(len(x)):
        gx = x[t] @ kernel + bias
        gh = h @ recurrent + recurrent_bias
        xz, xr, xn = np.split(gx, 3)
        hz, hr, hn = np.split(gh, 3)
        z = 1 / (1 + np.exp(-(xz + hz)))
        r = 1 / (1 + np.exp(-(xr + hr)))
        n = np.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out)


def test_bi_gru_matches_reference_on_real_tokens():
    op = make_op("bi_gru", UNITS)
    x16, m16, x32, m32 = _padded_pair()
    y = op(x32, mask=m32).numpy()
    w = [v.numpy().astype(np.float64) for v in (op.kernel, op.recurrent_kernel, op.bias, op.recurrent_bias)]
    for r, n in enumerate(LENGTHS):
        seq = x32[r, :n].astype(np.float64)
        forward = _numpy_gru(seq, w[0][0], w[1][0], w[2][0], w[3][0])
        backward = _numpy_gru(seq[::-1], w[0][1], w[1][1], w[2][1], w[3][1])[::-1]
        np.testing.assert_allclose(y[r, :n], forward + backward, rtol=1e-4, atol=1e-5)


def test_self_attention_matches_reference_on_real_tokens():
    op = make_op("self_attention", UNITS)
    x16, m16, x32, m32 = _padded_pair()
    y = op(x32, mask=m32).numpy()
    wqkv, bqkv = op.qkv_kernel.numpy(), op.qkv_bias.numpy()
    wo, bo = op.output_kernel.numpy(), op.output_bias.numpy()
    heads, depth = 4, UNITS // 4
    for r, n in enumerate(LENGTHS):
        q, k, v = np.split(x32[r, :n] @ wqkv + bqkv, 3, axis=-1)
        context = []
        for h in range(heads):
            sl = slice(h * depth, (h + 1) * depth)
            s = q[:, sl] @ k[:, sl].T / np.sqrt(depth)
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            context.append(p @ v[:, sl])
        expected = np.concatenate(context, -1) @ wo + bo
        np.testing.assert_allclose(y[r, :n], expected, rtol=1e-4, atol=1e-5)


def test_ops_in_a_compiled_function_with_dynamic_length():
    op = make_op("bi_gru", UNITS)
    fn = tf.function(lambda x, m: op(x, mask=m),
                     input_signature=[tf.TensorSpec([None, None, UNITS]), tf.TensorSpec([None, None], tf.bool)])
    x16, m16, x32, m32 = _padded_pair()
    np.testing.assert_allclose(fn(x32, m32).numpy()[:, :16][m16], fn(x16, m16).numpy()[m16], atol=1e-5)


def test_unknown_op_and_bad_sizes():
    with pytest.raises(ValueError, match="op must be one of"):
        make_op("conv_2", 8)
    with pytest.raises(ValueError, match="divisible by num_heads=4"):
        make_op("self_attention", 6)

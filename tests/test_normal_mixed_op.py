"""The fused normal edge computes exactly the unfused mixed op (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.space import operations
from alphagan_tf.gan.space.genotypes import NORMAL_OPS
from alphagan_tf.gan.space.normal_mixed_op import NormalMixedOp, pad_kernel


@pytest.fixture()
def float64():
    # Keras caches the global dtype policy: restore both it and floatx.
    previous_floatx, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(previous_floatx)
    keras.config.set_dtype_policy(previous_policy)


def make_edge(fuse: bool) -> NormalMixedOp:
    candidates = [operations.make_normal_op(n, 6, affine=False) for n in NORMAL_OPS]
    edge = NormalMixedOp(candidates, NORMAL_OPS, fuse_convs=fuse)
    edge.build((3, 5, 5, 6))
    return edge


def test_pad_kernel_centres_and_keeps_the_same_padded_output(float64):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 7, 7, 3)))
    k3 = tf.constant(rng.normal(size=(3, 3, 3, 4)))
    k5 = pad_kernel(k3, 5)
    assert k5.shape == (5, 5, 3, 4)
    np.testing.assert_array_equal(k5[1:4, 1:4].numpy(), k3.numpy())
    assert float(tf.reduce_sum(tf.abs(k5)) - tf.reduce_sum(tf.abs(k3))) == pytest.approx(0.0)
    np.testing.assert_allclose(tf.nn.conv2d(x, k5, 1, "SAME"), tf.nn.conv2d(x, k3, 1, "SAME"),
                               atol=1e-12)
    with pytest.raises(ValueError, match="Cannot centre a 3x3 kernel in 4x4"):
        pad_kernel(k3, 4)


def test_fused_edge_equals_the_sum_of_its_candidates_with_the_same_gradients(float64):
    fused, plain = make_edge(True), make_edge(False)
    for source, target in zip(fused.variables, plain.variables):
        target.assign(source)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=len(NORMAL_OPS))
    fused.alpha.assign(logits)
    plain.alpha.assign(logits)
    x = tf.constant(rng.normal(size=(3, 5, 5, 6)))
    with tf.GradientTape(persistent=True) as tape:
        y_fused = fused(x, training=True)
        y_plain = plain(x, training=True)
        loss_fused = tf.reduce_sum(tf.sin(y_fused))
        loss_plain = tf.reduce_sum(tf.sin(y_plain))
    np.testing.assert_allclose(y_fused, y_plain, rtol=0, atol=1e-12)
    # By hand: softmax(alpha)-weighted sum of each candidate run on its own.
    w = np.exp(logits) / np.exp(logits).sum()
    by_hand = sum(w[i] * c(x, training=True).numpy() for i, c in enumerate(plain.candidates))
    np.testing.assert_allclose(y_fused, by_hand, rtol=0, atol=1e-12)
    grads_fused = tape.gradient(loss_fused, fused.trainable_variables)
    grads_plain = tape.gradient(loss_plain, plain.trainable_variables)
    assert len(grads_fused) == len(grads_plain) == len(fused.trainable_variables)
    for a, b, v in zip(grads_fused, grads_plain, fused.trainable_variables):
        assert a is not None, v.path
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=v.path)
    assert np.abs(grads_fused[0].numpy()).max() > 1e-6  # alpha gets a real gradient


def test_config_round_trip_keeps_fusion():
    edge = make_edge(False)
    clone = NormalMixedOp.from_config(edge.get_config())
    assert clone.fuse_convs is False and clone.op_names == list(NORMAL_OPS)


def test_fused_edge_in_float32_shares_the_relu_and_folds_weights_into_batch_norm():
    # float32 takes the fused batch-norm kernel, where the sep convs' weights are folded into
    # their last batch norm: same output and gradients as the weighted sum written out by hand,
    # with one ReLU for the six candidates' inputs (plus one inside each sep conv) instead of 9.
    fused, plain = make_edge(True), make_edge(False)
    for source, target in zip(fused.variables, plain.variables):
        target.assign(source)
    rng = np.random.default_rng(2)
    logits = rng.normal(size=len(NORMAL_OPS)).astype("float32")
    fused.alpha.assign(logits)
    plain.alpha.assign(logits)
    x = tf.constant(rng.normal(size=(3, 5, 5, 6)).astype("float32"))

    def by_hand(t, training):
        w = tf.nn.softmax(plain.alpha)
        return tf.add_n([w[i] * c(t, training=training) for i, c in enumerate(plain.candidates)])

    results = []
    for edge in (fused, plain, by_hand):
        with tf.GradientTape() as tape:
            y = edge(x, training=True)
            loss = tf.reduce_sum(tf.sin(y))
        variables = (plain if edge is by_hand else edge).trainable_variables
        results.append((y, tape.gradient(loss, variables)))
    (y_f, g_f), (y_p, g_p), (y_h, g_h) = results
    for y, grads in ((y_f, g_f), (y_p, g_p)):  # plain folds its sep convs' weights too
        np.testing.assert_allclose(y, y_h, rtol=1e-5, atol=1e-5)
        for a, b, v in zip(grads, g_h, fused.trainable_variables):
            # float32 sums in another order: 1e-4 of the tensor's largest entry (on an AMD Zen 3
            # host one entry of a 5x5 depthwise kernel's gradient was 1.3e-5 off of 0.5).
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max(),
                                       err_msg=v.path)
    assert np.abs(g_f[0].numpy()).max() > 1e-4  # alpha gets a real gradient

    def relus(edge):
        graph = tf.function(lambda t: edge(t, training=True)).get_concrete_function(x).graph
        return sum(op.type == "Relu" for op in graph.get_operations())

    assert (relus(fused), relus(plain)) == (4, 9)

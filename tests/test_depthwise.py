"""The depthwise conv with its own gradients (per-example / batch-as-channels kernel gradient,
flipped-kernel input gradient) == TensorFlow's, in float64."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.space.depthwise import (
    DepthwiseConv2D,
    depthwise_conv2d_same,
    depthwise_kernel_gradient,
)


def native(x, k):
    return tf.nn.depthwise_conv2d(x, k, strides=[1, 1, 1, 1], padding="SAME")


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_output_and_gradients_equal_tensorflows(kernel_size):
    rng = np.random.default_rng(kernel_size)
    x = tf.constant(rng.normal(size=(3, 6, 5, 4)))  # non-square maps, kernel wider than H
    k = tf.constant(rng.normal(size=(kernel_size, kernel_size, 4, 1)))
    weights = tf.constant(rng.normal(size=(3, 6, 5, 4)))  # a loss that is not a plain sum
    grads = []
    for fn in (native, depthwise_conv2d_same):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = fn(x, k)
            loss = tf.reduce_sum(weights * y**2)
        grads.append((y, *tape.gradient(loss, [x, k])))
    for ours, theirs in zip(grads[1], grads[0]):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-10)
    assert np.abs(grads[0][2].numpy()).max() > 1.0  # a real gradient was compared


def test_kernel_gradient_by_hand():
    # One channel, one example: dK[i, j] = sum_hw x_pad[h+i, w+j] * dy[h, w].
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    dy = np.ones((1, 3, 3, 1))
    dk = depthwise_kernel_gradient(tf.constant(x), tf.constant(dy), 5).numpy()[..., 0, 0]
    padded = np.pad(x[0, :, :, 0], 2)
    expected = np.array([[padded[i:i + 3, j:j + 3].sum() for j in range(5)] for i in range(5)])
    np.testing.assert_array_equal(dk, expected)
    # The centre tap sees every pixel; the corner taps see one corner pixel each.
    assert (dk[2, 2], dk[0, 0], dk[4, 4], dk[0, 4]) == (45.0, 1.0, 9.0, 3.0)


def test_kernel_gradient_with_unknown_batch_equals_the_per_example_one():
    # Traced with the batch unknown, the batch is merged into the channels instead.
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(4, 7, 6, 3)))
    dy = tf.constant(rng.normal(size=(4, 7, 6, 3)))
    spec = tf.TensorSpec([None, 7, 6, 3], tf.float64)
    merged = tf.function(lambda a, b: depthwise_kernel_gradient(a, b, 7), input_signature=[spec, spec])
    expected = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=x, filter_sizes=[7, 7, 3, 1], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME")
    for ours in (merged(x, dy), depthwise_kernel_gradient(x, dy, 7)):
        assert ours.shape == (7, 7, 3, 1)
        np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)
    assert "Transpose" in [op.type for op in merged.get_concrete_function().graph.get_operations()]


def test_bfloat16_kernel_gradient_is_summed_in_float32():
    # 3 examples whose per-example gradients are 1 + 2^-7 each (exact in bfloat16): their sum
    # 3 + 3 * 2^-7 needs 9 significant bits, one more than bfloat16 has; float32 holds it.
    x = tf.ones([3, 1, 1, 2], tf.bfloat16) * (1 + 2.0**-7)
    dy = tf.ones([3, 1, 1, 2], tf.bfloat16)
    dk = depthwise_kernel_gradient(x, dy, 5)
    assert dk.dtype == tf.float32
    assert float(dk[2, 2, 0, 0]) == 3 * (1 + 2.0**-7)
    assert float(tf.cast(3 * (1 + 2.0**-7), tf.bfloat16)) != 3 * (1 + 2.0**-7)
    assert float(dk[0, 0, 0, 0]) == 0.0  # a tap that sees only padding


def test_layer_is_keras_depthwise_conv_with_the_same_weights():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 8, 8, 3)).astype("float32"))
    ours = DepthwiseConv2D(7, padding="same", use_bias=True)
    theirs = keras.layers.DepthwiseConv2D(7, padding="same", use_bias=True)
    ours.build(x.shape)
    theirs.build(x.shape)
    for a, b in zip(theirs.weights, ours.weights):
        b.assign(rng.normal(size=a.shape).astype("float32"))
        a.assign(b)
    assert [w.path.split("/")[-1] for w in ours.weights] == ["kernel", "bias"]
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y))
        results.append([y, *tape.gradient(loss, layer.trainable_weights)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-5)
    restored = DepthwiseConv2D.from_config(ours.get_config())
    assert restored.kernel_size == (7, 7) and restored._uses_fast_op()
    assert not DepthwiseConv2D(3, strides=2, padding="same")._uses_fast_op()  # Keras' op


def test_even_kernels_are_refused():
    with pytest.raises(ValueError, match="square odd kernels"):
        depthwise_conv2d_same(tf.zeros([1, 4, 4, 2]), tf.zeros([2, 2, 2, 1]))


def _gradient_graph_ops(mode, kernel_size=5, skip=False):
    """Op types of the traced gradient of a depthwise conv under kernel gradient `mode`."""
    from alphagan_tf.gan.space import depthwise

    x = tf.TensorSpec([3, 6, 6, 4], tf.float32)
    k = tf.TensorSpec([kernel_size, kernel_size, 4, 1], tf.float32)

    @tf.function(autograph=False)
    def gradients(x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = depthwise_conv2d_same(x, k)
        if skip:
            with depthwise.without_kernel_gradient():
                return tape.gradient(y, [x, k])
        return tape.gradient(y, [x, k])

    depthwise.set_kernel_gradient(mode)
    try:
        graph = gradients.get_concrete_function(x, k).graph
    finally:
        depthwise.set_kernel_gradient("auto")
    return [op.type for op in graph.get_operations()]


def test_kernel_gradient_is_chosen_by_device_and_flag(monkeypatch):
    from alphagan_tf.gan.space import depthwise

    fast, tf_kernel = _gradient_graph_ops("fast"), _gradient_graph_ops("tf")
    assert "DepthwiseConv2dNativeBackpropFilter" not in fast
    assert fast.count("DepthwiseConv2dNative") == 2 + 3  # forward, input gradient, 3 examples
    assert tf_kernel.count("DepthwiseConv2dNativeBackpropFilter") == 1
    assert tf_kernel.count("DepthwiseConv2dNative") == 2
    # Neither form uses TensorFlow's input gradient (no bfloat16 GPU kernel: tensorflow#56736).
    assert "DepthwiseConv2dNativeBackpropInput" not in fast + tf_kernel
    assert depthwise.resolved_kernel_gradient("auto") == "fast"  # no GPU here
    # A GPU cannot be had here: TensorFlow's device list is faked to show one.
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["/physical_device:GPU:0"] if kind == "GPU" else [])
    assert depthwise.resolved_kernel_gradient("auto") == "tf"
    assert depthwise.resolved_kernel_gradient("fast") == "fast"
    with pytest.raises(ValueError, match="depthwise_gradient must be one of"):
        depthwise.set_kernel_gradient("cudnn")


def test_a_step_without_kernel_gradients_computes_none():
    for mode in ("fast", "tf"):
        ops = _gradient_graph_ops(mode, skip=True)
        assert "DepthwiseConv2dNativeBackpropFilter" not in ops
        assert ops.count("DepthwiseConv2dNative") == 2  # the forward conv and the input gradient

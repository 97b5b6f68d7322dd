"""PyTorchAdam: torch.optim.Adam's update, computed by TensorFlow's fused Adam kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.nas.adam import PyTorchAdam


def torch_adam(w, grads, lr, beta1, beta2, eps):
    """torch.optim.Adam (amsgrad=False, no weight decay) in numpy float64."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr / (1 - beta1**t) * m / (np.sqrt(v / (1 - beta2**t)) + eps)
    return w, m, v


@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-14), ("float32", 5e-7)])
def test_steps_equal_pytorchs_formula(dtype, tolerance):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    # Gradients spanning the scales where the epsilon placement matters (1e-9 .. 1).
    grads = [rng.normal(size=(3, 4)) * 10.0 ** rng.integers(-9, 1, size=(3, 4)) for _ in range(5)]
    variable = keras.Variable(w0.astype(dtype), dtype=dtype)
    adam = PyTorchAdam(2e-4, beta_1=0.0, beta_2=0.9)
    for g in grads:
        adam.apply_gradients([(tf.constant(g, dtype), variable)])
    # Keras keeps the learning rate in a float32 variable.
    expected, m, v = torch_adam(w0, grads, float(np.float32(2e-4)), 0.0, 0.9, 1e-8)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=0, atol=tolerance)
    first, second = adam.moments(variable)
    # The kernel updates m += (g - m) * (1 - beta1): rounding relative to the largest moment.
    scale = np.abs(np.stack(grads)).max()
    np.testing.assert_allclose(first.numpy(), m, rtol=0, atol=tolerance * scale)
    np.testing.assert_allclose(second.numpy(), v, rtol=0, atol=tolerance * scale**2)
    # Keras' placement (epsilon before the bias correction) would be off by far more.
    keras_adam = keras.optimizers.Adam(2e-4, beta_1=0.0, beta_2=0.9, epsilon=1e-8)
    other = keras.Variable(w0.astype(dtype), dtype=dtype)
    for g in grads:
        keras_adam.apply_gradients([(tf.constant(g, dtype), other)])
    assert np.abs(other.numpy() - expected).max() > 1e-5


def test_inside_tf_function_and_under_loss_scaling():
    w0 = np.array([0.5, -1.0, 2.0], "float32")
    variable = keras.Variable(w0)
    optimizer = keras.optimizers.LossScaleOptimizer(PyTorchAdam(0.1, beta_1=0.5, beta_2=0.999))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = optimizer.scale_loss(tf.reduce_sum(variable**2))
        optimizer.apply(tape.gradient(loss, [variable]), [variable])

    for _ in range(3):
        step()
    w, grads = w0.astype("float64"), []
    for _ in range(3):  # the gradient depends on the weight: replay step by step
        grads.append(2 * w)
        w, _, _ = torch_adam(w0.astype("float64"), grads, 0.1, 0.5, 0.999, 1e-8)
    np.testing.assert_allclose(variable.numpy(), w, rtol=0, atol=1e-6)
    assert np.abs(variable.numpy() - w0).max() > 0.2

"""Spectral normalization (Miyato et al., 2018) as in the reference PyTorch code.

Keras 3 ships `keras.layers.SpectralNormalization`, but it *assigns* W / sigma
back into the kernel on every training call, so the optimizer updates an
already-normalised kernel and no gradient flows through sigma. PyTorch's
`spectral_norm` (used by SNGAN / AutoGAN / AlphaGAN) keeps the raw weight W and
uses W / sigma(W) in the forward pass, with one power iteration per training
step on a persistent vector u (u and v are constants for the gradient). These
layers do the latter.

`u` is a non-trainable weight: it is not counted as a parameter, but it is part
of the layer's state (checkpoints and worst-case copies carry it).
"""

from __future__ import annotations

import keras
from keras import ops


def _l2_normalize(x, eps: float):
    return x / (ops.sqrt(ops.sum(ops.square(x))) + eps)


class _SpectralMixin:
    """Shared power iteration for layers that own a `kernel` of [..., out]."""

    def _build_u(self):
        out_dim = self.kernel.shape[-1]
        self.u = self.add_weight(
            name="sn_u",
            shape=(1, out_dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
            autocast=False,
        )

    def normalized_kernel(self, training=None):
        """W / sigma(W), with sigma from one power iteration (u updated if training)."""
        # float32 power iteration whatever the compute dtype (mixed precision).
        kernel = ops.convert_to_tensor(self.kernel)
        w = ops.reshape(ops.cast(kernel, "float32"), (-1, kernel.shape[-1]))  # [fan_in, out]
        u = ops.cast(ops.convert_to_tensor(self.u), "float32")
        for _ in range(self.power_iterations):
            v = _l2_normalize(ops.matmul(u, ops.transpose(w)), self.eps)  # [1, fan_in]
            u = _l2_normalize(ops.matmul(v, w), self.eps)  # [1, out]
        u = ops.stop_gradient(u)
        v = ops.stop_gradient(v)
        if training:
            self.u.assign(u)
        sigma = ops.sum(ops.matmul(v, w) * u)
        return kernel / ops.cast(sigma, kernel.dtype)


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SpectralConv2D(_SpectralMixin, keras.layers.Conv2D):
    """Conv2D whose kernel is divided by its spectral norm in the forward pass."""

    def __init__(self, *args, power_iterations: int = 1, eps: float = 1e-12, **kwargs):
        super().__init__(*args, **kwargs)
        self.power_iterations = int(power_iterations)
        self.eps = float(eps)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_u()

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self.normalized_kernel(training))
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.bias, (1,) * (outputs.ndim - 1) + (-1,)))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations, "eps": self.eps}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SpectralDense(_SpectralMixin, keras.layers.Dense):
    """Dense whose kernel is divided by its spectral norm in the forward pass."""

    def __init__(self, *args, power_iterations: int = 1, eps: float = 1e-12, **kwargs):
        super().__init__(*args, **kwargs)
        self.power_iterations = int(power_iterations)
        self.eps = float(eps)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_u()

    def call(self, inputs, training=None):
        outputs = ops.matmul(inputs, self.normalized_kernel(training))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations, "eps": self.eps}

"""Spectral normalization (Miyato et al., 2018) with PyTorch's `spectral_norm` semantics.

Keras 3 ships `keras.layers.SpectralNormalization`, but it *assigns* W / sigma
back into the kernel on every training call, so the optimizer updates an
already-normalised kernel and no gradient flows through sigma. PyTorch's
`torch.nn.utils.spectral_norm` (used by SNGAN / AutoGAN / AlphaGAN, and so by
the authors' discriminators) keeps the raw weight W and uses W / sigma(W) in
the forward pass. These layers compute exactly what it computes (a parity test
runs the authors' discriminator side by side):

- state: two non-trainable vectors, `u` [1, out] and `v` [1, fan_in], where
  W is the kernel reshaped to [fan_in, out] (PyTorch's [out, fan_in] matrix,
  transposed; fan_in in Keras' kernel order (kh, kw, in), not PyTorch's
  (in, kh, kw): `alphagan_tf.interop` permutes v when converting);
- every call with training=True runs `power_iterations` power iterations,
  v = normalize(W u), u = normalize(W^T v), and stores u and v; every call
  (training or not) then uses sigma = u . (W^T v), with u and v constant for
  the gradient. So each training-mode forward pass advances the iteration once,
  as each forward of a PyTorch module in train() mode does;
- inference calls (training=False/None) use the stored u and v as they are,
  without iterating (PyTorch's eval() mode);
- normalize(x) = x / max(||x||, eps), eps = 1e-12 (`torch.nn.functional.normalize`).

Under a mixed precision policy (`utils.precision`) the layers do not autocast
their variables (`autocast=False`): the power iteration and sigma use the float32
kernel, not its bfloat16 / float16 rounding, and only W / sigma(W), the bias and
the inputs are cast to the compute dtype (float64 stays float64).
"""

from __future__ import annotations

import keras
from keras import ops


def _l2_normalize(x, eps: float):
    """x / max(||x||, eps), as `torch.nn.functional.normalize`."""
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), eps)


class _SpectralMixin:
    """Shared power iteration for layers that own a `kernel` of [..., out]."""

    def _build_vectors(self):
        shape = tuple(self.kernel.shape)
        fan_in = 1
        for d in shape[:-1]:
            fan_in *= int(d)
        normal = keras.initializers.RandomNormal(stddev=1.0)
        self.u = self.add_weight(
            name="sn_u", shape=(1, shape[-1]), initializer=normal, trainable=False,
            autocast=False,
        )
        self.v = self.add_weight(
            name="sn_v", shape=(1, fan_in), initializer=normal, trainable=False,
            autocast=False,
        )

    def normalized_kernel(self, training=None):
        """W / sigma(W) in the variable's dtype; with training, `power_iterations` first (u, v stored)."""
        kernel = ops.convert_to_tensor(self.kernel)
        dtype = keras.backend.result_type(kernel.dtype, "float32")  # float32, or float64
        w = ops.reshape(ops.cast(kernel, dtype), (-1, kernel.shape[-1]))  # [fan_in, out]
        u = ops.cast(ops.convert_to_tensor(self.u), dtype)  # [1, out]
        v = ops.cast(ops.convert_to_tensor(self.v), dtype)  # [1, fan_in]
        if training:
            for _ in range(self.power_iterations):
                v = _l2_normalize(ops.matmul(u, ops.transpose(w)), self.eps)
                u = _l2_normalize(ops.matmul(v, w), self.eps)
            u = ops.stop_gradient(u)
            v = ops.stop_gradient(v)
            self.u.assign(u)
            self.v.assign(v)
        sigma = ops.sum(ops.matmul(v, w) * u)
        return kernel / ops.cast(sigma, kernel.dtype)

    def _compute_tensors(self, inputs, training):
        """(inputs, W / sigma(W), bias) in the compute dtype (module docstring: no autocast)."""
        dtype = self.compute_dtype
        bias = ops.cast(self.bias, dtype) if self.use_bias else None
        return ops.cast(inputs, dtype), ops.cast(self.normalized_kernel(training), dtype), bias


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SpectralConv2D(_SpectralMixin, keras.layers.Conv2D):
    """Conv2D whose kernel is divided by its spectral norm in the forward pass."""

    def __init__(self, *args, power_iterations: int = 1, eps: float = 1e-12, **kwargs):
        kwargs["autocast"] = False  # the power iteration reads the float32 kernel
        super().__init__(*args, **kwargs)
        self.power_iterations = int(power_iterations)
        self.eps = float(eps)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_vectors()

    def call(self, inputs, training=None):
        inputs, kernel, bias = self._compute_tensors(inputs, training)
        outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(bias, (1,) * (outputs.ndim - 1) + (-1,)))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations, "eps": self.eps}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SpectralDense(_SpectralMixin, keras.layers.Dense):
    """Dense whose kernel is divided by its spectral norm in the forward pass."""

    def __init__(self, *args, power_iterations: int = 1, eps: float = 1e-12, **kwargs):
        kwargs["autocast"] = False  # the power iteration reads the float32 kernel
        super().__init__(*args, **kwargs)
        self.power_iterations = int(power_iterations)
        self.eps = float(eps)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_vectors()

    def call(self, inputs, training=None):
        inputs, kernel, bias = self._compute_tensors(inputs, training)
        outputs = ops.matmul(inputs, kernel)
        if self.use_bias:
            outputs = ops.add(outputs, bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations, "eps": self.eps}

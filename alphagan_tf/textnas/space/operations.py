"""The TextNAS candidate operations, masked, and a registry name -> factory.

Every operation maps float [B, T, C] (zero at padding) and a bool mask [B, T]
to float [B, T, units], zero at padding, and its values on the real tokens do
not depend on how much padding follows them:

- conv_k (k = 1, 3, 5, 7): the input is zeroed at padding, then a "same"
  convolution, masked BN, ReLU. Zeros beyond a sequence's end are exactly the
  zeros "same" padding would add to the unpadded sequence.
- avg_pool_3 / max_pool_3 (stride 1): padding neither counts in the average
  (sum over real neighbours / number of real neighbours) nor wins the max.
- bi_gru: a GRU per direction (H units, reset-after form) run over the real
  tokens only; the backward direction reads each sequence reversed within its
  own length; the two directions are summed.
- self_attention: 4-head scaled dot-product self-attention whose keys at
  padding are masked out.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from alphagan_tf.textnas.space.architecture import OPS
from alphagan_tf.textnas.space.layers import ExplicitMask, MaskedBatchNorm, float_mask

NEG_INF = -1e9


def _bool_mask(mask, x):
    if mask is None:
        return ops.ones(ops.shape(x)[:2], dtype="bool")
    return ops.cast(mask, "bool")


@keras.saving.register_keras_serializable(package="alphagan_tf")
class MaskedConvBN(ExplicitMask, keras.layers.Layer):
    """conv_k: zero padding, Conv1D(units, k, "same", no bias), masked BN, ReLU.

    Args:
        units: output channels.
        kernel_size: odd window length.
    """

    def __init__(self, units: int, kernel_size: int, **kwargs):
        super().__init__(**kwargs)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer. Received: {kernel_size}")
        self.units = int(units)
        self.kernel_size = int(kernel_size)
        self.supports_masking = True
        self.conv = keras.layers.Conv1D(
            self.units, self.kernel_size, padding="same", use_bias=False, name="conv"
        )
        self.norm = MaskedBatchNorm(name="bn")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.norm.build((*input_shape[:-1], self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None):
        m = float_mask(mask, inputs)
        x = self.conv(inputs * m)
        x = self.norm(x, mask=mask, training=training)
        return ops.relu(x) * m

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class MaskedAvgPool(ExplicitMask, keras.layers.Layer):
    """avg_pool_k, stride 1: the mean of the real tokens in each window."""

    def __init__(self, pool_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        m = float_mask(mask, inputs)
        total = ops.average_pool(inputs * m, self.pool_size, strides=1, padding="same")
        count = ops.average_pool(m, self.pool_size, strides=1, padding="same")
        return total / ops.maximum(count, 1e-6) * m

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class MaskedMaxPool(ExplicitMask, keras.layers.Layer):
    """max_pool_k, stride 1: the max over the real tokens in each window."""

    def __init__(self, pool_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        m = float_mask(mask, inputs)
        x = inputs * m + (1.0 - m) * NEG_INF
        return ops.max_pool(x, self.pool_size, strides=1, padding="same") * m

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class MaskedBiGRU(ExplicitMask, keras.layers.Layer):
    """Bidirectional GRU over the real tokens, the two directions summed.

    Both directions run in one `tf.scan` (their weights stacked on a leading
    axis of 2). The backward direction reads `tf.reverse_sequence` of the input
    (each row reversed within its own length), so it starts at the last real
    token; masked steps carry the state unchanged.

    Gates (reset-after form, as cuDNN's GRU):
        z = sigmoid(x Wz + bz + h Uz + cz), r = sigmoid(x Wr + br + h Ur + cr),
        n = tanh(x Wn + bn + r * (h Un + cn)), h' = (1 - z) * n + z * h.

    Args:
        units: hidden size per direction (= output width).
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.supports_masking = True

    def build(self, input_shape):
        channels, h = input_shape[-1], self.units
        self.kernel = self.add_weight(
            name="kernel", shape=(2, channels, 3 * h), initializer="glorot_uniform"
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(2, h, 3 * h), initializer="orthogonal"
        )
        self.bias = self.add_weight(name="bias", shape=(2, 3 * h), initializer="zeros")
        self.recurrent_bias = self.add_weight(
            name="recurrent_bias", shape=(2, 3 * h), initializer="zeros"
        )
        self.built = True

    def call(self, inputs, mask=None):
        h = self.units
        bool_mask = _bool_mask(mask, inputs)
        m = ops.cast(bool_mask, inputs.dtype)
        lengths = ops.cast(ops.sum(ops.cast(bool_mask, "int32"), axis=1), "int64")
        x = inputs * m[..., None]
        x_reversed = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
        xs = tf.stack([x, x_reversed], axis=0)  # [2, B, T, C]
        gates_x = tf.einsum("dbtc,dck->dbtk", xs, self.kernel) + self.bias[:, None, None, :]
        gates_x = tf.transpose(gates_x, [2, 0, 1, 3])  # [T, 2, B, 3H]
        steps_mask = tf.transpose(m)[:, None, :, None]  # [T, 1, B, 1]
        recurrent_kernel = tf.convert_to_tensor(self.recurrent_kernel)
        recurrent_bias = tf.convert_to_tensor(self.recurrent_bias)[:, None, :]

        def step(state, elems):
            gx, mt = elems
            gh = tf.einsum("dbh,dhk->dbk", state, recurrent_kernel) + recurrent_bias
            xz, xr, xn = tf.split(gx, 3, axis=-1)
            hz, hr, hn = tf.split(gh, 3, axis=-1)
            z = tf.sigmoid(xz + hz)
            r = tf.sigmoid(xr + hr)
            n = tf.tanh(xn + r * hn)
            new_state = (1.0 - z) * n + z * state
            return mt * new_state + (1.0 - mt) * state

        batch = tf.shape(inputs)[0]
        initial = tf.zeros(tf.stack([2, batch, h]), dtype=inputs.dtype)
        states = tf.scan(step, (gates_x, steps_mask), initializer=initial)  # [T, 2, B, H]
        states = tf.transpose(states, [1, 2, 0, 3])  # [2, B, T, H]
        forward = states[0]
        backward = tf.reverse_sequence(states[1], lengths, seq_axis=1, batch_axis=0)
        return (forward + backward) * m[..., None]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class MaskedSelfAttention(ExplicitMask, keras.layers.Layer):
    """Multi-head scaled dot-product self-attention; padded keys get no weight.

    q, k, v = x Wq + bq, x Wk + bk, x Wv + bv (one fused [C, 3 * units] kernel),
    split into `num_heads` heads; softmax(q k^T / sqrt(d) - inf * padded_key) v;
    heads concatenated, then an output projection. (Written out rather than
    `keras.layers.MultiHeadAttention`, which is several times slower on CPU at
    these sizes.)

    Args:
        units: model width (query/key/value and output); divisible by num_heads.
        num_heads: attention heads (4 in TextNAS).
    """

    def __init__(self, units: int, num_heads: int = 4, **kwargs):
        super().__init__(**kwargs)
        if units % num_heads:
            raise ValueError(
                f"units must be divisible by num_heads={num_heads}. Received: units={units}"
            )
        self.units = int(units)
        self.num_heads = int(num_heads)
        self.supports_masking = True

    def build(self, input_shape):
        channels = input_shape[-1]
        self.qkv_kernel = self.add_weight(
            name="qkv_kernel", shape=(channels, 3 * self.units), initializer="glorot_uniform"
        )
        self.qkv_bias = self.add_weight(name="qkv_bias", shape=(3 * self.units,), initializer="zeros")
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(self.units, self.units), initializer="glorot_uniform"
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(self.units,), initializer="zeros")
        self.built = True

    def call(self, inputs, mask=None):
        bool_mask = _bool_mask(mask, inputs)
        m = ops.cast(bool_mask, inputs.dtype)
        batch, time = ops.shape(inputs)[0], ops.shape(inputs)[1]
        heads, depth = self.num_heads, self.units // self.num_heads
        qkv = ops.matmul(inputs * m[..., None], self.qkv_kernel) + self.qkv_bias
        qkv = ops.reshape(qkv, (batch, time, 3, heads, depth))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # [3, B, heads, T, depth]
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (1.0 / float(np.sqrt(depth)))
        scores = scores + (1.0 - m)[:, None, None, :] * NEG_INF
        context = ops.matmul(ops.softmax(scores, axis=-1), v)  # [B, heads, T, depth]
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (batch, time, self.units))
        out = ops.matmul(context, self.output_kernel) + self.output_bias
        return out * m[..., None]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_heads": self.num_heads}


OP_FACTORIES: dict[str, Callable[[int], keras.layers.Layer]] = {
    "conv_1": lambda units: MaskedConvBN(units, 1, name="conv_1"),
    "conv_3": lambda units: MaskedConvBN(units, 3, name="conv_3"),
    "conv_5": lambda units: MaskedConvBN(units, 5, name="conv_5"),
    "conv_7": lambda units: MaskedConvBN(units, 7, name="conv_7"),
    "avg_pool_3": lambda units: MaskedAvgPool(3, name="avg_pool_3"),
    "max_pool_3": lambda units: MaskedMaxPool(3, name="max_pool_3"),
    "bi_gru": lambda units: MaskedBiGRU(units, name="bi_gru"),
    "self_attention": lambda units: MaskedSelfAttention(units, 4, name="self_attention"),
}
assert tuple(OP_FACTORIES) == OPS, "the registry must follow architecture.OPS"


def make_op(name: str, units: int) -> keras.layers.Layer:
    """A fresh candidate operation `name` of width `units` (input width == units)."""
    if name not in OP_FACTORIES:
        raise ValueError(f"op must be one of {OPS}. Received: {name!r}")
    return OP_FACTORIES[name](units)

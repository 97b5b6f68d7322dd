"""Batch normalization with PyTorch's moving statistics.

`torch.nn.BatchNorm2d` (the authors' generators) normalizes a training batch
with its biased variance, as Keras does, but updates the running variance with
the *unbiased* one (Bessel's correction, n / (n - 1), n = batch x height x
width); Keras' `BatchNormalization` uses the biased one for both. This layer is
Keras' with PyTorch's update, so that moving statistics (used in inference mode:
sampling, the exported generator) follow the reference's after training (a
parity test runs the authors' generator side by side). Everything else is
Keras' layer: arguments, weights, inference, synchronized batch statistics
(then n counts the elements of every replica).

A training batch of images (4-D, channels last, float32 / bfloat16 / float16,
not synchronized) is normalized by TensorFlow's fused kernel
(`FusedBatchNormV3`; oneDNN's on CPU): one pass for the moments and the output
and one fused gradient, instead of a dozen elementwise ops and reductions, with
the statistics in float32 whatever the input's dtype and no cast of the input
(measured in the README, "Precision"). Its batch variance is already the
unbiased one. Other inputs (float64 in the parity tests, 2-D, synchronized) take
the unfused path, which computes the same function.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="alphagan_tf")
class BatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization; the moving variance takes the unbiased batch variance.

    Call args (besides Keras'):
        output_scale: optional float32 scalar multiplying the output (a mixed
            op's weight of the branch this layer ends). On the fused path it is
            folded into gamma and beta, so it costs no pass over the output and
            its gradient comes out of the fused gradient; elsewhere the output is
            multiplied by it.
    """

    def call(self, inputs, training=None, mask=None, output_scale=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return _scaled(super().call(inputs, training=training, mask=mask), output_scale)
        if self._fusable(inputs):
            return self._fused_training_call(inputs, output_scale)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = self._moments(x, mask)
        shape = tf.shape(x)
        count = tf.cast(
            tf.reduce_prod(tf.gather(shape, list(self._reduction_axes))), variance.dtype
        )
        replica_context = tf.distribute.get_replica_context()
        if self.synchronized and replica_context is not None:
            count = count * replica_context.num_replicas_in_sync
        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
        self._update_moving_statistics(mean, unbiased)
        gamma = ops.cast(self.gamma, x.dtype) if self.scale else None
        beta = ops.cast(self.beta, x.dtype) if self.center else None
        outputs = ops.batch_normalization(
            x=x, mean=mean, variance=variance, axis=self.axis, offset=beta, scale=gamma,
            epsilon=self.epsilon,
        )
        return _scaled(ops.cast(outputs, self.compute_dtype), output_scale)

    def _fusable(self, inputs) -> bool:
        """Whether the fused kernel applies: 4-D channels-last, a float dtype it takes, local."""
        return (
            len(inputs.shape) == 4
            and list(self._reduction_axes) == [0, 1, 2]
            and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16)
            and not self.synchronized
        )

    def _fused_training_call(self, inputs, output_scale=None):
        channels = inputs.shape[-1]
        gamma = ops.cast(self.gamma, "float32") if self.scale else tf.ones([channels], tf.float32)
        beta = ops.cast(self.beta, "float32") if self.center else tf.zeros([channels], tf.float32)
        if output_scale is not None:  # s * (gamma * x_hat + beta) = (s * gamma) * x_hat + s * beta
            output_scale = tf.cast(output_scale, tf.float32)
            gamma = gamma * output_scale
            beta = beta * output_scale if self.center else beta
        empty = tf.constant([], tf.float32)  # no running statistics in: training mode
        outputs, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty,
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True,
        )
        self._update_moving_statistics(mean, unbiased)
        return ops.cast(outputs, self.compute_dtype)

    def _update_moving_statistics(self, mean, unbiased_variance):
        """PyTorch's update: momentum towards the batch mean and the UNBIASED batch variance."""
        momentum = self.momentum
        self.moving_mean.assign(
            ops.cast(self.moving_mean, mean.dtype) * momentum + mean * (1.0 - momentum)
        )
        self.moving_variance.assign(
            ops.cast(self.moving_variance, mean.dtype) * momentum
            + unbiased_variance * (1.0 - momentum)
        )


def _scaled(outputs, output_scale):
    if output_scale is None:
        return outputs
    return outputs * ops.cast(output_scale, outputs.dtype)

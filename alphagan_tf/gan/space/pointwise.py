"""1x1 convolution run as a matrix product, whose gradients are matrix products too.

The sep convs' pointwise convs (1x1, stride 1, 256 -> 256 channels at the
paper's widths) are a product of the [B*H*W, C_in] pixels with the
[C_in, C_out] kernel. oneDNN runs a 1x1 `Conv2D`'s kernel gradient
(Conv2DBackpropFilter) far below its matmul speed, most of all in bfloat16 on
AMX: at batch 16, 32x32x256, forward + both gradients took 33.7 ms as a conv
and 13.7 ms as matmuls in bfloat16, 67 and 52 ms in float32 (README,
"Precision"). The function, the weights (a [1, 1, C_in, C_out] kernel), the
config and the checkpoint layout are `keras.layers.Conv2D`'s.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="alphagan_tf")
class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D; a 1x1, stride-1, undilated, ungrouped, channels-last one is a matmul."""

    def _is_pointwise(self) -> bool:
        return (
            tuple(self.kernel_size) == (1, 1)
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.groups == 1
            and self.data_format == "channels_last"
        )

    def convolution_op(self, inputs, kernel):
        if not self._is_pointwise():
            return super().convolution_op(inputs, kernel)
        shape = tf.shape(inputs)
        pixels = tf.reshape(inputs, [-1, int(kernel.shape[2])])
        outputs = tf.matmul(pixels, kernel[0, 0])
        return tf.reshape(outputs, tf.concat([shape[:-1], [int(kernel.shape[3])]], axis=0))

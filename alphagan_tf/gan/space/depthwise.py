"""Depthwise convolution whose gradients are fast on CPU.

The sep convs of the space (DARTS' [ReLU, depthwise kxk, pointwise 1x1, BN] x 2)
spend little arithmetic in their depthwise convolutions, but TensorFlow's CPU
kernel for the depthwise *kernel* gradient (DepthwiseConv2dNativeBackpropFilter)
is slow for k >= 5: at batch 16, 32x32, 256 channels it takes ~40 ms (k=5) and
~54 ms (k=7) in float32 and ~120 ms in bfloat16, against 3-6 ms for the forward
pass. Every generator weight step pays it 4 times per normal edge.

The same gradient is a depthwise convolution of another shape. For channel c,

    dK[i, j, c] = sum_{b, h, w} x_pad[b, h + i, w + j, c] * dy[b, h, w, c],

so for one example b it is a VALID depthwise convolution of the padded input
[1, H + k - 1, W + k - 1, C] with that example's output gradient as an
[H, W, C, 1] "kernel", giving [1, k, k, C]; the batch's gradient is the sum over
b (accumulated in float32). Both are free reshapes of slices, so no transpose is
needed; with the batch unknown when traced, batch and channel are merged into
one channel axis instead ((b, c) -> c * B + b, two transposes). This runs the
forward depthwise kernel: 4-16x faster than TensorFlow's kernel gradient here
for k >= 5 (`bench/depthwise.py`); k = 3 keeps TensorFlow's own, which is fast.

The input gradient of a stride-1 "same" convolution with an odd kernel is the
forward convolution of dy with the kernel flipped in both spatial axes; that
forward kernel is faster here than DepthwiseConv2dNativeBackpropInput (most of
all in bfloat16, where it is 1.5-2x), so it is used instead.

`DepthwiseConv2D` is `keras.layers.DepthwiseConv2D` (same weights, same config)
using this op for stride 1, dilation 1, "same" padding, channels_last, depth
multiplier 1 (the space's case) and the Keras op otherwise.

The kernel gradient is chosen by device (`set_kernel_gradient`, the
`--depthwise_gradient` flag): "auto" (default) takes the per-example form above on
a CPU-only host and TensorFlow's own kernel gradient where a GPU is visible (the
loop over the batch is a CPU remedy: on a GPU cuDNN's kernel is the fast one);
"fast" and "tf" force one. The input gradient is the flipped-kernel forward
convolution everywhere: it is the exact adjoint, and it also avoids
DepthwiseConv2dNativeBackpropInput, which has no bfloat16 GPU kernel
(tensorflow#56736). A step that needs no kernel gradient (the architecture step,
which differentiates with respect to alpha only) traces its gradients inside
`without_kernel_gradient()`, so none is computed.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

FAST_KERNEL_GRADIENT_MIN_SIZE = 5  # TensorFlow's own kernel gradient is fast at 3x3
KERNEL_GRADIENTS = ("auto", "fast", "tf")

_kernel_gradient = "auto"
_skip_kernel_gradient = False


def set_kernel_gradient(mode: str) -> None:
    """Chooses the kernel gradient of steps traced from now on: auto, fast or tf."""
    global _kernel_gradient
    if mode not in KERNEL_GRADIENTS:
        raise ValueError(f"depthwise_gradient must be one of {KERNEL_GRADIENTS}. Received: {mode!r}")
    _kernel_gradient = mode


def resolved_kernel_gradient(mode: str | None = None) -> str:
    """"fast" or "tf": `mode` (default: the one set), with "auto" decided by the visible devices."""
    mode = mode or _kernel_gradient
    if mode == "auto":
        return "tf" if tf.config.list_physical_devices("GPU") else "fast"
    return mode


@contextlib.contextmanager
def without_kernel_gradient():
    """Gradients traced inside leave the depthwise kernels' gradient out (zeros, no work)."""
    global _skip_kernel_gradient
    previous, _skip_kernel_gradient = _skip_kernel_gradient, True
    try:
        yield
    finally:
        _skip_kernel_gradient = previous


def depthwise_kernel_gradient(inputs: tf.Tensor, output_gradient: tf.Tensor, kernel_size: int):
    """dL/dK of a stride-1 'SAME' depthwise conv (odd kernel_size, multiplier 1).

    Args:
        inputs: x, [B, H, W, C].
        output_gradient: dL/dy, [B, H, W, C].
        kernel_size: k, odd.

    Returns:
        [k, k, C, 1], the gradient of the kernel, in float32 for float32 /
        bfloat16 / float16 inputs (the per-example sums are added in float32).
    """
    k, pad = kernel_size, kernel_size // 2
    padded = tf.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    batch = inputs.shape[0]
    if batch is None:
        return _merged_kernel_gradient(padded, output_gradient, k)
    _, h, w, c = output_gradient.shape
    accumulate = tf.float64 if inputs.dtype == tf.float64 else tf.float32
    per_example = [
        tf.cast(
            tf.nn.depthwise_conv2d(
                padded[b : b + 1], tf.reshape(output_gradient[b], [h, w, c, 1]),
                strides=[1, 1, 1, 1], padding="VALID",
            ),
            accumulate,
        )
        for b in range(batch)
    ]  # each [1, k, k, C]
    return tf.reshape(tf.add_n(per_example), [k, k, c, 1])


def _merged_kernel_gradient(padded: tf.Tensor, output_gradient: tf.Tensor, k: int):
    """`depthwise_kernel_gradient` for a batch unknown when traced: batch merged into channels."""
    shape = tf.shape(output_gradient)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    # [B, H+k-1, W+k-1, C] -> [1, H+k-1, W+k-1, C*B], channel index c * B + b.
    merged_input = tf.reshape(tf.transpose(padded, [1, 2, 3, 0]), [1, h + k - 1, w + k - 1, c * b])
    merged_gradient = tf.reshape(tf.transpose(output_gradient, [1, 2, 3, 0]), [h, w, c * b, 1])
    per_example = tf.nn.depthwise_conv2d(
        merged_input, merged_gradient, strides=[1, 1, 1, 1], padding="VALID"
    )  # [1, k, k, C*B]
    return tf.reduce_sum(tf.reshape(per_example, [k, k, c, b]), axis=-1)[..., None]


def depthwise_conv2d_same(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """tf.nn.depthwise_conv2d(inputs, kernel, stride 1, 'SAME'), fast kernel gradient.

    Args:
        inputs: [B, H, W, C].
        kernel: [k, k, C, 1], k odd.
    """
    kernel_size = int(kernel.shape[0])
    if kernel_size % 2 == 0 or kernel.shape[0] != kernel.shape[1] or kernel.shape[-1] != 1:
        raise ValueError(
            "depthwise_conv2d_same takes square odd kernels with depth multiplier 1. "
            f"Received: kernel.shape={kernel.shape}"
        )
    strides = [1, 1, 1, 1]

    @tf.custom_gradient
    def conv(x, k):
        y = tf.nn.depthwise_conv2d(x, k, strides=strides, padding="SAME")

        def gradient(dy):
            # The adjoint of a stride-1 "same" odd-kernel conv: the flipped kernel, forward.
            dx = tf.nn.depthwise_conv2d(dy, tf.reverse(k, [0, 1]), strides=strides, padding="SAME")
            if _skip_kernel_gradient:
                return dx, tf.zeros_like(k)
            if kernel_size >= FAST_KERNEL_GRADIENT_MIN_SIZE and resolved_kernel_gradient() == "fast":
                dk = depthwise_kernel_gradient(x, dy, kernel_size)
            else:
                dk = tf.nn.depthwise_conv2d_backprop_filter(x, tf.shape(k), dy, strides, "SAME")
            return dx, tf.cast(dk, k.dtype)

        return y, gradient

    return conv(inputs, kernel)


@keras.saving.register_keras_serializable(package="alphagan_tf")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """keras.layers.DepthwiseConv2D with `depthwise_conv2d_same` where it applies."""

    def _uses_fast_op(self) -> bool:
        k = self.kernel_size
        return (
            self.padding == "same"
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.data_format == "channels_last"
            and self.depth_multiplier == 1
            and k[0] == k[1]
            and k[0] % 2 == 1
        )

    def call(self, inputs):
        if not self._uses_fast_op():
            return super().call(inputs)
        outputs = depthwise_conv2d_same(inputs, tf.convert_to_tensor(self.kernel))
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

"""The mixed op of a normal edge, with its plain convs run as one convolution.

On a normal edge the three plain-conv candidates (``conv_1x1``, ``conv_3x3``,
``conv_5x5``) all compute ``conv(relu(x), K_i) + b_i`` on the same input. A
convolution is linear in its kernel, and a kxk kernel zero-padded (centred) to
5x5 gives exactly the same "same"-padded output, so their alpha-weighted sum is

    sum_i w_i * (conv(relu(x), K_i) + b_i) = conv(relu(x), sum_i w_i * pad(K_i)) + sum_i w_i b_i

with ``w = softmax(alpha)``: one 5x5 convolution (25 units of work per pixel and
channel pair) instead of three (1 + 9 + 25 = 35), in the forward pass and in both
gradients. Nothing about the search changes: the candidates keep their own
kernels and biases (a derived genotype still picks one of them, and
`generator.transfer_search_weights` still copies them), alpha still lives in
the `MixedOp`, and the gradients w.r.t. alpha and every kernel are those of the
unfused sum (a test checks output and gradients against `fuse_convs=False`).

The separable-conv candidates (ReLU, depthwise, pointwise, batch norm, twice)
are not linear (batch norm), so they run on their own, with two savings that
change no number: every candidate starts with the same ReLU of the same input,
so it is computed once (and its gradient once); and a separable conv's weight
w_i is folded into its last batch norm, w_i * BN(y) = BN(y) with gamma and beta
scaled by w_i, so the fused batch-norm kernel applies it with no pass of its own
over the branch's output, forward or backward.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf
from keras import ops

from alphagan_tf.gan.space.operations import ReLUConv, SepConv
from alphagan_tf.nas.mixed_op import MixedOp


def pad_kernel(kernel: tf.Tensor, size: int) -> tf.Tensor:
    """Zero-pads a [k, k, C_in, C_out] kernel (k odd) to [size, size, C_in, C_out], centred."""
    k = int(kernel.shape[0])
    if k == size:
        return kernel
    if k > size or (size - k) % 2:
        raise ValueError(
            f"Cannot centre a {k}x{k} kernel in {size}x{size}. Received: kernel shape "
            f"{tuple(kernel.shape)}"
        )
    p = (size - k) // 2
    return tf.pad(kernel, [[p, p], [p, p], [0, 0], [0, 0]])


@keras.saving.register_keras_serializable(package="alphagan_tf")
class NormalMixedOp(MixedOp):
    """`MixedOp` over the normal candidates; its `ReLUConv`s run as one conv.

    Args:
        candidates, op_names, alpha_stddev: as `MixedOp`.
        fuse_convs: run the `ReLUConv` candidates as one convolution with the
            alpha-weighted sum of their zero-padded kernels (exactly the same
            function, less work). False runs every candidate on its own.

    Call args:
        inputs: float32 [B, H, W, C]. Returns [B, H, W, C].
        training: batch-norm mode of the separable convs.
        choice: as `MixedOp` (the sampled path runs one candidate: nothing to fuse).
    """

    def __init__(
        self,
        candidates: Sequence[keras.layers.Layer],
        op_names: Sequence[str],
        alpha_stddev: float = 1e-3,
        fuse_convs: bool = True,
        **kwargs,
    ):
        # No autocast of the candidates' variables read here: the fused kernel is summed in
        # float32 and cast once (under bfloat16 / float16; the candidates still autocast).
        kwargs["autocast"] = False
        super().__init__(candidates, op_names, alpha_stddev=alpha_stddev, **kwargs)
        self.fuse_convs = bool(fuse_convs)
        self._conv_indices = [i for i, c in enumerate(self.candidates) if isinstance(c, ReLUConv)]
        self._other_indices = [
            i for i, c in enumerate(self.candidates) if not isinstance(c, ReLUConv)
        ]

    def fused_kernel(self, weights: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(sum_i w_i pad(K_i), sum_i w_i b_i) over the plain-conv candidates."""
        convs = [
            (
                weights[i],
                ops.convert_to_tensor(self.candidates[i].conv.kernel),
                ops.convert_to_tensor(self.candidates[i].conv.bias),
            )
            for i in self._conv_indices
        ]
        size = max(int(kernel.shape[0]) for _, kernel, _ in convs)
        kernel = tf.add_n([tf.cast(w, k.dtype) * pad_kernel(k, size) for w, k, _ in convs])
        bias = tf.add_n([tf.cast(w, b.dtype) * b for w, _, b in convs])
        return kernel, bias

    def call(self, inputs, training=None, mask=None, choice=None):
        if choice is not None or not self.fuse_convs or len(self._conv_indices) < 2:
            return super().call(inputs, training=training, mask=mask, choice=choice)
        weights = self.op_weights()
        kernel, bias = self.fused_kernel(weights)
        x = ops.relu(ops.cast(inputs, self.compute_dtype))  # every candidate's first op
        output = tf.nn.bias_add(
            tf.nn.conv2d(x, tf.cast(kernel, x.dtype), strides=1, padding="SAME"),
            tf.cast(bias, x.dtype),
        )
        for i in self._other_indices:
            if isinstance(self.candidates[i], SepConv):  # its ReLU is the one computed above
                branch = self._weighted_candidate(i, x, weights[i], training, activated=True)
            else:
                branch = self._weighted_candidate(i, inputs, weights[i], training)
            output = output + branch
        return output

    def get_config(self):
        return {**super().get_config(), "fuse_convs": self.fuse_convs}

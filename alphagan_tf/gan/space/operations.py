"""Candidate operations of the AlphaGAN generator space, by name.

Normal candidates (shape-preserving, `channels` in and out):

- ``conv_1x1``, ``conv_3x3``, ``conv_5x5``: ReLU, then Conv2D with bias, same
  padding, no batch norm (`ReLUConv`).
- ``sep_conv_3x3``, ``sep_conv_5x5``, ``sep_conv_7x7``: the DARTS separable conv,
  twice [ReLU, depthwise kxk (no bias), pointwise 1x1 (no bias), BatchNorm]
  (`SepConv`). The batch norm has no affine parameters in the supernet
  (``affine=False``: center=False, scale=False) and has them in the fixed
  generator (``affine=True``).

Up candidates (`channels` in and out, spatial size x `scale`, scale 2 or 4):

- ``deconv``: Conv2DTranspose(kernel 2, stride 2, bias) (`TransposedConvUp`); at
  x4 the SAME transposed conv (one set of weights) is applied twice.
- ``nearest``, ``bilinear``: resize x2 with that interpolation (bilinear =
  half-pixel centres, as PyTorch's ``align_corners=False``), applied log2(scale)
  times, no weights (`InterpolationUp`). At x4 bilinear is two x2 resizes, as in
  the reference (`Interpolate_wrapper`), which is not one x4 bilinear resize.

Conventions shared by every op: conv kernels (also depthwise and transposed)
use glorot_uniform (xavier-uniform) init, biases zeros; batch norms use
PyTorch's defaults (momentum 0.1 -> Keras momentum 0.9, epsilon 1e-5) and its
moving-variance update (`batch_norm.BatchNormalization`).

The registries `NORMAL_OP_FACTORIES` / `UP_OP_FACTORIES` map a name of
`genotypes.NORMAL_OPS` / `genotypes.UP_OPS` to a factory; `make_normal_op` and
`make_up_op` are the public entry points.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf
from keras import ops

from alphagan_tf.gan.space.batch_norm import BatchNormalization
from alphagan_tf.gan.space.depthwise import DepthwiseConv2D
from alphagan_tf.gan.space.genotypes import NORMAL_OPS, UP_OPS
from alphagan_tf.gan.space.pointwise import Conv2D
from alphagan_tf.nas.tracking import track_layers

BN_MOMENTUM = 0.9  # PyTorch momentum 0.1
BN_EPSILON = 1e-5
KERNEL_INIT = "glorot_uniform"

__all__ = [
    "NORMAL_OPS",
    "UP_OPS",
    "ReLUConv",
    "SepConv",
    "TransposedConvUp",
    "InterpolationUp",
    "NORMAL_OP_FACTORIES",
    "UP_OP_FACTORIES",
    "make_normal_op",
    "make_up_op",
    "batch_norm",
]


def batch_norm(
    affine: bool = True, name: str | None = None, synchronized: bool = False
) -> keras.layers.Layer:
    """BatchNormalization with PyTorch's defaults and moving statistics (`batch_norm.py`);
    no gamma/beta if not affine.

    `synchronized`: under a multi-replica `tf.distribute` strategy, batch
    statistics over the global batch (all replicas), so that N replicas compute
    what one device computes on the whole batch.
    """
    return BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        center=affine,
        scale=affine,
        synchronized=synchronized,
        name=name,
    )


@keras.saving.register_keras_serializable(package="alphagan_tf")
class ReLUConv(keras.layers.Layer):
    """ReLU then Conv2D (bias, same padding): conv_1x1 / conv_3x3 / conv_5x5.

    Args:
        channels: output channels.
        kernel_size: square kernel size.

    Call args:
        inputs: float32 [batch, H, W, C]. Returns [batch, H, W, channels].
    """

    def __init__(self, channels: int, kernel_size: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.kernel_size = int(kernel_size)
        self.conv = Conv2D(  # keras' layer; conv_1x1 runs as a matmul (gan/space/pointwise.py)
            self.channels,
            self.kernel_size,
            padding="same",
            use_bias=True,
            kernel_initializer=KERNEL_INIT,
            name="conv",
        )

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, inputs, training=None):
        return self.conv(ops.relu(inputs))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "kernel_size": self.kernel_size,
        }


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SepConv(keras.layers.Layer):
    """The DARTS separable conv: twice [ReLU, depthwise kxk, pointwise 1x1, BN].

    Args:
        channels: channels of the input and of both halves' outputs (the space
            keeps gf channels everywhere).
        kernel_size: depthwise kernel size (3, 5 or 7).
        affine: whether the batch norms have gamma/beta (False in the supernet).
        synchronized_bn: batch statistics over all replicas of a distribution
            strategy (see `batch_norm`).

    Call args:
        inputs: float32 [batch, H, W, channels]. Returns the same shape.
        training: batch statistics (True) or moving statistics (False/None).
        activated: the inputs are already through the ReLU (a mixed op runs it
            once for all its candidates).
        output_scale: optional scalar multiplying the output, folded into the
            last batch norm (`BatchNormalization`'s `output_scale`).

    Attributes:
        depthwise, pointwise, norms: the two halves' layers, in order (used by
            `generator.transfer_search_weights`).
    """

    accepts_output_scale = True  # a mixed op's weight goes into the last batch norm

    def __init__(
        self, channels: int, kernel_size: int, affine: bool = True, synchronized_bn: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.kernel_size = int(kernel_size)
        self.affine = bool(affine)
        self.synchronized_bn = bool(synchronized_bn)
        depthwise, pointwise, norms = [], [], []
        for i in range(2):
            depthwise.append(
                DepthwiseConv2D(  # keras' layer with a faster kernel gradient on CPU
                    self.kernel_size,
                    padding="same",
                    use_bias=False,
                    depthwise_initializer=KERNEL_INIT,
                    name=f"depthwise{i}",
                )
            )
            pointwise.append(
                Conv2D(  # keras' layer run as a matmul (gan/space/pointwise.py)
                    self.channels,
                    1,
                    use_bias=False,
                    kernel_initializer=KERNEL_INIT,
                    name=f"pointwise{i}",
                )
            )
            norms.append(batch_norm(self.affine, name=f"bn{i}", synchronized=self.synchronized_bn))
        # Lists of layers are invisible to tf.train.Checkpoint: see nas/tracking.py.
        self.depthwise = track_layers(self, "depthwise", depthwise)
        self.pointwise = track_layers(self, "pointwise", pointwise)
        self.norms = track_layers(self, "norm", norms)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for dw, pw, bn in zip(self.depthwise, self.pointwise, self.norms):
            dw.build(shape)
            shape = dw.compute_output_shape(shape)
            pw.build(shape)
            shape = pw.compute_output_shape(shape)
            bn.build(shape)

    def call(self, inputs, training=None, activated=False, output_scale=None):
        x = inputs
        last = len(self.norms) - 1
        for i, (dw, pw, bn) in enumerate(zip(self.depthwise, self.pointwise, self.norms)):
            if i > 0 or not activated:
                x = ops.relu(x)
            scale = output_scale if i == last else None
            x = bn(pw(dw(x)), training=training, output_scale=scale)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "affine": self.affine,
            "synchronized_bn": self.synchronized_bn,
        }


@keras.saving.register_keras_serializable(package="alphagan_tf")
class TransposedConvUp(keras.layers.Layer):
    """The ``deconv`` up op: Conv2DTranspose(kernel 2, stride 2), applied log2(scale) times.

    One transposed conv (one set of weights) is applied repeatedly: at x4 the
    same layer runs twice, as in the reference.

    Args:
        channels: channels of input and output (must be equal for scale > 2).
        scale: upsampling factor, a power of two (2 or 4 in this space).

    Call args:
        inputs: float32 [batch, H, W, channels]. Returns [batch, H*scale, W*scale, channels].
        output_scale: optional scalar multiplying the output, folded into the last
            application's kernel and bias (s * (K * y + b) = (s K) * y + s b).
    """

    accepts_output_scale = True

    def __init__(self, channels: int, scale: int = 2, **kwargs):
        super().__init__(**kwargs)
        scale = int(scale)
        if scale < 2 or scale & (scale - 1):
            raise ValueError(
                f"TransposedConvUp scale must be a power of two >= 2. Received: scale={scale}"
            )
        self.channels = int(channels)
        self.scale = scale
        self.repeats = scale.bit_length() - 1
        self.deconv = keras.layers.Conv2DTranspose(
            self.channels,
            2,
            strides=2,
            padding="valid",
            use_bias=True,
            kernel_initializer=KERNEL_INIT,
            name="deconv",
        )

    def build(self, input_shape):
        if self.repeats > 1 and input_shape[-1] != self.channels:
            raise ValueError(
                f"deconv x{self.scale} applies one transposed conv twice, so it needs "
                f"{self.channels} input channels. Received: input_shape={input_shape}"
            )
        self.deconv.build(input_shape)

    def call(self, inputs, training=None, output_scale=None):
        x = inputs
        for i in range(self.repeats):
            if output_scale is not None and i == self.repeats - 1:
                kernel = ops.convert_to_tensor(self.deconv.kernel)
                bias = ops.convert_to_tensor(self.deconv.bias)
                scale = ops.cast(output_scale, kernel.dtype)
                x = ops.conv_transpose(
                    x, kernel * scale, strides=self.deconv.strides, padding=self.deconv.padding,
                    data_format=self.deconv.data_format,
                ) + bias * scale
            else:
                x = self.deconv(x)
        return x

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        up = lambda d: None if d is None else d * self.scale  # noqa: E731
        return (b, up(h), up(w), self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "scale": self.scale}


def _interleave(even, odd, axis: int):
    """[..., n, ...] x 2 -> [..., 2n, ...] with even[i] at 2i and odd[i] at 2i + 1 along `axis`."""
    stacked = ops.stack([even, odd], axis=axis + 1)
    shape = ops.shape(even)
    new_shape = [shape[d] for d in range(axis)] + [2 * shape[axis]] + [
        shape[d] for d in range(axis + 1, len(even.shape))
    ]
    return ops.reshape(stacked, new_shape)


def upsample2x(x, interpolation: str):
    """x [B, H, W, C] -> [B, 2H, 2W, C], nearest or bilinear (half-pixel centres).

    Bilinear x2 with half-pixel centres (PyTorch's ``align_corners=False``,
    `tf.image.resize`'s default) is a fixed two-tap filter along each axis:
    out[2i] = 0.75 x[i] + 0.25 x[i-1], out[2i+1] = 0.75 x[i] + 0.25 x[i+1], the
    edge sample repeated at the borders. Written with plain ops it runs in the
    input's dtype (`tf.image.resize` computes in float32 whatever the input) and
    its gradient is exact.
    """
    for axis in (1, 2):
        if interpolation == "nearest":
            x = _interleave(x, x, axis)
        elif x.shape[axis] is not None and x.shape[axis] >= 2:
            x = _bilinear2x_with_adjoint(x, axis)
        else:
            x = _bilinear2x(x, axis)
    return x


def _bilinear2x(x, axis: int):
    """Bilinear x2 along `axis` (1 or 2): the two-tap filter of `upsample2x`."""
    lead = (slice(None),) * axis
    previous = ops.concatenate([x[lead + (slice(0, 1),)], x[lead + (slice(0, -1),)]], axis=axis)
    following = ops.concatenate([x[lead + (slice(1, None),)], x[lead + (slice(-1, None),)]],
                                axis=axis)
    return _interleave(0.75 * x + 0.25 * previous, 0.75 * x + 0.25 * following, axis)


def _bilinear2x_with_adjoint(x, axis: int):
    """`_bilinear2x` with its gradient written out (static length n >= 2 along `axis`).

    Differentiating the slices of `_bilinear2x` makes TensorFlow build each
    slice's gradient as a zero tensor of the input's full size with the slice
    copied in (StridedSliceGrad), four per axis: at the paper's widths that was
    ~10% of a bfloat16 search step. The adjoint is short: with g_e, g_o the
    output gradient at the even and odd positions,

        dx[i] = 0.75 (g_e[i] + g_o[i]) + 0.25 g_e[i + 1] + 0.25 g_o[i - 1],

    where the out-of-range terms fold onto the edges (g_e[0] onto dx[0],
    g_o[n-1] onto dx[n-1], as the edge sample is repeated). Tested against
    TensorFlow's own gradient of `_bilinear2x`.
    """
    n = int(x.shape[axis])
    lead = (slice(None),) * axis

    def part(t, start, stop):
        return t[lead + (slice(start, stop),)]

    @tf.custom_gradient
    def upsample(x):
        def gradient(g):
            shape = tf.shape(g)
            pairs = tf.reshape(g, tf.concat([shape[:axis], [n, 2], shape[axis + 1:]], axis=0))
            g_even, g_odd = tf.unstack(pairs, num=2, axis=axis + 1)
            zeros = tf.zeros_like(part(g_even, 0, 1))
            from_next = tf.concat(
                [part(g_even, 0, 1) + part(g_even, 1, 2), part(g_even, 2, None), zeros], axis)
            from_previous = tf.concat(
                [zeros, part(g_odd, 0, n - 2), part(g_odd, n - 2, n - 1) + part(g_odd, n - 1, n)],
                axis)
            return 0.75 * (g_even + g_odd) + 0.25 * (from_next + from_previous)

        return _bilinear2x(x, axis), gradient

    return upsample(x)


@keras.saving.register_keras_serializable(package="alphagan_tf")
class InterpolationUp(keras.layers.Layer):
    """The ``nearest`` / ``bilinear`` up ops: a x2 resize applied log2(scale) times.

    Args:
        interpolation: "nearest" or "bilinear" (half-pixel centres, PyTorch's
            ``F.interpolate(..., scale_factor=2, align_corners=False)``; `upsample2x`).
        scale: upsampling factor, a power of two (2 or 4 in this space).

    Call args:
        inputs: [batch, H, W, C] (H, W known). Returns [batch, H*scale, W*scale, C].
        output_scale: optional scalar multiplying the output; the resize is linear,
            so it multiplies the (scale^2 times smaller) input instead.
    """

    accepts_output_scale = True

    def __init__(self, interpolation: str, scale: int = 2, **kwargs):
        super().__init__(**kwargs)
        scale = int(scale)
        if scale < 2 or scale & (scale - 1):
            raise ValueError(
                f"InterpolationUp scale must be a power of two >= 2. Received: scale={scale}"
            )
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(
                "InterpolationUp interpolation must be 'nearest' or 'bilinear'. "
                f"Received: interpolation={interpolation!r}"
            )
        self.interpolation = interpolation
        self.scale = scale
        self.repeats = scale.bit_length() - 1

    def build(self, input_shape):
        self.built = True

    def call(self, inputs, training=None, output_scale=None):
        x = inputs
        if output_scale is not None:
            x = x * ops.cast(output_scale, x.dtype)
        for _ in range(self.repeats):
            x = upsample2x(x, self.interpolation)
        return x

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        up = lambda d: None if d is None else d * self.scale  # noqa: E731
        return (b, up(h), up(w), c)

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation, "scale": self.scale}


def _interpolation(interpolation: str) -> Callable[..., keras.layers.Layer]:
    def factory(channels: int, scale: int, name: str | None = None) -> keras.layers.Layer:
        del channels  # resizing keeps the channels
        return InterpolationUp(interpolation, int(scale), name=name)

    return factory


def _relu_conv(kernel_size: int) -> Callable[..., keras.layers.Layer]:
    def factory(channels, affine, synchronized_bn, name=None):
        del affine, synchronized_bn  # no batch norm
        return ReLUConv(channels, kernel_size, name=name)

    return factory


def _sep_conv(kernel_size: int) -> Callable[..., keras.layers.Layer]:
    def factory(channels, affine, synchronized_bn, name=None):
        return SepConv(channels, kernel_size, affine, synchronized_bn, name=name)

    return factory


NORMAL_OP_FACTORIES: dict[str, Callable[..., keras.layers.Layer]] = {
    "conv_1x1": _relu_conv(1),
    "conv_3x3": _relu_conv(3),
    "conv_5x5": _relu_conv(5),
    "sep_conv_3x3": _sep_conv(3),
    "sep_conv_5x5": _sep_conv(5),
    "sep_conv_7x7": _sep_conv(7),
}
"""name -> factory(channels, affine, synchronized_bn, name=None) -> Layer."""

UP_OP_FACTORIES: dict[str, Callable[..., keras.layers.Layer]] = {
    "deconv": lambda channels, scale, name=None: TransposedConvUp(channels, scale, name=name),
    "nearest": _interpolation("nearest"),
    "bilinear": _interpolation("bilinear"),
}
"""name -> factory(channels, scale, name=None) -> Layer."""

assert tuple(NORMAL_OP_FACTORIES) == NORMAL_OPS, "registry and genotypes disagree"
assert tuple(UP_OP_FACTORIES) == UP_OPS, "registry and genotypes disagree"


def make_normal_op(
    name: str,
    channels: int,
    affine: bool = True,
    *,
    synchronized_bn: bool = False,
    layer_name: str | None = None,
) -> keras.layers.Layer:
    """A new normal-edge layer for the op `name` of `NORMAL_OPS`.

    Args:
        name: op name, e.g. "sep_conv_3x3".
        channels: output channels (input channels are the same in this space).
        affine: batch-norm affine parameters (sep convs only): False in the supernet.
        synchronized_bn: batch statistics over all replicas (sep convs only).
        layer_name: Keras name of the layer (default: the op name).
    """
    if name not in NORMAL_OP_FACTORIES:
        raise ValueError(f"Unknown normal op {name!r}; expected one of {NORMAL_OPS}")
    return NORMAL_OP_FACTORIES[name](
        int(channels), bool(affine), bool(synchronized_bn), name=layer_name or name
    )


def make_up_op(
    name: str, channels: int, scale: int, *, layer_name: str | None = None
) -> keras.layers.Layer:
    """A new up-edge layer for the op `name` of `UP_OPS`, upsampling by `scale`.

    Args:
        name: op name: "deconv", "nearest" or "bilinear".
        channels: channels in and out.
        scale: spatial factor (2 or 4).
        layer_name: Keras name of the layer (default: the op name).
    """
    if name not in UP_OP_FACTORIES:
        raise ValueError(f"Unknown up op {name!r}; expected one of {UP_OPS}")
    if int(scale) not in (2, 4):
        raise ValueError(f"Up ops scale by 2 or 4. Received: scale={scale}")
    return UP_OP_FACTORIES[name](int(channels), int(scale), name=layer_name or name)

"""The fixed discriminator: AutoGAN's CIFAR-10 discriminator (after SNGAN's).

    images [B, H, W, 3]
      -> OptimizedDisBlock(3 -> df)          residual: conv3x3, ReLU, conv3x3, avgpool2
                                             shortcut: avgpool2, conv1x1
      -> DisBlock(df -> df, downsample)      residual: ReLU, conv3x3, ReLU, conv3x3, avgpool2
                                             shortcut: conv1x1, avgpool2
      -> DisBlock(df -> df) -> DisBlock(df -> df)   (identity shortcuts: no
                                             downsampling, same channels)
      -> ReLU -> sum over H, W -> Dense(1, no bias) -> logits [B, 1]

Every conv and the final Dense are spectrally normalized (one power iteration
per training call); conv kernels use glorot_uniform (xavier-uniform) init. At
df = 128: 1,053,824 trainable parameters (the spec's 1.05M); the spectral-norm
`u` vectors are non-trainable and not counted.

Spectral normalization, `spectral_norm=`:
- "reference" (default): `alphagan_tf.gan.space.spectral_norm.SpectralConv2D` /
  `SpectralDense`, PyTorch's `spectral_norm` semantics as in the SNGAN/AutoGAN/
  AlphaGAN code: the raw kernel W is kept and W / sigma(W) is used in every
  forward pass (gradient through sigma, u and v constant); training calls
  advance the power iteration on u, inference calls only read u.
- "keras": `keras.layers.SpectralNormalization` around plain layers. It
  normalizes *in place*: a training call assigns W / sigma(W) to the kernel
  variable and the layer uses that, so no gradient flows through sigma (a
  projection after each step), and a call with training=False uses the kernel
  as last stored (not normalized at all before the first training call).
Both have the same trainable parameters and one non-trainable u per layer.

Deviation from the brief: the final linear has no bias, as in the SNGAN/AutoGAN
code (``nn.Linear(ch, 1, bias=False)``).
"""

from __future__ import annotations

import keras
from keras import ops

from alphagan_tf.gan.space.operations import KERNEL_INIT
from alphagan_tf.gan.space.spectral_norm import SpectralConv2D, SpectralDense


SPECTRAL_NORMS = ("reference", "keras")


def _check_spectral_norm(spectral_norm: str) -> str:
    if spectral_norm not in SPECTRAL_NORMS:
        raise ValueError(
            f"spectral_norm must be one of {SPECTRAL_NORMS}. Received: {spectral_norm!r}"
        )
    return spectral_norm


def _sn_conv(channels: int, kernel_size: int, name: str, spectral_norm: str) -> keras.layers.Layer:
    kwargs = dict(padding="same", use_bias=True, kernel_initializer=KERNEL_INIT)
    if spectral_norm == "reference":
        return SpectralConv2D(channels, kernel_size, name=name, **kwargs)
    return keras.layers.SpectralNormalization(
        keras.layers.Conv2D(channels, kernel_size, name=name, **kwargs), name=f"sn_{name}"
    )


def _sn_dense(units: int, name: str, spectral_norm: str) -> keras.layers.Layer:
    kwargs = dict(use_bias=False, kernel_initializer=KERNEL_INIT)
    if spectral_norm == "reference":
        return SpectralDense(units, name=name, **kwargs)
    return keras.layers.SpectralNormalization(
        keras.layers.Dense(units, name=name, **kwargs), name=f"sn_{name}"
    )


def _downsample(x):
    return ops.average_pool(x, pool_size=2, strides=2, padding="valid")


@keras.saving.register_keras_serializable(package="alphagan_tf")
class OptimizedDisBlock(keras.layers.Layer):
    """The first residual down-block (no ReLU before the first conv).

    Args:
        channels: output channels.
        spectral_norm: "reference" or "keras" (module docstring).

    Call args:
        inputs: float32 [B, H, W, C_in]. Returns [B, H/2, W/2, channels].
        training: passed to spectral normalization (power iteration when True).
    """

    def __init__(self, channels: int, spectral_norm: str = "reference", **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.spectral_norm = _check_spectral_norm(spectral_norm)
        self.conv1 = _sn_conv(self.channels, 3, "conv1", self.spectral_norm)
        self.conv2 = _sn_conv(self.channels, 3, "conv2", self.spectral_norm)
        self.shortcut = _sn_conv(self.channels, 1, "shortcut", self.spectral_norm)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        b, h, w, _ = input_shape
        self.conv1.build(input_shape)
        self.conv2.build((b, h, w, self.channels))
        self.shortcut.build((b, None if h is None else h // 2, None if w is None else w // 2, input_shape[-1]))

    def call(self, inputs, training=None):
        h = self.conv1(inputs, training=training)
        h = self.conv2(ops.relu(h), training=training)
        h = _downsample(h)
        return h + self.shortcut(_downsample(inputs), training=training)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        half = lambda d: None if d is None else d // 2  # noqa: E731
        return (b, half(h), half(w), self.channels)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "spectral_norm": self.spectral_norm,
        }


@keras.saving.register_keras_serializable(package="alphagan_tf")
class DisBlock(keras.layers.Layer):
    """A residual block: ReLU, conv3x3, ReLU, conv3x3 (+ avgpool2 if downsampling).

    The shortcut has a 1x1 conv (then avgpool2 if downsampling) when it must
    change the shape (downsampling or different channels), else it is the
    identity.

    Args:
        channels: output channels.
        downsample: halve H and W.
        spectral_norm: "reference" or "keras" (module docstring).

    Call args:
        inputs: float32 [B, H, W, C_in]. Returns [B, H', W', channels].
        training: passed to spectral normalization.
    """

    def __init__(
        self, channels: int, downsample: bool = False, spectral_norm: str = "reference", **kwargs
    ):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.downsample = bool(downsample)
        self.spectral_norm = _check_spectral_norm(spectral_norm)
        self.conv1 = _sn_conv(self.channels, 3, "conv1", self.spectral_norm)
        self.conv2 = _sn_conv(self.channels, 3, "conv2", self.spectral_norm)
        self.shortcut = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        b, h, w, c_in = input_shape
        if self.downsample or c_in != self.channels:
            self.shortcut = _sn_conv(self.channels, 1, "shortcut", self.spectral_norm)
            self.shortcut.build(input_shape)
        self.conv1.build(input_shape)
        self.conv2.build((b, h, w, self.channels))

    def call(self, inputs, training=None):
        h = self.conv1(ops.relu(inputs), training=training)
        h = self.conv2(ops.relu(h), training=training)
        skip = inputs
        if self.shortcut is not None:
            skip = self.shortcut(skip, training=training)
        if self.downsample:
            h = _downsample(h)
            skip = _downsample(skip)
        return h + skip

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        if self.downsample:
            h = None if h is None else h // 2
            w = None if w is None else w // 2
        return (b, h, w, self.channels)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "downsample": self.downsample,
            "spectral_norm": self.spectral_norm,
        }


@keras.saving.register_keras_serializable(package="alphagan_tf")
class Discriminator(keras.Model):
    """AutoGAN's CIFAR discriminator with spectral normalization on every layer.

    Args:
        df: channels of every block (128).
        spectral_norm: "reference" (PyTorch semantics, default) or "keras"
            (`keras.layers.SpectralNormalization`); see the module docstring.

    Call args:
        inputs: images, float32 [B, H, W, 3] in [-1, 1] (H, W divisible by 4:
            32x32 or 48x48).
        training: True on the discriminator's and generator's training steps
            (advances the spectral-norm power iteration; see the module docstring).

    Returns:
        logits: float32 [B, 1] (unbounded; the hinge loss takes them as they are).
    """

    def __init__(self, df: int = 128, spectral_norm: str = "reference", **kwargs):
        kwargs.setdefault("name", "discriminator")
        super().__init__(**kwargs)
        self.df = int(df)
        self.spectral_norm = _check_spectral_norm(spectral_norm)
        sn = self.spectral_norm
        self.block1 = OptimizedDisBlock(self.df, spectral_norm=sn, name="block1")
        self.block2 = DisBlock(self.df, downsample=True, spectral_norm=sn, name="block2")
        self.block3 = DisBlock(self.df, downsample=False, spectral_norm=sn, name="block3")
        self.block4 = DisBlock(self.df, downsample=False, spectral_norm=sn, name="block4")
        self.linear = _sn_dense(1, "linear", sn)
        self.build((None, None, None, 3))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in (self.block1, self.block2, self.block3, self.block4):
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.linear.build((shape[0], self.df))

    def call(self, inputs, training=None):
        h = inputs
        for block in (self.block1, self.block2, self.block3, self.block4):
            h = block(h, training=training)
        h = ops.sum(ops.relu(h), axis=(1, 2))
        return self.linear(h, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "df": self.df, "spectral_norm": self.spectral_norm}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

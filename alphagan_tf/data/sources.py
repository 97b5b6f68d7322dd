"""Image sources, selected by a spec string.

Accepted specs:

    demo                 scikit-learn's handwritten digits (1797 images, 8x8 grey,
                         shipped inside scikit-learn: no download), resized.
    npz:/path/file.npz   an `x_train` uint8 array [N, H, W, 3] (or [N, H, W] /
                         [N, H, W, 1] greyscale), e.g. ../shared/data/cifar10_sample.npz.
    folder:/path         every .png/.jpg/.jpeg/.bmp/.gif under the folder (recursive,
                         sorted by path), decoded to RGB.
    cifar10              tfds `cifar10`, split `train`.
    stl10                tfds `stl10`, split `train+unlabelled` (the GAN protocol; tfds
                         spells the split `unlabelled`).
    tfds:NAME[:SPLIT]    any tfds image dataset with an `image` feature; SPLIT
                         defaults to `train` (NAME may carry a config and version,
                         e.g. `tfds:celeb_a:2.1.0:train`). A split the prepared dataset
                         does not have is a `DataSourceError` listing the splits it has.

In-memory sources (demo, npz, folder) give a uint8 numpy array [N, S, S, 3];
tfds sources give a `tf.data.Dataset` of uint8 [S, S, 3] images plus the number
of examples. Every image is centre-cropped to a square (a no-op for square
images) and resized to S x S, bilinear with antialiasing.

tfds is imported only inside the functions that need it, and a dataset that is
not prepared locally is never downloaded unless asked (`download=True`): the
default is to raise `DatasetUnavailableError` at once with instructions.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import threading
import urllib.error
import urllib.request
from typing import Any

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

# tfds names with a default split of their own; every other tfds dataset uses
# "train" unless the spec names a split. tfds spells STL-10's third split "unlabelled".
_DEFAULT_TFDS_SPLITS = {"cifar10": "train", "stl10": "train+unlabelled"}

# The image side the GAN papers (and AlphaGAN) use for a dataset: CIFAR-10 at its own
# 32x32, STL-10's 96x96 resized to 48x48.
PROTOCOL_IMAGE_SIZES = {"cifar10": 32, "stl10": 48}

ACCEPTED_SPECS = (
    "'demo', 'npz:/path/file.npz', 'folder:/path', 'cifar10', 'stl10', "
    "'tfds:NAME[:SPLIT]'"
)

# How long the reachability check of a download URL may take, in seconds.
_CONNECT_TIMEOUT_S = 3.0


class DatasetUnavailableError(RuntimeError):
    """A tfds dataset is not prepared locally and cannot be downloaded now."""


class DataSourceError(ValueError):
    """The images a spec names cannot be used: a bad spec, file, folder, shape or count."""


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A parsed source spec.

    Attributes:
        kind: "demo", "npz", "folder" or "tfds".
        location: the file or folder for npz/folder; the tfds name (with optional
            config and version) for tfds; "" for demo.
        split: the tfds split ("" for in-memory sources).
    """

    kind: str
    location: str = ""
    split: str = ""

    @property
    def in_memory(self) -> bool:
        return self.kind != "tfds"


@dataclasses.dataclass(frozen=True)
class TfdsImages:
    """A tfds split as uint8 images.

    Attributes:
        dataset: `tf.data.Dataset` of uint8 [image_size, image_size, 3], finite, one
            pass over the split (files shuffled when asked).
        num_examples: the number of images in the split (from the dataset's metadata).
    """

    dataset: Any
    num_examples: int


_VERSION = re.compile(r"^(\d+\.\d+\.\d+|\d+\.\d+\.\*|\d+\.\*\.\*)$")


def parse_source(spec: str) -> SourceSpec:
    """Parses a source spec string (see the module docstring).

    Raises:
        ValueError: the spec is not one of the accepted forms.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataSourceError(f"Dataset spec must be one of {ACCEPTED_SPECS}. Received: {spec!r}")
    spec = spec.strip()
    if spec == "demo":
        return SourceSpec("demo")
    if spec in _DEFAULT_TFDS_SPLITS:
        return SourceSpec("tfds", spec, _DEFAULT_TFDS_SPLITS[spec])
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("npz", "folder"):
        if not rest:
            raise DataSourceError(f"Dataset spec {spec!r} names no path; expected '{kind}:/path'.")
        return SourceSpec(kind, rest)
    if sep and kind == "tfds":
        parts = rest.split(":")
        name = parts[0]
        if len(parts) > 1 and _VERSION.match(parts[1]):
            name = f"{name}:{parts[1]}"
            parts = [name, *parts[2:]]
        if not name or len(parts) > 2 or (len(parts) == 2 and not parts[1]):
            raise DataSourceError(
                f"Dataset spec must look like 'tfds:NAME[:SPLIT]'. Received: {spec!r}"
            )
        base = name.split(":")[0]
        split = parts[1] if len(parts) == 2 else _DEFAULT_TFDS_SPLITS.get(base, "train")
        return SourceSpec("tfds", name, split)
    raise DataSourceError(
        f"Unknown dataset spec; accepted forms are {ACCEPTED_SPECS}. Received: {spec!r}"
    )


def protocol_image_size(spec: str | SourceSpec) -> int | None:
    """The image side of a dataset's GAN protocol (32 CIFAR-10, 48 STL-10), else None.

    Any spec reading the tfds dataset counts ("stl10", "tfds:stl10:train",
    "tfds:stl10:1.0.0"); in-memory sources have none.
    """
    source = parse_source(spec) if isinstance(spec, str) else spec
    if source.kind != "tfds":
        return None
    return PROTOCOL_IMAGE_SIZES.get(source.location.split(":")[0].split("/")[0])


def describe(spec: str) -> str:
    """One line saying what a spec reads, for logs (no I/O)."""
    source = parse_source(spec)
    if source.kind == "demo":
        return "demo: scikit-learn handwritten digits (1797 images, 8x8 grey -> RGB)"
    if source.kind == "npz":
        return f"npz: x_train of {source.location}"
    if source.kind == "folder":
        return f"folder: images under {source.location}"
    return f"tfds: {source.location}, split {source.split!r}"


# ----------------------------------------------------------------------------
# Resizing shared by every source.


def square_resize(images, image_size: int):
    """Centre-crops images to a square and resizes them (bilinear, antialiased).

    Args:
        images: uint8 tensor [H, W, C] or [N, H, W, C], C in {1, 3, 4}.
        image_size: output side S.

    Returns:
        uint8 tensor [..., S, S, 3] (grey is repeated, alpha dropped). Images
        already S x S are returned unchanged (exact pixels).
    """
    # here: the data sources import without TensorFlow
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    channels = images.shape[-1]
    if channels == 1:
        images = tf.image.grayscale_to_rgb(images)
    elif channels == 4:
        images = images[..., :3]
    elif channels != 3:
        raise DataSourceError(f"Images must have 1, 3 or 4 channels. Received: shape={images.shape}")
    height, width = tf.shape(images)[-3], tf.shape(images)[-2]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    images = images[..., top : top + side, left : left + side, :]

    def resize():
        resized = tf.image.resize(
            tf.cast(images, tf.float32), (image_size, image_size), "bilinear", antialias=True
        )
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    if images.shape[-3] == image_size and images.shape[-2] == image_size:
        return images
    if images.shape[-3] is not None and images.shape[-2] is not None:
        return resize()
    return tf.cond(tf.equal(side, image_size), lambda: tf.identity(images), resize)


def _resize_array(images: np.ndarray, image_size: int, chunk: int = 512) -> np.ndarray:
    """square_resize over a numpy batch, in chunks to bound memory."""
    out = [
        np.asarray(square_resize(images[i : i + chunk], image_size))
        for i in range(0, len(images), chunk)
    ]
    if not out:
        return np.zeros((0, image_size, image_size, 3), np.uint8)
    return np.concatenate(out, axis=0)


def _check_image_size(image_size: int) -> None:
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise DataSourceError(f"image_size must be a positive int. Received: image_size={image_size!r}")


# ----------------------------------------------------------------------------
# In-memory sources.


def load_demo(image_size: int) -> np.ndarray:
    """scikit-learn's handwritten digits as RGB images.

    The 8x8 digits (values 0..16, white digit on black) are scaled to 0..255
    (v * 255 / 16, rounded) and resized bilinearly.

    Returns:
        uint8 [1797, image_size, image_size, 3].
    """
    # here: the data sources import without TensorFlow
    from sklearn.datasets import load_digits

    _check_image_size(image_size)
    digits = load_digits().images  # float64 [1797, 8, 8] in 0..16
    grey = np.round(digits * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return _resize_array(grey[..., None], image_size)


def load_npz(path: str, image_size: int) -> np.ndarray:
    """The `x_train` array of an .npz file.

    Args:
        path: an .npz file holding `x_train`: uint8 [N, H, W, 3], [N, H, W, 1]
            or [N, H, W].
        image_size: output side S.

    Returns:
        uint8 [N, S, S, 3].

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an npz, or `x_train` is missing, not uint8 or
            not a batch of images.
    """
    _check_image_size(image_size)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"npz dataset file not found: {path!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same message
        raise DataSourceError(
            f"Could not read {path!r} as an .npz file (numpy.savez output holding x_train, "
            f"uint8 [N, H, W, 3]): {type(e).__name__}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataSourceError(f"{path!r} is a single .npy array, expected an .npz with 'x_train'.")
    with archive:
        if "x_train" not in archive.files:
            raise DataSourceError(
                f"{path!r} has no 'x_train' array; expected uint8 [N, H, W, 3]. "
                f"Received: keys={sorted(archive.files)}"
            )
        images = archive["x_train"]
    if images.dtype != np.uint8:
        raise DataSourceError(
            f"'x_train' in {path!r} must be uint8 in 0..255. Received: dtype={images.dtype}"
        )
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise DataSourceError(
            f"'x_train' in {path!r} must be a non-empty [N, H, W, 3], [N, H, W, 1] or "
            f"[N, H, W] array. Received: shape={images.shape}"
        )
    return _resize_array(images, image_size)


def list_image_files(folder: str) -> list[str]:
    """Every image file under `folder` (recursive), sorted by relative path."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        files.extend(
            os.path.join(root, name)
            for name in names
            if name.lower().endswith(IMAGE_EXTENSIONS)
        )
    return sorted(files, key=lambda f: os.path.relpath(f, folder))


def load_folder(folder: str, image_size: int) -> np.ndarray:
    """Every image under a folder, decoded to RGB (GIFs: first frame).

    Returns:
        uint8 [N, image_size, image_size, 3], in sorted path order.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it holds no image, or an image cannot be decoded.
    """
    # here: the data sources import without TensorFlow
    from PIL import Image

    _check_image_size(image_size)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Image folder not found: {folder!r}")
    files = list_image_files(folder)
    if not files:
        raise DataSourceError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder!r}."
        )
    images = np.zeros((len(files), image_size, image_size, 3), np.uint8)
    for i, file in enumerate(files):
        try:
            with Image.open(file) as image:
                rgb = np.asarray(image.convert("RGB"))
        except Exception as e:  # noqa: BLE001 - PIL raises several types
            raise DataSourceError(f"Could not decode image {file!r}: {e}") from e
        images[i] = np.asarray(square_resize(rgb, image_size))
    return images


def load_in_memory(spec: str | SourceSpec, image_size: int) -> np.ndarray:
    """Loads a demo, npz or folder source.

    Returns:
        uint8 [N, image_size, image_size, 3].
    """
    source = parse_source(spec) if isinstance(spec, str) else spec
    if source.kind == "demo":
        return load_demo(image_size)
    if source.kind == "npz":
        return load_npz(source.location, image_size)
    if source.kind == "folder":
        return load_folder(source.location, image_size)
    raise DataSourceError(f"Not an in-memory source (demo, npz:, folder:). Received: {source}")


# ----------------------------------------------------------------------------
# tfds sources.


def url_reachable(url: str, timeout: float = _CONNECT_TIMEOUT_S) -> tuple[bool, str]:
    """Whether a download URL answers an HTTP HEAD request within `timeout` seconds.

    A TCP connection alone proves little (sandboxes and proxies accept any), so
    the server must answer with a status below 400 (405/501, HEAD not allowed,
    also count as reachable). The request runs in a daemon thread so that a
    hanging DNS lookup cannot hold the caller longer than the timeout either.

    Returns:
        (reachable, reason): reason says what failed, "" when reachable.
    """
    result: list[tuple[bool, str]] = []

    def request():
        try:
            head = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(head, timeout=timeout):
                result.append((True, ""))
        except urllib.error.HTTPError as e:
            result.append((e.code in (405, 501), f"HTTP {e.code}"))
        except (urllib.error.URLError, OSError, ValueError) as e:
            result.append((False, str(getattr(e, "reason", e))))

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return result[0] if result else (False, f"no answer within {timeout:g} s")


def _unavailable_message(
    name: str, split: str, builder, manual_dir: str | None, download: bool, why: str
) -> str:
    url_infos = builder.url_infos or {}
    archives = ", ".join(
        f"{info.filename} (from {url})" for url, info in url_infos.items() if info.filename
    ) or "the archives listed on the dataset's tfds catalog page"
    data_dir = str(builder.data_dir_root)
    variant = os.path.relpath(str(builder.data_dir), data_dir)
    return (
        f"tfds dataset {name!r} (split {split!r}) is not prepared in {data_dir} "
        f"({why}). On a machine with internet, prepare it with "
        f"`python -c \"import tensorflow_datasets as tfds; "
        f"tfds.builder('{name}', data_dir='DIR').download_and_prepare()\"`"
        + ("" if download else " (or run this command again with --download)")
        + f", then copy DIR to this machine and pass --data_dir=DIR (it must contain "
        f"{variant}/dataset_info.json). Or, to prepare it here without network, put the "
        f"original archive(s) {archives} in a folder and pass --manual_dir=FOLDER"
        + (f" (looked in {manual_dir})" if manual_dir else "")
        + "."
    )


def split_names(split: str) -> list[str]:
    """The split names of a tfds split expression: "train[:50%]+unlabelled" -> [train, unlabelled]."""
    return [part.split("[", 1)[0].strip() for part in str(split).split("+")]


def check_split(name: str, builder, split: str) -> None:
    """Raises DataSourceError unless every split `split` names is one of the prepared dataset's.

    Args:
        name: the tfds name, for the message.
        builder: a prepared tfds builder (its info lists the splits).
        split: a tfds split expression ("train+unlabelled", "train[:10%]"); other split
            objects (`tfds.even_splits` results) are tfds' own and not checked.
    """
    if not isinstance(split, str):
        return
    known = sorted(str(key) for key in builder.info.splits.keys())
    unknown = [part for part in split_names(split) if part not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        raise DataSourceError(
            f"tfds dataset {name!r} has no split {unknown[0]!r} (in the split expression "
            f"{split!r}); its splits are {known}"
            + (f": did you mean {close[0]!r}?" if close else ".")
        )


def tfds_builder(
    name: str,
    *,
    split: str = "train",
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = False,
):
    """A prepared tfds builder, preparing it only when that can work now.

    Order: data already prepared in `data_dir` -> use it. Otherwise, when every
    archive the dataset needs is in `manual_dir` -> prepare from there (no network).
    Otherwise, when `download` is True and every download URL answers within a
    few seconds -> download and prepare. Otherwise raise at once, so an offline
    machine never waits through tfds' download retries.

    Raises:
        DataSourceError: tfds has no dataset called `name`, or the prepared dataset
            has no split that `split` names.
        DatasetUnavailableError: not prepared and cannot be prepared now.
    """
    # tensorflow_datasets: loaded only for a tfds source (slow to import)
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        first_line = str(e).splitlines()[0]
        raise DataSourceError(f"tfds has no dataset {name!r} ({first_line}).") from None
    if builder.is_prepared():
        check_split(name, builder, split)
        return builder

    url_infos = builder.url_infos or {}
    if manual_dir and url_infos:  # every archive tfds would download is there
        manual_ready = all(
            info.filename and os.path.exists(os.path.join(manual_dir, info.filename))
            for info in url_infos.values()
        )
    else:  # datasets with manual-download instructions list no URLs
        manual_ready = bool(manual_dir and os.path.isdir(manual_dir) and os.listdir(manual_dir))
    if not manual_ready:
        if not download:
            why = "not downloading: download=False"
            if manual_dir:
                why += f"; the archive(s) it needs are not all in {manual_dir}"
            raise DatasetUnavailableError(
                _unavailable_message(name, split, builder, manual_dir, download, why)
            )
        for url in url_infos:
            reachable, reason = url_reachable(url)
            if not reachable:
                raise DatasetUnavailableError(
                    _unavailable_message(
                        name, split, builder, manual_dir, download,
                        f"download URL {url} is unreachable: {reason}",
                    )
                )
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    try:
        builder.download_and_prepare(download_config=download_config)
    except OSError as e:  # network and file errors (requests' errors are OSErrors)
        raise DatasetUnavailableError(
            _unavailable_message(
                name, split, builder, manual_dir, download, f"preparing failed: {e}"
            )
        ) from e
    check_split(name, builder, split)
    return builder


def load_tfds(
    name: str,
    split: str,
    *,
    image_size: int,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = False,
    shuffle_files: bool = False,
    seed: int | None = None,
    builder=None,
) -> TfdsImages:
    """A tfds split as uint8 square images.

    Args:
        name: tfds name (optionally "name/config" and ":version").
        split: a tfds split expression ("train", "train[:50%]+unlabelled[:50%]",
            or a `tfds.even_splits` result).
        image_size: output side S.
        data_dir, manual_dir, download: see `tfds_builder`.
        shuffle_files: shuffle the order of the record files (seeded by `seed`).
        seed: file-shuffling seed.
        builder: an already prepared builder (skips `tfds_builder`).

    Returns:
        TfdsImages with a dataset of uint8 [S, S, 3] and the split's size.
    """
    # tensorflow_datasets: loaded only for a tfds source (slow to import)
    import tensorflow as tf
    import tensorflow_datasets as tfds

    _check_image_size(image_size)
    if builder is None:
        builder = tfds_builder(
            name, split=split, data_dir=data_dir, manual_dir=manual_dir, download=download
        )
    features = builder.info.features
    if "image" not in features:
        raise DataSourceError(
            f"tfds dataset {name!r} has no 'image' feature. Received: features={list(features)}"
        )
    num_examples = int(builder.info.splits[split].num_examples)
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    dataset = builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config)
    dataset = dataset.map(
        lambda example: square_resize(example["image"], image_size),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return TfdsImages(dataset=dataset, num_examples=num_examples)

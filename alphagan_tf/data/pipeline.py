"""tf.data pipelines: the search's weight / architecture halves and retraining.

Images reach the networks as float32 [batch, S, S, 3] in [-1, 1]
(x / 127.5 - 1, the range of the generator's tanh), never normalised by
per-channel mean / std.

The search split (AlphaGAN): the training set is divided 50/50 into a weight
half and an architecture half with no overlap; each half gets its own shuffled,
repeated, batched (drop_remainder) and prefetched pipeline.

Checkpointable iterators: `tf.train.Checkpoint(iterator=iter(ds))` works on
every pipeline here. In-memory data (demo, npz, folder) is shuffled through
its indices: each epoch is a stateless permutation seeded by (seed, stream,
epoch), so an iterator checkpoint holds one int64 permutation plus two prefetched
batches, never a buffer of images, and the same seed gives the same batches
whatever TensorFlow's global seed. tfds data streams from its record files
(file order shuffled with a seed) through a shuffle buffer of uint8 images
(`shuffle_buffer`, default 2048 images), which an iterator checkpoint does
hold; its order is reproducible for the same seed and the same TensorFlow
global seed (tf.data's buffer shuffle mixes the two).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from alphagan_tf.data import sources

# Random streams derived from the one user seed.
_SPLIT_STREAM, _TRAIN_STREAM, _WEIGHT_STREAM, _ARCH_STREAM = 0, 1, 2, 3
_PREFETCH_BATCHES = 2
DEFAULT_SHUFFLE_BUFFER = 2048


@dataclasses.dataclass(frozen=True)
class SearchData:
    """The two input pipelines of the search.

    Attributes:
        weight: batches for the weight steps (G, D and the worst-case players):
            float32 [batch_size, S, S, 3] in [-1, 1], infinite.
        arch: batches for the architecture steps, same format, disjoint images.
        num_weight_examples: images in the weight half.
        num_arch_examples: images in the architecture half.
        image_size: S.
        batch_size: images per batch.
        description: what was read, for logs.
    """

    weight: tf.data.Dataset
    arch: tf.data.Dataset
    num_weight_examples: int
    num_arch_examples: int
    image_size: int
    batch_size: int
    description: str


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The whole training set as one pipeline (for retraining a derived network).

    Attributes:
        dataset: float32 [batch_size, S, S, 3] in [-1, 1], shuffled, infinite.
        num_examples: images in the training set (an epoch is
            num_examples // batch_size steps).
        image_size: S.
        batch_size: images per batch.
        description: what was read, for logs.
    """

    dataset: tf.data.Dataset
    num_examples: int
    image_size: int
    batch_size: int
    description: str


def scale_images(images: Any) -> tf.Tensor:
    """uint8 images in [0, 255] -> float32 in [-1, 1] (x / 127.5 - 1).

    0 maps to exactly -1 and 255 to exactly 1.
    """
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise sources.DataSourceError(f"{name} must be a positive int. Received: {name}={value!r}")


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise sources.DataSourceError(f"seed must be a non-negative int. Received: seed={seed!r}")


def _derive_seed(seed: int, stream: int) -> int:
    """An independent 31-bit seed for one random stream of one user seed."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0] >> 1)


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def split_indices(num_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The search split of `num_examples` images: a seeded 50/50 partition.

    Returns:
        (weight_indices, arch_indices): int64 arrays, disjoint, together a
        permutation of range(num_examples); the weight half gets the extra image
        when num_examples is odd.
    """
    _check_seed(seed)
    permutation = np.random.default_rng(_derive_seed(seed, _SPLIT_STREAM)).permutation(num_examples)
    half = num_examples - num_examples // 2
    return permutation[:half].astype(np.int64), permutation[half:].astype(np.int64)


def images_pipeline(
    images: np.ndarray, *, batch_size: int, seed: int, stream: int = _TRAIN_STREAM
) -> tf.data.Dataset:
    """An infinite shuffled pipeline over in-memory images.

    Every epoch visits each image once, in a permutation drawn statelessly from
    (seed, stream, epoch); batches run across epoch boundaries (none is dropped).

    Args:
        images: uint8 [N, S, S, 3].
        batch_size: images per batch.
        seed: non-negative int.
        stream: which random stream of `seed` to use (distinct pipelines of one
            seed use distinct streams).

    Returns:
        Dataset of float32 [batch_size, S, S, 3] in [-1, 1].
    """
    _check_positive("batch_size", batch_size)
    _check_seed(seed)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise sources.DataSourceError(
            "images must be uint8 [N, S, S, 3]. "
            f"Received: dtype={images.dtype}, shape={images.shape}"
        )
    num_examples = len(images)
    if num_examples < batch_size:
        raise sources.DataSourceError(
            f"A pipeline needs at least batch_size={batch_size} images. "
            f"Received: {num_examples} images"
        )
    table = tf.constant(images)
    base_seed = tf.constant([_derive_seed(seed, stream), stream], tf.int64)

    def permutation(epoch):
        epoch_seed = tf.random.experimental.stateless_fold_in(base_seed, epoch)
        return tf.random.experimental.stateless_shuffle(
            tf.range(num_examples, dtype=tf.int64), seed=epoch_seed
        )

    dataset = (
        tf.data.Dataset.counter()
        .map(permutation)
        .unbatch()
        .batch(batch_size, drop_remainder=True)
        .map(lambda index: scale_images(tf.gather(table, index)))
        .prefetch(_PREFETCH_BATCHES)
    )
    return dataset.with_options(_options())


def _tfds_pipeline(
    images: sources.TfdsImages, *, batch_size: int, seed: int, shuffle_buffer: int
) -> tf.data.Dataset:
    buffer = max(1, min(shuffle_buffer, images.num_examples))
    dataset = (
        images.dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .map(scale_images)
        .prefetch(_PREFETCH_BATCHES)
    )
    return dataset.with_options(_options())


def search_datasets_from_images(
    images: np.ndarray, *, batch_size: int, seed: int, description: str = "in-memory images"
) -> SearchData:
    """The search split of in-memory images (see `search_datasets`).

    Args:
        images: uint8 [N, S, S, 3], N >= 2 * batch_size.
    """
    images = np.asarray(images)
    _check_positive("batch_size", batch_size)
    if images.ndim != 4:
        raise sources.DataSourceError(f"images must be uint8 [N, S, S, 3]. Received: shape={images.shape}")
    if len(images) < 2 * batch_size:
        raise sources.DataSourceError(
            f"The 50/50 search split needs at least 2 * batch_size = {2 * batch_size} images. "
            f"Received: {len(images)} images ({description})"
        )
    weight_indices, arch_indices = split_indices(len(images), seed)
    return SearchData(
        weight=images_pipeline(
            images[weight_indices], batch_size=batch_size, seed=seed, stream=_WEIGHT_STREAM
        ),
        arch=images_pipeline(
            images[arch_indices], batch_size=batch_size, seed=seed, stream=_ARCH_STREAM
        ),
        num_weight_examples=len(weight_indices),
        num_arch_examples=len(arch_indices),
        image_size=int(images.shape[1]),
        batch_size=batch_size,
        description=description,
    )


def half_splits(split: str) -> tuple[Any, Any]:
    """A tfds split expression cut in two disjoint halves, part by part.

    "train" -> ("train[:50%]", "train[50%:]"); "train+unlabelled" ->
    ("train[:50%]+unlabelled[:50%]", "train[50%:]+unlabelled[50%:]"). Parts that
    are already slices ("train[:10%]") are halved with `tfds.even_splits`.
    """
    parts = [part.strip() for part in str(split).split("+")]
    if not all(parts):
        raise sources.DataSourceError(f"Not a tfds split expression. Received: split={split!r}")
    if all("[" not in part for part in parts):
        return (
            "+".join(f"{part}[:50%]" for part in parts),
            "+".join(f"{part}[50%:]" for part in parts),
        )
    # tensorflow_datasets: loaded only for a tfds source (slow to import)
    import tensorflow_datasets as tfds

    halves = [tfds.even_splits(part, 2) for part in parts]
    weight, arch = halves[0]
    for first, second in halves[1:]:
        weight, arch = weight + first, arch + second
    return weight, arch


def search_datasets(
    source_spec: str,
    *,
    image_size: int,
    batch_size: int,
    seed: int,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> SearchData:
    """The search's two pipelines: the training set split 50/50 with no overlap.

    In-memory sources are split by a seeded permutation of their indices; tfds
    sources by split slicing (`train[:50%]` / `train[50%:]`; for STL-10 both
    parts of `train+unlabelled` are halved).

    Args:
        source_spec: see `sources.parse_source` ("demo", "npz:...", "folder:...",
            "cifar10", "stl10", "tfds:NAME[:SPLIT]").
        image_size: side S of the square images.
        batch_size: images per batch.
        seed: non-negative int; the same seed gives the same split and batches.
        data_dir: tfds data directory (default: tfds' own).
        manual_dir: folder of the dataset's original archives, for offline machines.
        download: allow downloading a tfds dataset that is not prepared.
        shuffle_buffer: images in each tfds shuffle buffer.

    Returns:
        SearchData with `weight` and `arch` pipelines of float32
        [batch_size, S, S, 3] in [-1, 1].

    Raises:
        ValueError: bad spec, file contents or sizes.
        FileNotFoundError: the npz file or folder is missing.
        sources.DatasetUnavailableError: a tfds dataset is not prepared and cannot be
            prepared now.
    """
    _check_positive("image_size", image_size)
    _check_positive("batch_size", batch_size)
    _check_positive("shuffle_buffer", shuffle_buffer)
    _check_seed(seed)
    source = sources.parse_source(source_spec)
    description = sources.describe(source_spec)
    if source.in_memory:
        images = sources.load_in_memory(source, image_size)
        return search_datasets_from_images(
            images,
            batch_size=batch_size,
            seed=seed,
            description=f"{description}, {len(images)} images",
        )

    builder = sources.tfds_builder(
        source.location,
        split=source.split,
        data_dir=data_dir,
        manual_dir=manual_dir,
        download=download,
    )
    halves = {}
    for role, split, stream in zip(
        ("weight", "arch"), half_splits(source.split), (_WEIGHT_STREAM, _ARCH_STREAM)
    ):
        stream_seed = _derive_seed(seed, stream)
        images = sources.load_tfds(
            source.location, split, image_size=image_size, shuffle_files=True,
            seed=stream_seed, builder=builder,
        )
        if images.num_examples < 1:
            raise sources.DataSourceError(f"The {role} half of {source_spec!r} is empty (split {split!r}).")
        dataset = _tfds_pipeline(
            images, batch_size=batch_size, seed=stream_seed, shuffle_buffer=shuffle_buffer
        )
        halves[role] = (dataset, images.num_examples)
    return SearchData(
        weight=halves["weight"][0],
        arch=halves["arch"][0],
        num_weight_examples=halves["weight"][1],
        num_arch_examples=halves["arch"][1],
        image_size=image_size,
        batch_size=batch_size,
        description=description,
    )


def training_dataset(
    source_spec: str,
    *,
    image_size: int,
    batch_size: int,
    seed: int,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> TrainingData:
    """The whole training set: shuffled, repeated, batched, prefetched.

    Arguments as in `search_datasets`.

    Returns:
        TrainingData whose dataset yields float32 [batch_size, S, S, 3] in [-1, 1].
    """
    _check_positive("image_size", image_size)
    _check_positive("batch_size", batch_size)
    _check_positive("shuffle_buffer", shuffle_buffer)
    _check_seed(seed)
    source = sources.parse_source(source_spec)
    description = sources.describe(source_spec)
    if source.in_memory:
        images = sources.load_in_memory(source, image_size)
        dataset = images_pipeline(images, batch_size=batch_size, seed=seed, stream=_TRAIN_STREAM)
        description = f"{description}, {len(images)} images"
        return TrainingData(dataset, len(images), image_size, batch_size, description)
    stream_seed = _derive_seed(seed, _TRAIN_STREAM)
    images = sources.load_tfds(
        source.location, source.split, image_size=image_size, data_dir=data_dir,
        manual_dir=manual_dir, download=download, shuffle_files=True, seed=stream_seed,
    )
    dataset = _tfds_pipeline(
        images, batch_size=batch_size, seed=stream_seed, shuffle_buffer=shuffle_buffer
    )
    return TrainingData(dataset, images.num_examples, image_size, batch_size, description)


def evaluation_dataset(
    source_spec: str,
    *,
    image_size: int,
    batch_size: int,
    max_examples: int | None = None,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = False,
) -> tf.data.Dataset:
    """Real training images for metric statistics: one pass, in stored order.

    Args:
        max_examples: read at most this many images (default: all).
        Others as in `search_datasets`.

    Returns:
        Finite dataset of float32 [<= batch_size, S, S, 3] in [-1, 1] (the last
        batch may be smaller).
    """
    _check_positive("image_size", image_size)
    _check_positive("batch_size", batch_size)
    source = sources.parse_source(source_spec)
    if source.in_memory:
        images = sources.load_in_memory(source, image_size)
        dataset = tf.data.Dataset.from_tensor_slices(images)
    else:
        dataset = sources.load_tfds(
            source.location, source.split, image_size=image_size, data_dir=data_dir,
            manual_dir=manual_dir, download=download,
        ).dataset
    if max_examples is not None:
        _check_positive("max_examples", max_examples)
        dataset = dataset.take(max_examples)
    dataset = dataset.batch(batch_size).map(scale_images).prefetch(_PREFETCH_BATCHES)
    return dataset.with_options(_options())

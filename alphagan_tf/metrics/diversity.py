"""Mode-collapse signals: sample diversity against real images, and digit-class counts.

Two pure float64 numpy statistics (no TensorFlow), and the warning the search and
training loops log from the first:

- `diversity_ratio(generated, real)`: the mean pairwise L2 distance of a batch of
  generated images divided by that of a batch of real images. A generator whose
  output ignores z scores 0; one that draws like the data scores about 1 (64 real
  demo digits against another 64: 0.97..1.03). Below `COLLAPSE_THRESHOLD` the
  generator is called collapsed (`check_diversity`).
- `class_histogram(logits)` / `distinct_classes(histogram)`: how many of a
  classifier's classes a batch of samples falls into (for the demo: the digits
  classifier of `alphagan_tf.tuner.demo_classifier`; 64 samples of a healthy demo
  generator cover 8..10 of the 10 digits), and `check_classes`, the warning
  when they cover fewer than `MIN_DEMO_CLASSES`. The class count catches what
  the ratio misses: a generator that draws one digit with noisy strokes keeps a
  ratio near 1 (measured: 3 digit classes, R 0.89).

The ratio measures spread, not quality: noise scores above 1. It is a warning
light for the training loops (one batch of samples from fixed latents, compared
with one batch of real images), not a metric to optimise.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np
from absl import logging

# Below this diversity ratio a generator is called collapsed. Measured on the demo
# (16x16 digits, 64 samples against 64 real images): collapsed generators (a search
# supernet whose 64 samples are one shape; generators whose output ignores z) score
# 0.00..0.30, healthy ones (>= 8 digit classes among 64 samples) 0.80..1.05.
COLLAPSE_THRESHOLD = 0.5

# The demo's criterion (issue 18): 64 samples of a healthy digits generator fall into
# at least this many of the 10 digit classes (64 real digits: 10).
MIN_DEMO_CLASSES = 8


def _flatten(images: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(images, dtype=np.float64)
    if array.ndim < 2:
        raise ValueError(
            f"{name} must be a batch [N, ...] of at least 2 images. Received: shape={array.shape}"
        )
    if array.shape[0] < 2:
        raise ValueError(
            f"{name} needs at least 2 images for a pairwise distance. "
            f"Received: shape={array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values. Received: shape={array.shape}")
    return array.reshape(array.shape[0], -1)


def mean_pairwise_distance(images: np.ndarray) -> float:
    """Mean L2 distance over all pairs i < j of a batch, in float64.

    Args:
        images: [N, ...] (e.g. float [N, H, W, 3] in [-1, 1]), N >= 2; each image is
            flattened to one vector.

    Returns:
        sum_{i<j} ||x_i - x_j||_2 / (N (N - 1) / 2), >= 0; 0 for identical images.
    """
    x = _flatten(images, "images")
    squared = np.sum(x * x, axis=1)
    # |x_i - x_j|^2 by the Gram matrix, relative to the pair's norms; clipped at 0
    # against rounding (identical images give exactly 0 after the clip).
    gram = x @ x.T
    d2 = np.maximum(squared[:, None] + squared[None, :] - 2.0 * gram, 0.0)
    upper = np.triu_indices(x.shape[0], k=1)
    return float(np.mean(np.sqrt(d2[upper])))


def diversity_ratio(generated: np.ndarray, real: np.ndarray) -> float:
    """Mean pairwise distance of generated images / that of real images.

    Args:
        generated: [N, H, W, C] generated images, N >= 2.
        real: [M, H, W, C] real images on the same scale (e.g. both in [-1, 1]), M >= 2.

    Returns:
        float >= 0: 0 when every generated image is the same, about 1 when the
        samples are as spread as the data.

    Raises:
        ValueError: fewer than 2 images, NaNs, different image shapes, or real
            images that are all identical (the ratio is undefined).
    """
    generated_vectors = _flatten(generated, "generated")
    real_vectors = _flatten(real, "real")
    if generated_vectors.shape[1] != real_vectors.shape[1]:
        raise ValueError(
            "generated and real images must have the same shape. Received: "
            f"generated={np.shape(generated)}, real={np.shape(real)}"
        )
    real_distance = mean_pairwise_distance(real_vectors)
    if real_distance == 0.0:
        raise ValueError(
            f"The real images are all identical (mean pairwise distance 0): no scale to "
            f"compare with. Received: real shape={np.shape(real)}"
        )
    return mean_pairwise_distance(generated_vectors) / real_distance


@dataclasses.dataclass(frozen=True)
class DiversityCheck:
    """The outcome of `check_diversity`.

    Attributes:
        ratio: `diversity_ratio(generated, real)`.
        generated_distance: mean pairwise L2 distance of the generated batch.
        real_distance: that of the real batch.
        threshold: the ratio below which the generator is called collapsed.
        collapsed: ratio < threshold.
    """

    ratio: float
    generated_distance: float
    real_distance: float
    threshold: float
    collapsed: bool

    def warning(self, where: str = "") -> str | None:
        """The line to log when collapsed (None otherwise); `where` e.g. "epoch 12"."""
        if not self.collapsed:
            return None
        prefix = f"{where}: " if where else ""
        return (
            f"{prefix}the generator may have mode-collapsed: its samples' mean pairwise "
            f"distance is {self.ratio:.2f} x that of real images (below {self.threshold:g}; "
            f"{self.generated_distance:.3g} vs {self.real_distance:.3g}). Look at the samples."
        )


def check_diversity(
    generated: np.ndarray, real: np.ndarray, threshold: float = COLLAPSE_THRESHOLD
) -> DiversityCheck:
    """Compares a batch of samples' spread with real images' (see `diversity_ratio`).

    Args:
        generated: [N, H, W, C] generated images, N >= 2.
        real: [M, H, W, C] real images on the same scale, M >= 2.
        threshold: collapsed when the ratio is below it (default `COLLAPSE_THRESHOLD`).

    Returns:
        A `DiversityCheck`; `.warning(where)` is the message to log, None when healthy.
    """
    if not threshold > 0.0:
        raise ValueError(f"threshold must be > 0. Received: threshold={threshold!r}")
    generated_distance = mean_pairwise_distance(generated)
    real_distance = mean_pairwise_distance(real)
    ratio = diversity_ratio(generated, real)
    return DiversityCheck(
        ratio=ratio,
        generated_distance=generated_distance,
        real_distance=real_distance,
        threshold=float(threshold),
        collapsed=ratio < threshold,
    )


def check_and_warn(
    generated: np.ndarray, real: np.ndarray, where: str, threshold: float = COLLAPSE_THRESHOLD
) -> DiversityCheck:
    """`check_diversity`, logging its warning (absl, WARNING) when the samples look collapsed.

    What the search and training loops call on their fixed-latent samples; `where`
    names the moment, e.g. "epoch 12" or "iteration 300".
    """
    check = check_diversity(generated, real, threshold)
    message = check.warning(where)
    if message:
        logging.warning(message)
    return check


def first_images(batches: Iterable, count: int = 64) -> np.ndarray:
    """The first `count` images of an iterable of batches, as one float64 array.

    Args:
        batches: e.g. a `tf.data.Dataset` of [B, H, W, C] batches; a dataset is
            iterated afresh (a new iterator), so a training loop's own iterator and
            its checkpointed position are untouched.
        count: images wanted (>= 2).

    Returns:
        float64 [count, H, W, C].

    Raises:
        ValueError: the batches run out before `count` images.
    """
    if count < 2:
        raise ValueError(f"count must be >= 2. Received: count={count!r}")
    taken, total = [], 0
    for batch in batches:
        array = np.asarray(batch, dtype=np.float64)
        taken.append(array[: count - total])
        total += len(taken[-1])
        if total >= count:
            return np.concatenate(taken)
    raise ValueError(f"The batches ran out after {total} images; {count} wanted.")


def class_histogram(
    logits: np.ndarray, num_classes: int | None = None, min_confidence: float = 0.0
) -> np.ndarray:
    """How many samples a classifier assigns to each class (argmax of the logits).

    Args:
        logits: float [N, C] class logits (or probabilities) of N samples.
        num_classes: length of the histogram; default C.
        min_confidence: count a sample only when its softmax probability of the
            predicted class is at least this (0: count every sample).

    Returns:
        int64 [num_classes]: histogram[k] = samples predicted as class k.
    """
    scores = np.asarray(logits, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"logits must be [N, C]. Received: shape={scores.shape}")
    num_classes = scores.shape[1] if num_classes is None else int(num_classes)
    if num_classes < scores.shape[1]:
        raise ValueError(
            f"num_classes must be >= the logits' {scores.shape[1]} classes. "
            f"Received: num_classes={num_classes}"
        )
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1]. Received: {min_confidence!r}")
    predicted = np.argmax(scores, axis=1)
    if min_confidence > 0.0:
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        confidence = shifted.max(axis=1) / shifted.sum(axis=1)
        predicted = predicted[confidence >= min_confidence]
    return np.bincount(predicted, minlength=num_classes).astype(np.int64)


def distinct_classes(histogram: np.ndarray) -> int:
    """The number of classes with at least one sample in a `class_histogram`."""
    return int(np.count_nonzero(np.asarray(histogram)))


@dataclasses.dataclass(frozen=True)
class ClassCheck:
    """The outcome of `check_classes`.

    Attributes:
        histogram: samples per class (`class_histogram`), as a tuple.
        classes: classes with at least one sample.
        minimum: fewer classes than this is called collapsed.
        collapsed: classes < minimum.
    """

    histogram: tuple[int, ...]
    classes: int
    minimum: int
    collapsed: bool

    def warning(self, where: str = "") -> str | None:
        """The line to log when collapsed (None otherwise); `where` e.g. "epoch 12"."""
        if not self.collapsed:
            return None
        prefix = f"{where}: " if where else ""
        top = int(np.argmax(self.histogram))
        return (
            f"{prefix}the generator may have mode-collapsed: its {sum(self.histogram)} samples "
            f"fall into {self.classes} of {len(self.histogram)} classes (fewer than "
            f"{self.minimum}; {self.histogram[top]} are class {top}). Look at the samples."
        )


def check_classes(
    logits: np.ndarray,
    minimum: int = MIN_DEMO_CLASSES,
    num_classes: int | None = None,
    min_confidence: float = 0.0,
) -> ClassCheck:
    """How many classes a classifier finds among a batch of samples, against a minimum.

    Args:
        logits: float [N, C] class logits of N samples (e.g. the demo classifier's).
        minimum: the generator is called collapsed below this many classes
            (default `MIN_DEMO_CLASSES`, the demo's criterion).
        num_classes, min_confidence: as `class_histogram`.

    Returns:
        A `ClassCheck`; `.warning(where)` is the message to log, None when healthy.
    """
    histogram = class_histogram(logits, num_classes, min_confidence)
    if not 1 <= minimum <= len(histogram):
        raise ValueError(
            f"minimum must be in [1, {len(histogram)}] (the number of classes). "
            f"Received: minimum={minimum!r}"
        )
    classes = distinct_classes(histogram)
    return ClassCheck(
        histogram=tuple(int(n) for n in histogram),
        classes=classes,
        minimum=int(minimum),
        collapsed=classes < minimum,
    )

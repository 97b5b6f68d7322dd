"""Streaming IS / FID / KID of a sampler, and real-data statistics (`--make_stats`).

Both functions go over the images batch by batch with a keras Progbar and keep
no images and no full set of activations:
- FID: the running float64 mean and covariance of the "pool" features
  (`RunningStatistics`), against precomputed real statistics.
- IS: per-split sums of p(y|x) and of p log p (`StreamingInceptionScore`), the
  same numbers as `inception_score_from_logits` on all logits.
- KID needs feature rows, not moments, so a uniform random subset of at most
  `kid_max_samples` rows (default 10,000) is kept by reservoir sampling, for
  the generated samples here and for the real data in `compute_real_statistics`
  (stored in the statistics file as `kid_activations`). KID is then TF-GAN's
  block estimator (blocks of at most 1024) on the two shuffled subsets. With
  more samples than `kid_max_samples`, KID is computed on a subset: its
  standard error says how precise that is.

Example (offline, with the small classifier of `alphagan_tf.metrics.classifier`):

    features = ClassifierFeatures("/path/to/classifier")
    real = compute_real_statistics(batches_of_real_images, features, num_examples=10000)
    real.save("cifar10_train_classifier.npz")
    result = evaluate_samples(
        lambda n: generator(tf.random.normal([n, 128]), training=False),
        num_samples=10000, batch_size=100, feature_fn=features, real_stats=real)
    # {"num_samples": 10000, "inception_score_mean": ..., "fid": ..., "kid_mean": ...}
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from alphagan_tf.metrics.features import as_unit_range_images
from alphagan_tf.metrics.fid import frechet_distance_from_statistics
from alphagan_tf.metrics.inception_score import StreamingInceptionScore
from alphagan_tf.metrics.kid import kernel_inception_distance_from_activations
from alphagan_tf.metrics.statistics import FeatureStatistics, ReservoirSampler, RunningStatistics

FeatureFn = Callable[[Any], dict]
DEFAULT_KID_MAX_SAMPLES = 10_000


def evaluate_samples(
    sample_fn: Callable[[int], Any],
    num_samples: int,
    batch_size: int,
    feature_fn: FeatureFn,
    real_stats: FeatureStatistics | None = None,
    real_activations_for_kid: np.ndarray | None = None,
    *,
    num_splits: int = 10,
    kid_max_samples: int = DEFAULT_KID_MAX_SAMPLES,
    kid_max_block_size: int = 1024,
    seed: int = 0,
    verbose: int = 1,
) -> dict:
    """IS, FID and KID of `num_samples` images drawn batch by batch.

    Args:
        sample_fn: called as sample_fn(n) and returns n images [n, H, W, 3],
            float32 in [-1, 1] (or uint8 in [0, 255]), numpy or tf.Tensor.
        num_samples: images to evaluate (50,000 in the paper's protocol).
        batch_size: images per call of sample_fn and feature_fn.
        feature_fn: images -> {"pool": [B, D], "logits": [B, C] (optional)};
            see `alphagan_tf.metrics.features`.
        real_stats: real-data statistics for FID (and KID if they hold
            `kid_activations`); None skips FID.
        real_activations_for_kid: [K, D] real features for KID; overrides
            `real_stats.kid_activations`.
        num_splits: Inception Score splits.
        kid_max_samples: generated rows kept (reservoir) for KID; 0 skips KID.
        kid_max_block_size: block size of the KID estimator.
        seed: seed of the reservoir and of the KID row shuffle.
        verbose: Progbar verbosity (0 silent).

    Returns:
        A dict of Python numbers only (so every value takes float()); a metric
        that cannot be computed is left out:
        "num_samples";
        "inception_score_mean", "inception_score_std" (when feature_fn gives logits);
        "fid" (with real_stats);
        "kid_mean", "kid_num_real", "kid_num_generated" (with real KID rows and
        kid_max_samples > 0), "kid_std" (its standard error; left out with a
        single block, i.e. <= kid_max_block_size rows).

    Raises:
        ValueError: if real_stats come from another extractor or feature size.
    """
    # here: the metrics package imports without TensorFlow
    import keras

    if num_samples < 2 or batch_size < 1:
        raise ValueError(
            f"Need num_samples >= 2 and batch_size >= 1. Received: {num_samples}, {batch_size}"
        )
    extractor = getattr(feature_fn, "name", "")
    if real_stats is not None and real_stats.extractor and extractor and real_stats.extractor != extractor:
        raise ValueError(
            "The real statistics were made with another feature extractor; FID across "
            f"extractors is meaningless. Received: statistics from '{real_stats.extractor}', "
            f"feature_fn '{extractor}'"
        )
    running = RunningStatistics()
    reservoir = ReservoirSampler(kid_max_samples, seed=seed) if kid_max_samples > 0 else None
    inception_score: StreamingInceptionScore | None = None
    has_logits = None
    progbar = keras.utils.Progbar(num_samples, verbose=verbose, unit_name="sample")
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        images = as_unit_range_images(sample_fn(n))
        if images.shape[0] < n:
            raise ValueError(f"sample_fn({n}) returned too few images. Received: shape={tuple(images.shape)}")
        outputs = feature_fn(images[:n])
        pool = _output(outputs, "pool", n)
        running.update(pool)
        if reservoir is not None:
            reservoir.update(pool)
        if has_logits is None:
            has_logits = outputs.get("logits") is not None
            if has_logits:
                inception_score = StreamingInceptionScore(num_samples, num_splits)
        if has_logits:
            inception_score.update(_output(outputs, "logits", n))
        done += n
        progbar.update(done)

    result: dict = {"num_samples": int(num_samples)}
    if inception_score is not None:
        result["inception_score_mean"], result["inception_score_std"] = inception_score.result()
    if real_stats is not None:
        if real_stats.mu.shape != running.mean.shape:
            raise ValueError(
                "Real statistics and generated features differ in size. Received: "
                f"real mu {real_stats.mu.shape}, generated features {running.mean.shape}"
            )
        result["fid"] = frechet_distance_from_statistics(
            real_stats.mu, real_stats.sigma, running.mean, running.covariance
        )
    real_kid = real_activations_for_kid
    if real_kid is None and real_stats is not None:
        real_kid = real_stats.kid_activations
    if reservoir is not None and real_kid is not None and len(real_kid) >= 2:
        rng = np.random.default_rng(seed)
        real_rows = np.asarray(real_kid)[rng.permutation(len(real_kid))]
        generated_rows = reservoir.rows[rng.permutation(reservoir.rows.shape[0])]
        kid_mean, kid_std = kernel_inception_distance_from_activations(
            real_rows, generated_rows, max_block_size=kid_max_block_size
        )
        result["kid_mean"] = kid_mean
        if not math.isnan(kid_std):  # a single block has no standard error
            result["kid_std"] = kid_std
        result["kid_num_real"], result["kid_num_generated"] = len(real_rows), len(generated_rows)
    return result


def compute_real_statistics(
    dataset_iterable: Iterable[Any],
    feature_fn: FeatureFn,
    num_examples: int | None = None,
    batch_size: int = 100,
    *,
    dataset_name: str = "",
    kid_max_samples: int = DEFAULT_KID_MAX_SAMPLES,
    seed: int = 0,
    verbose: int = 1,
) -> FeatureStatistics:
    """Mean and covariance of the features of real images (for FID), streaming.

    Args:
        dataset_iterable: yields batches of images [b, H, W, 3], uint8 in
            [0, 255] or float in [-1, 1], numpy or tf.Tensor (e.g. a batched
            tf.data.Dataset); a batch may also be an (images, labels) tuple or a
            dict with an "image" entry (tfds style).
        feature_fn: the extractor, as for `evaluate_samples`.
        num_examples: images to use (the first ones); None uses them all.
        batch_size: largest chunk given to feature_fn at once.
        dataset_name: free text stored with the statistics.
        kid_max_samples: random real rows kept for KID (0: none).
        seed: seed of the KID reservoir.
        verbose: Progbar verbosity.

    Returns:
        `FeatureStatistics` (save it with `.save(path)`).

    Raises:
        ValueError: if the data ends before `num_examples` images.
    """
    # here: the metrics package imports without TensorFlow
    import keras

    running = RunningStatistics()
    reservoir = ReservoirSampler(kid_max_samples, seed=seed) if kid_max_samples > 0 else None
    progbar = keras.utils.Progbar(num_examples, verbose=verbose, unit_name="image")
    for batch in dataset_iterable:
        images = _images_of(batch)
        if num_examples is not None:
            images = images[: num_examples - running.count]
        for start in range(0, images.shape[0], batch_size):
            chunk = as_unit_range_images(images[start : start + batch_size])
            pool = _output(feature_fn(chunk), "pool", chunk.shape[0])
            running.update(pool)
            if reservoir is not None:
                reservoir.update(pool)
            progbar.update(running.count)
        if num_examples is not None and running.count >= num_examples:
            break
    if num_examples is not None and running.count < num_examples:
        raise ValueError(
            f"The data ended before num_examples={num_examples} images. Received: {running.count}"
        )
    if running.count < 2:
        raise ValueError(f"Statistics need at least 2 images. Received: {running.count}")
    return FeatureStatistics.from_running(
        running,
        extractor=getattr(feature_fn, "name", ""),
        dataset=dataset_name,
        kid_activations=reservoir.rows if reservoir is not None else None,
    )


def _images_of(batch: Any) -> Any:
    if isinstance(batch, dict):
        if "image" not in batch:
            raise ValueError(f"A dict batch must have an 'image' entry. Received keys: {sorted(batch)}")
        batch = batch["image"]
    elif isinstance(batch, (tuple, list)):
        batch = batch[0]
    if len(batch.shape) != 4 or batch.shape[-1] != 3:
        raise ValueError(f"Image batches must be [b, H, W, 3]. Received: shape={tuple(batch.shape)}")
    return batch


def _output(outputs: dict, key: str, batch: int) -> np.ndarray:
    if not isinstance(outputs, dict) or outputs.get(key) is None:
        keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        raise ValueError(f"feature_fn must return a dict with '{key}'. Received: {keys}")
    values = np.asarray(outputs[key])
    if values.ndim != 2 or values.shape[0] != batch:
        raise ValueError(f"feature_fn's '{key}' must be [{batch}, D]. Received: shape={values.shape}")
    return values

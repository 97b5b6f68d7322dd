"""Wiring the metric maths to generators: feature extractor, real statistics, sampler.

Used by `train` (periodic evaluation), `evaluate` and `tune`. Nothing here
knows about flags: the CLIs pass explicit arguments.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable

import numpy as np

from alphagan_tf.data.pipeline import evaluation_dataset
from alphagan_tf.metrics import features
from alphagan_tf.metrics.evaluation import compute_real_statistics, evaluate_samples
from alphagan_tf.metrics.statistics import FeatureStatistics, StatisticsError
from alphagan_tf.utils.typed_config import require

MAKE_STATS_COMMAND = "python -m alphagan_tf.evaluate --make_stats"


class UncheckedStatisticsWarning(UserWarning):
    """Real statistics whose extractor or image size is not recorded, so not checked."""


def feature_extractor_from_spec(spec: str, inception_path: str | None = None):
    """'inception' | 'classifier:/path/to/SavedModel' | 'none' -> a feature extractor or None."""
    check_feature_extractor_spec(spec)
    if spec == "none":
        return None
    if spec == "inception":
        return features.InceptionFeatures(inception_path or features.INCEPTION_TFHUB_HANDLE)
    return features.ClassifierFeatures(spec.split(":", 1)[1])


def check_feature_extractor_spec(spec: str) -> None:
    """Raises ConfigError unless `spec` is inception, classifier:PATH or none (loads nothing)."""
    require(spec in ("inception", "none") or (spec.startswith("classifier:") and len(spec) > 11),
            "feature_extractor", spec, "must be inception, classifier:/path/to/SavedModel or none")


def check_statistics(
    stats: FeatureStatistics,
    *,
    path: str,
    extractor: str,
    image_size: int,
    flag: str | None = None,
) -> None:
    """Real statistics fit an evaluation: same feature extractor, same image size.

    What a file does not record cannot be checked: a file of TTUR, pytorch-fid or
    clean-fid (`mu` and `sigma` only) or one of ours from before image sizes were
    recorded is accepted with one `UncheckedStatisticsWarning` saying what is unknown.

    Args:
        stats: the loaded statistics.
        path: where they come from (for the messages).
        extractor: the evaluation's feature extractor name (`feature_fn.name`).
        image_size: the side of the images the evaluation scores.
        flag: the flag that named the file ("real_stats"), for the error; None for a cache.

    Raises:
        StatisticsError: the file records another extractor or image size (the
            message names both values).
    """
    prefix = f"{flag}: " if flag else ""
    if stats.extractor and stats.extractor != extractor:
        raise StatisticsError(
            f"{prefix}{path} holds statistics of the feature extractor {stats.extractor!r}, "
            f"but this evaluation uses {extractor!r}. Make matching statistics with "
            f"{MAKE_STATS_COMMAND} and the same --feature_extractor.", key=flag,
        )
    if stats.image_size and stats.image_size != image_size:
        raise StatisticsError(
            f"{prefix}{path} holds statistics of {stats.image_size}x{stats.image_size} images, "
            f"but the generator evaluated makes {image_size}x{image_size} images. Make "
            f"statistics at its size with {MAKE_STATS_COMMAND} --image_size={image_size} "
            "(or --checkpoint=WORKDIR / --saved_model=DIR of that generator).", key=flag,
        )
    if not stats.extractor:
        warnings.warn(
            f"{path} holds only mu and sigma (the layout of TTUR's fid_stats_*.npz and of "
            "pytorch-fid's and clean-fid's statistics files): the feature extractor, image size "
            "and preprocessing it was made with cannot be checked. Its FID is comparable only "
            f"if it comes from the same Inception pool_3 features on {image_size}x{image_size} "
            f"images prepared as here; {MAKE_STATS_COMMAND} writes statistics that are checked.",
            UncheckedStatisticsWarning, stacklevel=3,
        )
    elif not stats.image_size:
        warnings.warn(
            f"{path} does not record the image size it was made at (written before sizes were "
            f"recorded): it cannot be checked against the {image_size}x{image_size} images "
            f"evaluated. Remake it with {MAKE_STATS_COMMAND} --image_size={image_size}.",
            UncheckedStatisticsWarning, stacklevel=3,
        )


def real_statistics(
    feature_fn,
    *,
    dataset: str,
    image_size: int,
    stats_path: str | None = None,
    cache_path: str | None = None,
    max_examples: int | None = None,
    batch_size: int = 100,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = False,
    verbose: int = 1,
) -> FeatureStatistics:
    """Real-data statistics: from `stats_path`, else a cache file, else computed (and cached).

    Args:
        image_size: the side of the images evaluated: real images are resized to it, and
            a statistics file must have been made at it (`check_statistics`).

    Raises:
        StatisticsError: the file was made with another feature extractor or image size
            (naming `--real_stats` when it is `stats_path`), or is not a statistics file.
    """
    path = stats_path or (cache_path if cache_path and os.path.exists(cache_path) else None)
    if path:
        stats = FeatureStatistics.load(path)
        check_statistics(stats, path=path, extractor=feature_fn.name, image_size=image_size,
                         flag="real_stats" if stats_path else None)
        return stats
    data = evaluation_dataset(
        dataset, image_size=image_size, batch_size=batch_size, max_examples=max_examples,
        data_dir=data_dir, manual_dir=manual_dir, download=download,
    )
    stats = compute_real_statistics(
        data, feature_fn, num_examples=max_examples, batch_size=batch_size,
        dataset_name=dataset, verbose=verbose,
    )
    stats.image_size = int(image_size)
    if cache_path:
        stats.save(cache_path)
    return stats


def latent_sampler(generate: Callable, latent_dim: int, seed: int) -> Callable[[int], np.ndarray]:
    """sample_fn(n) drawing latents from one seeded stream (same latents every evaluation).

    Args:
        generate: latents float32 [n, latent_dim] -> images in [-1, 1].
    """
    rng = np.random.default_rng(seed)

    def sample_fn(n: int):
        z = rng.standard_normal((n, latent_dim)).astype(np.float32)
        return generate(z)

    return sample_fn


def real_stats_cache_path(workdir: str, feature_fn) -> str:
    """Where a training workdir caches the real statistics of one feature extractor."""
    return os.path.join(workdir, f"real_stats_{feature_fn.name}.npz")


def evaluate_generator(
    generate: Callable,
    feature_fn,
    real_stats: FeatureStatistics | None,
    *,
    num_samples: int,
    batch_size: int,
    latent_dim: int,
    seed: int = 0,
    verbose: int = 1,
) -> dict:
    """IS / FID / KID of a generator, streamed batch by batch on seeded latents.

    Args:
        generate: latents float32 [n, latent_dim] -> images [n, H, W, 3] in [-1, 1]
            (a Keras generator wrapped with training=False, or an exported SavedModel).
        feature_fn: the feature extractor.
        real_stats: real statistics (FID, KID); None leaves them out.
        num_samples: images evaluated; at most `batch_size` are held at once.

    Returns:
        The dict of `evaluation.evaluate_samples`.
    """
    return evaluate_samples(
        latent_sampler(generate, latent_dim, seed), num_samples, batch_size, feature_fn,
        real_stats=real_stats, seed=seed, verbose=verbose,
    )


def make_evaluate_fn(
    feature_fn,
    real_stats: FeatureStatistics,
    *,
    num_samples: int,
    batch_size: int,
    latent_dim: int,
    seed: int = 0,
    verbose: int = 1,
) -> Callable:
    """evaluate_fn(generator) -> {"fid", "inception_score_mean", ...} on fixed latents."""

    def evaluate_fn(generator) -> dict:
        return evaluate_generator(
            lambda z: generator(z, training=False), feature_fn, real_stats,
            num_samples=num_samples, batch_size=batch_size, latent_dim=latent_dim,
            seed=seed, verbose=verbose,
        )

    return evaluate_fn

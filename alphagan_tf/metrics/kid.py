"""Kernel Inception Distance (KID), unbiased, in float64 numpy.

KID (Binkowski et al., 2018, arXiv 1801.01401) is the squared maximum mean
discrepancy between two sets of features under the cubic polynomial kernel

    k(x, y) = (x . y / D + 1)^3,

estimated without bias: the within-set kernel means leave out the diagonal,

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1))
            + sum_{i != j} k(y_i, y_j) / (n (n - 1)) - 2 mean_{i, j} k(x_i, y_j).

It can be slightly negative when the two sets come from the same distribution.

Two estimators, both given as (mean, spread):
- blocks (default, `num_subsets=None`): TF-GAN's
  `kernel_classifier_distance_and_std_from_activations`. Both sets are cut, in
  order, into the same number of disjoint blocks of at most `max_block_size`
  rows; the estimate is the mean of the per-block MMD^2 and the spread is its
  standard error sqrt(var_ddof1 / num_blocks) (NaN with a single block). The
  rows should be in random order.
- random subsets (`num_subsets=N`): the original paper's code. N pairs of
  subsets of `subset_size` rows drawn without replacement (seeded); the spread
  is the standard deviation (ddof=0) of the N estimates.
"""

from __future__ import annotations

import math

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / D + 1)^3 for every pair of rows: [M, D], [N, D] -> [M, N]."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel between [M, D] and [N, D]."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(
            f"The unbiased MMD needs at least 2 rows per set. Received: {m} and {n}"
        )
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    return float(
        (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
        + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
        - 2.0 * k_xy.mean()
    )


def kernel_inception_distance_from_activations(
    real_activations: np.ndarray,
    generated_activations: np.ndarray,
    *,
    max_block_size: int = 1024,
    num_subsets: int | None = None,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID between two sets of features.

    Args:
        real_activations: [N1, D] features of real images (random order).
        generated_activations: [N2, D] features of generated images.
        max_block_size: block estimator only: largest block (TF-GAN's default
            1024).
        num_subsets: None for the block estimator (TF-GAN's); an integer for the
            random-subset estimator of the paper (which used 100 subsets of
            1000).
        subset_size: random-subset estimator only: rows per subset (capped at
            the size of each set).
        seed: random-subset estimator only: seed of the subset draws.

    Returns:
        (mean, spread), Python floats: for blocks the standard error of the
        mean (NaN with one block), for subsets the std over subsets.
    """
    real = np.asarray(real_activations, dtype=np.float64)
    generated = np.asarray(generated_activations, dtype=np.float64)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(
            "real_activations and generated_activations must be 2-D arrays "
            "[num_samples, feature_dim] with the same feature_dim. Received: "
            f"{real.shape} and {generated.shape}"
        )
    if num_subsets is None:
        estimates = _block_estimates(real, generated, max_block_size)
        if len(estimates) == 1:
            return float(estimates[0]), math.nan
        std_error = np.sqrt(np.var(estimates, ddof=1) / len(estimates))
        return float(np.mean(estimates)), float(std_error)
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1 or None. Received: {num_subsets}")
    rng = np.random.default_rng(seed)
    m = min(subset_size, real.shape[0], generated.shape[0])
    estimates = []
    for _ in range(num_subsets):
        x = real[rng.choice(real.shape[0], m, replace=False)]
        y = generated[rng.choice(generated.shape[0], m, replace=False)]
        estimates.append(unbiased_mmd2(x, y))
    return float(np.mean(estimates)), float(np.std(estimates))


def _block_estimates(real: np.ndarray, generated: np.ndarray, max_block_size: int) -> np.ndarray:
    """Per-block MMD^2 with TF-GAN's partition into equal-as-possible blocks."""
    if max_block_size < 2:
        raise ValueError(f"max_block_size must be >= 2. Received: {max_block_size}")
    n_r, n_g = real.shape[0], generated.shape[0]
    num_blocks = math.ceil(max(n_r, n_g) / max_block_size)
    if min(n_r, n_g) < 2 * num_blocks:
        raise ValueError(
            f"Each of the {num_blocks} blocks needs at least 2 rows of each set. "
            f"Received: {n_r} real and {n_g} generated rows"
        )
    bounds_r = _block_bounds(n_r, num_blocks)
    bounds_g = _block_bounds(n_g, num_blocks)
    return np.array(
        [
            unbiased_mmd2(real[bounds_r[i] : bounds_r[i + 1]], generated[bounds_g[i] : bounds_g[i + 1]])
            for i in range(num_blocks)
        ]
    )


def _block_bounds(num: int, num_blocks: int) -> np.ndarray:
    """Block edges: num // num_blocks rows each, the last (num % num_blocks) one more."""
    size, extra = divmod(num, num_blocks)
    sizes = [size] * (num_blocks - extra) + [size + 1] * extra
    return np.concatenate([[0], np.cumsum(sizes)])

"""Frechet distance (FID) between two sets of features, in float64 numpy.

FID (Heusel et al., 2017, arXiv 1706.08500) fits a Gaussian to each set of
features and measures

    |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

"Inception" in the name only says which features are used; these functions take
features from any extractor (see `alphagan_tf.metrics.features`).

The matrix square root follows the usual recipe of pytorch-fid / the TTUR code:
`scipy.linalg.sqrtm` of the product; if the result is not finite (singular
covariances, e.g. fewer samples than feature dimensions) it is recomputed with
`eps * I` added to both covariances; a complex result whose diagonal has an
imaginary part above 1e-3 is an error, a smaller one is numerical noise and is
dropped. TF-GAN computes the same trace through symmetric square roots by SVD;
both agree to ~1e-14 relative on the test inputs (tests/test_metrics.py
requires 1e-5).

Singular covariances are common: dead ReLU units of a classifier give exactly
zero rows and columns. scipy then warns that sqrtm "might be inaccurate"; only
the trace of the root enters FID, and it stays accurate (the diagonal of the
Schur-form root holds the square roots of the eigenvalues), so that warning is
silenced here (tests compare with an exact symmetric eigen-decomposition).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

# Largest tolerated imaginary part on the diagonal of sqrtm(sigma1 sigma2).
_MAX_IMAGINARY = 1e-3


def frechet_distance_from_statistics(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
) -> float:
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    Args:
        mu1: mean of the first set, [D].
        sigma1: covariance of the first set, [D, D], symmetric positive
            semi-definite.
        mu2: mean of the second set, [D].
        sigma2: covariance of the second set, [D, D].
        eps: offset added to both diagonals when the plain matrix square root is
            not finite (singular covariances).

    Returns:
        The distance, a Python float (>= 0 up to rounding).

    Raises:
        ValueError: on mismatched shapes, or when the square root of
            sigma1 @ sigma2 has a significant imaginary part.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(
            "mu1 and mu2 must be vectors of the same length. "
            f"Received: mu1.shape={mu1.shape}, mu2.shape={mu2.shape}"
        )
    dim = mu1.shape[0]
    if sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            f"sigma1 and sigma2 must be [{dim}, {dim}] to match the means. "
            f"Received: sigma1.shape={sigma1.shape}, sigma2.shape={sigma2.shape}"
        )

    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(dim) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if largest > _MAX_IMAGINARY:
            raise ValueError(
                "The square root of sigma1 @ sigma2 has a significant imaginary "
                "part: are both covariances symmetric positive semi-definite? "
                f"Received: max |imag| on the diagonal = {largest:.3g}"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*singular.*", category=scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)


def mean_and_covariance(activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean [D] and unbiased covariance [D, D] (ddof=1) of [N, D] features."""
    activations = _as_activations(activations, "activations")
    if activations.shape[0] < 2:
        raise ValueError(
            "A covariance needs at least 2 samples. "
            f"Received: activations.shape={activations.shape}"
        )
    return activations.mean(axis=0), np.cov(activations, rowvar=False, ddof=1).reshape(
        activations.shape[1], activations.shape[1]
    )


def frechet_distance_from_activations(
    real_activations: np.ndarray, generated_activations: np.ndarray, eps: float = 1e-6
) -> float:
    """FID between two sets of features (TF-GAN's
    `frechet_classifier_distance_from_activations`, in numpy).

    Args:
        real_activations: [N1, D] features of real images.
        generated_activations: [N2, D] features of generated images.
        eps: see `frechet_distance_from_statistics`.

    Returns:
        The distance, a Python float. It is biased upwards for small N; compare
        models only at the same sample sizes.
    """
    real = _as_activations(real_activations, "real_activations")
    generated = _as_activations(generated_activations, "generated_activations")
    if real.shape[1] != generated.shape[1]:
        raise ValueError(
            "Both sets of activations must have the same feature size. Received: "
            f"real_activations.shape={real.shape}, "
            f"generated_activations.shape={generated.shape}"
        )
    mu1, sigma1 = mean_and_covariance(real)
    mu2, sigma2 = mean_and_covariance(generated)
    return frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2, eps=eps)


def _as_activations(activations: np.ndarray, name: str) -> np.ndarray:
    activations = np.asarray(activations, dtype=np.float64)
    if activations.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array [num_samples, feature_dim]. "
            f"Received: shape={activations.shape}"
        )
    return activations

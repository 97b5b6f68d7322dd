"""Inception Score (IS) from classifier logits, in float64 numpy.

IS (Salimans et al., 2016, arXiv 1606.03498) is exp(E_x[KL(p(y|x) || p(y))]),
with p(y) the mean of p(y|x) over the evaluated samples. As in the original
code and the AlphaGAN protocol, the N samples are cut into `num_splits`
contiguous splits (split k holds samples [k N // S, (k + 1) N // S)), one score
is computed per split and the mean and standard deviation (ddof=0) of the
split scores are reported.

Per split the score equals TF-GAN's `classifier_score_from_logits` on that
split's logits. `StreamingInceptionScore` gives the same numbers batch by batch
without keeping the logits: E[KL(p || q)] = E[sum p log p] - sum q log q.
"""

from __future__ import annotations

import numpy as np
import scipy.special


def inception_score_from_logits(
    logits: np.ndarray, num_splits: int = 10
) -> tuple[float, float]:
    """Inception Score of a set of logits.

    Args:
        logits: [N, C] classifier logits (any float dtype; computed in float64).
        num_splits: number of contiguous splits, 1 <= num_splits <= N.

    Returns:
        (mean, std) of the per-split scores, Python floats; each score is in
        [1, C].
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(
            f"logits must be a 2-D array [num_samples, num_classes]. Received: shape={logits.shape}"
        )
    num = logits.shape[0]
    _check_splits(num, num_splits)
    scores = []
    for k in range(num_splits):
        part = logits[k * num // num_splits : (k + 1) * num // num_splits]
        log_p = scipy.special.log_softmax(part, axis=1)
        p = np.exp(log_p)
        q = p.mean(axis=0)
        scores.append(np.exp(_mean_plogp(p, log_p) - _sum_qlogq(q)))
    return float(np.mean(scores)), float(np.std(scores))


class StreamingInceptionScore:
    """Inception Score accumulated batch by batch, same splits as the offline one.

    Args:
        num_samples: total number of samples that will be given (fixes the split
            boundaries).
        num_splits: number of contiguous splits.

    Example:
        >>> score = StreamingInceptionScore(num_samples=50000)
        >>> for batch_logits in ...:  # [B, C] each, 50000 rows in all
        ...     score.update(batch_logits)
        >>> mean, std = score.result()
    """

    def __init__(self, num_samples: int, num_splits: int = 10):
        _check_splits(num_samples, num_splits)
        self.num_samples = int(num_samples)
        self.num_splits = int(num_splits)
        self._bounds = [k * num_samples // num_splits for k in range(num_splits + 1)]
        self._seen = 0
        self._sum_p: np.ndarray | None = None  # [S, C]
        self._sum_plogp = np.zeros(num_splits)
        self._count = np.zeros(num_splits, dtype=np.int64)

    @property
    def count(self) -> int:
        """Number of samples given so far."""
        return self._seen

    def update(self, logits: np.ndarray) -> None:
        """Adds a batch of logits [B, C] (the next B samples of the stream)."""
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 2:
            raise ValueError(
                f"logits must be a 2-D array [batch, num_classes]. Received: shape={logits.shape}"
            )
        if self._sum_p is None:
            self._sum_p = np.zeros((self.num_splits, logits.shape[1]))
        elif logits.shape[1] != self._sum_p.shape[1]:
            raise ValueError(
                f"Every batch must have {self._sum_p.shape[1]} classes. Received: shape={logits.shape}"
            )
        if self._seen + logits.shape[0] > self.num_samples:
            raise ValueError(
                f"More logits than num_samples={self.num_samples}. Received: "
                f"{self._seen} so far plus a batch of {logits.shape[0]}"
            )
        log_p = scipy.special.log_softmax(logits, axis=1)
        p = np.exp(log_p)
        plogp = np.where(p > 0, p * log_p, 0.0).sum(axis=1)
        index = self._seen + np.arange(logits.shape[0])
        split = np.searchsorted(self._bounds, index, side="right") - 1
        for k in np.unique(split):
            rows = split == k
            self._sum_p[k] += p[rows].sum(axis=0)
            self._sum_plogp[k] += plogp[rows].sum()
            self._count[k] += int(rows.sum())
        self._seen += logits.shape[0]

    def result(self) -> tuple[float, float]:
        """(mean, std) over the splits; needs all `num_samples` samples."""
        if self._seen != self.num_samples:
            raise ValueError(
                f"The score needs all num_samples={self.num_samples} samples. "
                f"Received: {self._seen}"
            )
        scores = []
        for k in range(self.num_splits):
            q = self._sum_p[k] / self._count[k]
            scores.append(np.exp(self._sum_plogp[k] / self._count[k] - _sum_qlogq(q)))
        return float(np.mean(scores)), float(np.std(scores))


def _mean_plogp(p: np.ndarray, log_p: np.ndarray) -> float:
    return float(np.where(p > 0, p * log_p, 0.0).sum(axis=1).mean())


def _sum_qlogq(q: np.ndarray) -> float:
    return float(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum())


def _check_splits(num_samples: int, num_splits: int) -> None:
    if num_splits < 1 or num_samples < num_splits:
        raise ValueError(
            "num_splits must be in [1, num_samples]. "
            f"Received: num_splits={num_splits}, num_samples={num_samples}"
        )

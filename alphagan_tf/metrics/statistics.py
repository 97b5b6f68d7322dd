"""Streaming feature statistics: running mean / covariance, a reservoir of rows,
and the .npz file of precomputed real-data statistics.

FID needs only the mean and covariance of each set, so 50,000 samples never
have to sit in memory: `RunningStatistics` merges batch moments exactly (Chan et
al.'s pairwise update in float64), giving the same numbers as `np.mean` /
`np.cov(ddof=1)` on all rows at once. KID needs the rows themselves, so
`ReservoirSampler` keeps a uniform random subset of bounded size (Vitter's
algorithm R), and KID is computed on that subset.

The statistics file (`FeatureStatistics.save` / `.load`) is an .npz with
    mu [D] float64, sigma [D, D] float64, count (int: images),
    extractor (str: which features, e.g. "tfgan_inception"),
    image_size (int: the side S of the S x S images the features were taken of),
    dataset (str: the source spec), feature_key (str, "pool"), format_version (2),
and optionally kid_activations [K, D] float32 (the reservoir, for KID).

`load` also reads the field's standard statistics files, which hold `mu` and
`sigma` only: TTUR's precomputed `fid_stats_cifar10_train.npz` (and its
`precalc_stats_example.py` output), pytorch-fid's `--save-stats` file and
clean-fid's `*_<mode>_<split>_<res>.npz` (all `np.savez_compressed(path, mu=mu,
sigma=sigma)`). They load with `extractor=""` and `image_size=0` (unknown), as do
the image sizes of files written before format 2: whoever uses them decides what
an unknown means (`metrics.generator_eval.check_statistics` warns).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile

import numpy as np

from alphagan_tf.utils.typed_config import ConfigError

STATISTICS_FORMAT_VERSION = 2


class StatisticsError(ConfigError):
    """A statistics file cannot be used: unreadable, or made with another extractor or size.

    A `ConfigError`, so the commands report it as one line (naming the flag in `key`).
    """


class RunningStatistics:
    """Running float64 mean and unbiased covariance of feature rows.

    Example:
        >>> stats = RunningStatistics()
        >>> for batch in batches:      # each [B, D]
        ...     stats.update(batch)
        >>> stats.mean, stats.covariance   # [D], [D, D]
    """

    def __init__(self):
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None  # sum of outer products of deviations

    def update(self, batch_activations: np.ndarray) -> None:
        """Adds a batch of feature rows [B, D] (B may be 0)."""
        x = np.asarray(batch_activations, dtype=np.float64)
        if x.ndim != 2 or (self._mean is not None and x.shape[1] != self._mean.shape[0]):
            expected = "[batch, D]" if self._mean is None else f"[batch, {self._mean.shape[0]}]"
            raise ValueError(f"batch_activations must be {expected}. Received: shape={x.shape}")
        n_b = x.shape[0]
        if n_b == 0:
            return
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        if self._mean is None:
            self.count, self._mean, self._m2 = n_b, mean_b, m2_b
            return
        n_a = self.count
        total = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / total)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / total)
        self.count = total

    @property
    def mean(self) -> np.ndarray:
        """Mean of all rows so far, [D] float64."""
        if self._mean is None:
            raise ValueError("No rows yet: call update() first. Received: count=0")
        return self._mean.copy()

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased covariance (ddof=1) of all rows so far, [D, D] float64."""
        if self.count < 2:
            raise ValueError(f"A covariance needs at least 2 rows. Received: count={self.count}")
        return self._m2 / (self.count - 1)


class ReservoirSampler:
    """A uniform random subset of at most `capacity` rows of a stream.

    Every row seen so far is kept with the same probability capacity / seen
    (algorithm R), whatever the batch sizes.

    Args:
        capacity: most rows kept.
        seed: seed of the replacement draws.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1. Received: {capacity}")
        self.capacity = int(capacity)
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._rows: np.ndarray | None = None
        self._size = 0

    def update(self, batch: np.ndarray) -> None:
        """Offers a batch of rows [B, D] (stored as float32)."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 2:
            raise ValueError(f"batch must be [batch, D]. Received: shape={batch.shape}")
        if self._rows is None:
            self._rows = np.empty((self.capacity, batch.shape[1]), dtype=np.float32)
        fill = min(self.capacity - self._size, batch.shape[0])
        self._rows[self._size : self._size + fill] = batch[:fill]
        self._size += fill
        rest = batch[fill:]
        if len(rest):
            # Row t (0-based over the stream) replaces slot j ~ U{0..t} if j < capacity.
            t = self.seen + fill + np.arange(len(rest))
            slots = self._rng.integers(0, t + 1)
            for row, slot in zip(rest[slots < self.capacity], slots[slots < self.capacity]):
                self._rows[slot] = row
        self.seen += batch.shape[0]

    @property
    def rows(self) -> np.ndarray:
        """The kept rows, [min(capacity, seen), D] float32 (a copy)."""
        if self._rows is None:
            return np.zeros((0, 0), dtype=np.float32)
        return self._rows[: self._size].copy()


@dataclasses.dataclass
class FeatureStatistics:
    """Mean and covariance of one dataset's features, as stored on disk.

    Attributes:
        mu: [D] float64 mean.
        sigma: [D, D] float64 unbiased covariance.
        count: number of images the statistics come from.
        extractor: name of the feature extractor (FID is only meaningful
            between statistics of the same extractor); "" when unknown (a file of
            another tool).
        dataset: the source of the images (the dataset spec, e.g. "cifar10").
        feature_key: which output of the extractor ("pool").
        kid_activations: optional [K, D] float32 random subset of the rows, for
            KID.
        image_size: side S of the S x S images the features were taken of (before
            the extractor's own resizing); 0 when unknown.
    """

    mu: np.ndarray
    sigma: np.ndarray
    count: int
    extractor: str = ""
    dataset: str = ""
    feature_key: str = "pool"
    kid_activations: np.ndarray | None = None
    image_size: int = 0

    def __post_init__(self):
        self.mu = np.asarray(self.mu, dtype=np.float64)
        self.sigma = np.asarray(self.sigma, dtype=np.float64)
        dim = self.mu.shape[0] if self.mu.ndim == 1 else None
        if dim is None or self.sigma.shape != (dim, dim):
            raise ValueError(
                "mu must be [D] and sigma [D, D]. "
                f"Received: mu.shape={self.mu.shape}, sigma.shape={self.sigma.shape}"
            )
        if self.kid_activations is not None:
            self.kid_activations = np.asarray(self.kid_activations, dtype=np.float32)
            if self.kid_activations.ndim != 2 or self.kid_activations.shape[1] != dim:
                raise ValueError(
                    f"kid_activations must be [K, {dim}]. "
                    f"Received: shape={self.kid_activations.shape}"
                )

    @classmethod
    def from_running(
        cls,
        running: RunningStatistics,
        *,
        extractor: str = "",
        dataset: str = "",
        feature_key: str = "pool",
        kid_activations: np.ndarray | None = None,
        image_size: int = 0,
    ) -> "FeatureStatistics":
        """Statistics from a filled `RunningStatistics`."""
        return cls(
            mu=running.mean,
            sigma=running.covariance,
            count=running.count,
            extractor=extractor,
            dataset=dataset,
            feature_key=feature_key,
            kid_activations=kid_activations,
            image_size=image_size,
        )

    def save(self, path: str | os.PathLike) -> str:
        """Writes the .npz atomically (a temporary file, then a rename).

        Args:
            path: file name; ".npz" is appended when missing.

        Returns:
            The path written.
        """
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = {
            "mu": self.mu,
            "sigma": self.sigma,
            "count": np.int64(self.count),
            "extractor": np.str_(self.extractor),
            "image_size": np.int64(self.image_size),
            "dataset": np.str_(self.dataset),
            "feature_key": np.str_(self.feature_key),
            "format_version": np.int64(STATISTICS_FORMAT_VERSION),
        }
        if self.kid_activations is not None:
            arrays["kid_activations"] = self.kid_activations
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz.tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it owner-only
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStatistics":
        """Reads statistics written by `save`, or a `mu` / `sigma` file of TTUR, pytorch-fid
        or clean-fid (module docstring).

        Raises:
            FileNotFoundError: no such file.
            StatisticsError: not an .npz, or no `mu` and `sigma` of matching shapes in it.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                "Statistics file not found; make one with "
                "`python -m alphagan_tf.evaluate --make_stats` or "
                f"alphagan_tf.metrics.evaluation.compute_real_statistics. Received: {path}"
            )
        try:
            archive = np.load(path, allow_pickle=False)
            names = archive.files
        except (ValueError, OSError, AttributeError, zipfile.BadZipFile):  # not an .npz
            raise StatisticsError(
                f"{path} is not a statistics .npz file (make one with "
                "`python -m alphagan_tf.evaluate --make_stats`)."
            ) from None
        with archive as data:
            missing = {"mu", "sigma"} - set(names)
            if missing:
                raise StatisticsError(
                    f"{path} is not a statistics file: it lacks {sorted(missing)}. "
                    f"Received arrays: {sorted(data.files)}"
                )

            def field(name, convert, default):
                return convert(data[name]) if name in data.files else default

            try:
                return cls(
                    mu=data["mu"],
                    sigma=data["sigma"],
                    count=field("count", int, 0),
                    extractor=field("extractor", str, ""),
                    dataset=field("dataset", str, ""),
                    feature_key=field("feature_key", str, "pool"),
                    kid_activations=field("kid_activations", np.asarray, None),
                    image_size=field("image_size", int, 0),
                )
            except ValueError as error:  # shapes that do not fit
                raise StatisticsError(f"{path}: {error}") from None

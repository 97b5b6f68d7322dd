"""IS / FID / KID maths, streaming statistics and evaluation, against numpy and TF-GAN."""

import math
import os

import numpy as np
import pytest

from alphagan_tf.metrics.evaluation import compute_real_statistics, evaluate_samples
from alphagan_tf.metrics.fid import frechet_distance_from_activations, frechet_distance_from_statistics
from alphagan_tf.metrics.inception_score import StreamingInceptionScore, inception_score_from_logits
from alphagan_tf.metrics.kid import kernel_inception_distance_from_activations, unbiased_mmd2
from alphagan_tf.metrics.statistics import (
    FeatureStatistics,
    ReservoirSampler,
    RunningStatistics,
    StatisticsError,
)


@pytest.fixture(scope="module")
def tfgan():
    return pytest.importorskip(
        "tfgan_compat",
        reason="tensorflow-gan 2.1.0 (the reference implementation) is not installed",
        exc_type=ImportError,
    )


def _gaussian(rng, n, dim, shift=0.0, scale=1.0):
    return rng.normal(size=(n, dim)) * scale + shift


# ---------------------------------------------------------------- FID
def test_fid_of_a_set_with_itself_is_zero():
    x = _gaussian(np.random.default_rng(0), 500, 16)
    fid = frechet_distance_from_activations(x, x)
    assert abs(fid) < 1e-6 * np.trace(np.cov(x, rowvar=False))


def test_fid_of_gaussians_matches_closed_form():
    # Diagonal covariances: Tr(s1 + s2 - 2 sqrt(s1 s2)) = sum (sqrt(a) - sqrt(b))^2.
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    fid = frechet_distance_from_statistics(mu1, np.diag(var1), mu2, np.diag(var2))
    assert fid == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(1 + 6.25 + 4 + 1, rel=1e-12)


def test_fid_grows_with_the_shift():
    rng = np.random.default_rng(1)
    real = _gaussian(rng, 2000, 8)
    fids = [frechet_distance_from_activations(real, _gaussian(rng, 2000, 8, shift=s)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids)
    assert fids[0] < 0.1
    # |shift|^2 * dim dominates: 2.0 shift on 8 dims gives ~32.
    assert fids[3] == pytest.approx(32.0, rel=0.1)


def test_fid_singular_covariance_uses_offset_and_stays_finite():
    rng = np.random.default_rng(2)
    # 5 samples in 16 dimensions: rank-4 covariances.
    a, b = _gaussian(rng, 5, 16), _gaussian(rng, 5, 16, shift=1.0)
    fid = frechet_distance_from_activations(a, b)
    assert np.isfinite(fid) and fid > 0


def _exact_fid(mu1, sigma1, mu2, sigma2):
    """Symmetric route: Tr sqrt(sigma1 sigma2) = Tr sqrt(A sigma2 A), A = sigma1^(1/2)."""
    w, v = np.linalg.eigh(sigma1)
    a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    root_trace = np.sqrt(np.clip(np.linalg.eigvalsh(a @ sigma2 @ a), 0, None)).sum()
    return np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * root_trace


def test_fid_with_dead_features_is_exact_and_silent():
    # ReLU features with 20 of 64 units dead: exactly singular covariances.
    rng = np.random.default_rng(20)
    a = np.maximum(_gaussian(rng, 500, 64), 0)
    b = np.maximum(_gaussian(rng, 500, 64, shift=0.3), 0)
    a[:, :20] = b[:, :20] = 0
    stats = [a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fid = frechet_distance_from_statistics(*stats)
    assert fid == pytest.approx(_exact_fid(*stats), rel=1e-9)
    assert fid > 1.0


def test_fid_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="Received"):
        frechet_distance_from_statistics(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="same feature size"):
        frechet_distance_from_activations(np.zeros((4, 3)), np.zeros((4, 2)))


def test_fid_matches_tfgan(tfgan):
    rng = np.random.default_rng(3)
    a = _gaussian(rng, 400, 32)
    b = _gaussian(rng, 300, 32, shift=0.3, scale=1.5) @ rng.normal(size=(32, 32)) * 0.3
    ours = frechet_distance_from_activations(a, b)
    theirs = tfgan.frechet_classifier_distance_from_activations(a, b)
    assert ours == pytest.approx(theirs, rel=1e-5)
    assert ours > 1.0
    # With dead (always zero) features, i.e. singular covariances.
    a_relu, b_relu = np.maximum(a, 0), np.maximum(b, 0)
    a_relu[:, :8] = b_relu[:, :8] = 0
    assert frechet_distance_from_activations(a_relu, b_relu) == pytest.approx(
        tfgan.frechet_classifier_distance_from_activations(a_relu, b_relu), rel=1e-5
    )


# ---------------------------------------------------------------- IS
def test_inception_score_of_uniform_logits_is_one():
    mean, std = inception_score_from_logits(np.zeros((100, 7)), num_splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_confident_balanced_logits_is_num_classes():
    num_classes, per_class_per_split, num_splits = 10, 3, 10
    labels = np.tile(np.arange(num_classes), per_class_per_split * num_splits)
    logits = 50.0 * np.eye(num_classes)[labels]
    mean, std = inception_score_from_logits(logits, num_splits=num_splits)
    assert mean == pytest.approx(num_classes, abs=1e-3)
    assert std < 1e-3


def test_inception_score_of_confident_single_class_is_one():
    logits = 50.0 * np.eye(5)[np.zeros(40, dtype=int)]
    assert inception_score_from_logits(logits, num_splits=4)[0] == pytest.approx(1.0, abs=1e-6)


def test_inception_score_matches_hand_computation_on_two_samples():
    # p1 = [0.5, 0.5], p2 = [1, 0] (approx.): q = [0.75, 0.25];
    # KL1 = 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25), KL2 = log(1/0.75).
    logits = np.array([[0.0, 0.0], [60.0, 0.0]])
    kl1 = 0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)
    kl2 = np.log(1 / 0.75)
    mean, _ = inception_score_from_logits(logits, num_splits=1)
    assert mean == pytest.approx(np.exp((kl1 + kl2) / 2), rel=1e-9)


def test_streaming_inception_score_equals_offline():
    logits = np.random.default_rng(4).normal(size=(103, 12)) * 3
    stream = StreamingInceptionScore(num_samples=103, num_splits=10)
    for start in range(0, 103, 17):
        stream.update(logits[start : start + 17])
    np.testing.assert_allclose(stream.result(), inception_score_from_logits(logits, 10), rtol=1e-12)


def test_streaming_inception_score_needs_every_sample():
    stream = StreamingInceptionScore(num_samples=10, num_splits=2)
    stream.update(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="Received: 4"):
        stream.result()
    with pytest.raises(ValueError, match="More logits"):
        stream.update(np.zeros((7, 3)))


def test_inception_score_matches_tfgan_per_split(tfgan):
    logits = np.random.default_rng(5).normal(size=(200, 10)) * 4
    theirs = [tfgan.classifier_score_from_logits(logits[k * 20 : (k + 1) * 20]) for k in range(10)]
    mean, std = inception_score_from_logits(logits, num_splits=10)
    assert mean == pytest.approx(np.mean(theirs), rel=1e-5)
    assert std == pytest.approx(np.std(theirs), rel=1e-5)
    assert inception_score_from_logits(logits, 1)[0] == pytest.approx(
        tfgan.classifier_score_from_logits(logits), rel=1e-5
    )


# ---------------------------------------------------------------- KID
def test_unbiased_mmd_by_hand():
    # D = 1: k(x, y) = (xy + 1)^3.
    x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    k = lambda a, b: (a * b + 1) ** 3  # noqa: E731
    expected = k(0, 1) + k(1, 2) - 2 * np.mean([k(0, 1), k(0, 2), k(1, 1), k(1, 2)])
    assert unbiased_mmd2(x, y) == pytest.approx(expected, rel=1e-12)


def test_kid_is_near_zero_for_identical_sets_and_positive_for_shifted():
    rng = np.random.default_rng(6)
    real = _gaussian(rng, 600, 8)
    same, _ = kernel_inception_distance_from_activations(real, real, max_block_size=200)
    other_same, other_std = kernel_inception_distance_from_activations(real, _gaussian(rng, 600, 8), max_block_size=200)
    shifted, std = kernel_inception_distance_from_activations(real, _gaussian(rng, 600, 8, shift=1.0), max_block_size=200)
    # x == y: the unbiased estimator is 2 (offdiag mean - full mean) of k(x, x) per
    # block, a small O(1/m) negative number, not exactly 0.
    expected_same = []
    for block in np.split(real, 3):
        k = (block @ block.T / 8 + 1) ** 3
        m = len(block)
        expected_same.append(2 * (k.sum() - np.trace(k)) / (m * (m - 1)) - 2 * k.mean())
    assert same == pytest.approx(np.mean(expected_same), rel=1e-10)
    assert -0.1 < same < 0
    assert abs(other_same) < 3 * other_std + 1e-3
    assert shifted > 5.0 and shifted > 10 * std


def test_kid_subset_estimator():
    rng = np.random.default_rng(7)
    real, fake = _gaussian(rng, 300, 8), _gaussian(rng, 300, 8, shift=1.0)
    mean, std = kernel_inception_distance_from_activations(real, fake, num_subsets=20, subset_size=100, seed=1)
    again = kernel_inception_distance_from_activations(real, fake, num_subsets=20, subset_size=100, seed=1)
    assert (mean, std) == again
    full = unbiased_mmd2(real, fake)
    assert mean == pytest.approx(full, rel=0.2) and std > 0


def test_kid_single_block_has_nan_spread_and_block_checks():
    x = np.random.default_rng(8).normal(size=(10, 4))
    mean, std = kernel_inception_distance_from_activations(x, x + 1)
    assert mean == pytest.approx(unbiased_mmd2(x, x + 1)) and math.isnan(std)
    with pytest.raises(ValueError, match="at least 2 rows"):
        kernel_inception_distance_from_activations(x, x[:3], max_block_size=4)


def test_kid_matches_tfgan(tfgan):
    rng = np.random.default_rng(9)
    a = _gaussian(rng, 310, 16)
    b = _gaussian(rng, 205, 16, shift=0.2, scale=1.3)
    for block in (64, 1024):
        ours = kernel_inception_distance_from_activations(a, b, max_block_size=block)
        theirs = tfgan.kernel_classifier_distance_and_std_from_activations(a, b, max_block_size=block)
        assert ours[0] == pytest.approx(theirs[0], rel=1e-5)
        if block == 64:
            assert ours[1] == pytest.approx(theirs[1], rel=1e-5)
        else:
            assert math.isnan(ours[1]) and math.isnan(theirs[1])


def test_tfgan_compat_leaves_no_tensorflow_gan_module(tfgan):
    import sys

    assert not any(name == "tensorflow_gan" or name.startswith("tensorflow_gan.") for name in sys.modules)
    assert tfgan.classifier_metrics.__name__.startswith("alphagan_tf.metrics._tfgan_eval")


# ---------------------------------------------------------------- streaming statistics
def test_running_statistics_equal_numpy():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(257, 6)) * [1, 2, 3, 4, 5, 6] + 1000.0  # a large offset tests stability
    stats = RunningStatistics()
    for start, size in zip([0, 1, 4, 100, 200], [1, 3, 96, 100, 57]):
        stats.update(x[start : start + size])
    stats.update(np.zeros((0, 6)))
    assert stats.count == 257
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(stats.covariance, np.cov(x, rowvar=False, ddof=1), rtol=1e-10, atol=1e-10)


def test_running_statistics_errors():
    stats = RunningStatistics()
    with pytest.raises(ValueError, match="count=0"):
        _ = stats.mean
    stats.update(np.ones((1, 3)))
    with pytest.raises(ValueError, match="count=1"):
        _ = stats.covariance
    with pytest.raises(ValueError, match=r"\[batch, 3\]"):
        stats.update(np.ones((2, 4)))


def test_reservoir_keeps_everything_until_full_then_a_uniform_subset():
    stream = np.arange(12, dtype=np.float32)[:, None]
    small = ReservoirSampler(capacity=20)
    small.update(stream[:5])
    small.update(stream[5:])
    np.testing.assert_array_equal(small.rows, stream)

    counts = np.zeros(20)
    for trial in range(400):
        sampler = ReservoirSampler(capacity=5, seed=trial)
        for start in range(0, 20, 7):
            sampler.update(np.arange(start, min(start + 7, 20), dtype=np.float32)[:, None])
        kept = sampler.rows[:, 0].astype(int)
        assert len(set(kept)) == 5 and sampler.seen == 20
        counts[kept] += 1
    frequency = counts / 400  # each row should be kept with probability 5 / 20
    assert np.all(np.abs(frequency - 0.25) < 0.08), frequency


def test_statistics_file_round_trip(tmp_path):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(50, 4))
    running = RunningStatistics()
    running.update(x)
    stats = FeatureStatistics.from_running(
        running, extractor="fake", dataset="toy:train", kid_activations=x[:10]
    )
    path = stats.save(tmp_path / "stats")
    assert path.endswith("stats.npz")
    loaded = FeatureStatistics.load(path)
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    np.testing.assert_allclose(loaded.kid_activations, x[:10].astype(np.float32))
    assert (loaded.count, loaded.extractor, loaded.dataset, loaded.feature_key) == (50, "fake", "toy:train", "pool")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.npz"]  # no temporary left
    assert os.stat(path).st_mode & 0o044 == 0o044 & ~_umask()  # readable like any new file


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_statistics_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_stats"):
        FeatureStatistics.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="lacks"):
        FeatureStatistics.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(StatisticsError, match="text.npz is not a statistics .npz"):
        FeatureStatistics.load(tmp_path / "text.npz")
    np.savez(tmp_path / "shapes.npz", mu=np.zeros(3), sigma=np.eye(4))
    with pytest.raises(StatisticsError, match=r"shapes.npz: .*mu.shape=\(3,\), sigma.shape=\(4, 4\)"):
        FeatureStatistics.load(tmp_path / "shapes.npz")


def test_statistics_file_records_the_image_size(tmp_path):
    running = RunningStatistics()
    running.update(np.random.default_rng(16).normal(size=(6, 3)))
    path = FeatureStatistics.from_running(running, extractor="fake", dataset="stl10",
                                          image_size=48).save(tmp_path / "s.npz")
    with np.load(path) as archive:
        assert int(archive["image_size"]) == 48 and int(archive["format_version"]) == 2
    loaded = FeatureStatistics.load(path)
    assert (loaded.image_size, loaded.count, loaded.extractor, loaded.dataset) == (48, 6, "fake", "stl10")


def _standard_layouts(rng, dim=6):
    """mu / sigma as TTUR, pytorch-fid and clean-fid compute and write them.

    TTUR (precalc_stats_example.py) and pytorch-fid (save_fid_stats) take float64
    activation arrays; clean-fid (make_custom_stats) keeps float32 features, so its mu
    is float32 and np.cov's sigma float64. All three call np.savez_compressed(path,
    mu=mu, sigma=sigma).
    """
    activations = rng.normal(size=(40, dim))
    mu64, sigma64 = np.mean(activations, axis=0), np.cov(activations, rowvar=False)
    features32 = activations.astype(np.float32)
    return {
        "fid_stats_cifar10_train.npz": (mu64, sigma64),  # TTUR
        "pytorch_fid_stats.npz": (mu64, sigma64),
        "cifar10_legacy_tensorflow_train_32.npz": (
            np.mean(features32, axis=0), np.cov(features32, rowvar=False)),  # clean-fid
    }


def test_statistics_files_of_ttur_pytorch_fid_and_clean_fid_load_as_unchecked(tmp_path):
    for name, (mu, sigma) in _standard_layouts(np.random.default_rng(17)).items():
        np.savez_compressed(tmp_path / name, mu=mu, sigma=sigma)
        with np.load(tmp_path / name) as archive:
            assert sorted(archive.files) == ["mu", "sigma"]
        loaded = FeatureStatistics.load(tmp_path / name)
        np.testing.assert_array_equal(loaded.mu, mu.astype(np.float64))
        np.testing.assert_array_equal(loaded.sigma, sigma)
        assert loaded.mu.dtype == np.float64 and loaded.kid_activations is None
        # Nothing about how they were made is known: the users of the file decide.
        assert (loaded.extractor, loaded.image_size, loaded.count, loaded.dataset) == ("", 0, 0, "")


def test_statistics_file_of_format_1_loads_without_an_image_size(tmp_path):
    np.savez(tmp_path / "v1.npz", mu=np.zeros(2), sigma=np.eye(2), count=np.int64(9),
             extractor=np.str_("tfgan_inception"), dataset=np.str_("cifar10"),
             feature_key=np.str_("pool"), format_version=np.int64(1))
    loaded = FeatureStatistics.load(tmp_path / "v1.npz")
    assert (loaded.extractor, loaded.image_size, loaded.count) == ("tfgan_inception", 0, 9)


# ---------------------------------------------------------------- evaluation (fake extractor)
class _LinearFeatures:
    """pool = flattened images @ W (8 features), logits = pool[:, :5]; numpy only."""

    name = "linear-test"

    def __init__(self, pixels: int):
        self.weights = np.random.default_rng(12).normal(size=(pixels, 8)) / np.sqrt(pixels)

    def __call__(self, images):
        pool = np.asarray(images, dtype=np.float64).reshape(len(images), -1) @ self.weights
        return {"pool": pool.astype(np.float32), "logits": 3 * pool[:, :5]}


def _image_stream(images, batch):
    for start in range(0, len(images), batch):
        yield images[start : start + batch]


def test_evaluate_samples_equals_offline_metrics():
    rng = np.random.default_rng(13)
    real = rng.integers(0, 256, size=(120, 4, 4, 3), dtype=np.uint8)
    fake = np.tanh(rng.normal(size=(90, 4, 4, 3))).astype(np.float32)
    features = _LinearFeatures(4 * 4 * 3)
    stats = compute_real_statistics(
        _image_stream(real, 25), features, num_examples=100, batch_size=16, dataset_name="toy", verbose=0
    )
    assert (stats.count, stats.extractor, stats.dataset) == (100, "linear-test", "toy")
    assert stats.kid_activations.shape == (100, 8)

    position = [0]

    def sample_fn(n):
        out = fake[position[0] : position[0] + n]
        position[0] += n
        return out

    result = evaluate_samples(sample_fn, 90, 32, features, real_stats=stats, verbose=0)
    real_pool = features(real[:100].astype(np.float32) / 127.5 - 1)["pool"]
    fake_out = features(fake)
    assert result["fid"] == pytest.approx(frechet_distance_from_activations(real_pool, fake_out["pool"]), rel=1e-6)
    is_mean, is_std = inception_score_from_logits(fake_out["logits"], 10)
    assert result["inception_score_mean"] == pytest.approx(is_mean, rel=1e-9)
    assert result["inception_score_std"] == pytest.approx(is_std, rel=1e-9)
    # One KID block (< 1024 rows): independent of the row order.
    kid, _ = kernel_inception_distance_from_activations(real_pool, fake_out["pool"])
    assert result["kid_mean"] == pytest.approx(kid, rel=1e-5)
    assert "kid_std" not in result
    assert (result["kid_num_real"], result["kid_num_generated"]) == (100, 90)
    assert result["fid"] > 0.1
    assert all(isinstance(v, (int, float)) for v in result.values())
    # Without real statistics: IS only.
    position[0] = 0
    alone = evaluate_samples(sample_fn, 90, 32, features, verbose=0)
    assert sorted(alone) == ["inception_score_mean", "inception_score_std", "num_samples"]


def test_evaluate_samples_same_images_give_zero_fid_and_checks_extractor():
    rng = np.random.default_rng(14)
    images = np.tanh(rng.normal(size=(64, 4, 4, 3))).astype(np.float32)
    features = _LinearFeatures(48)
    stats = compute_real_statistics([images], features, batch_size=10, kid_max_samples=0, verbose=0)
    assert stats.kid_activations is None
    cursor = iter(range(0, 64, 16))
    result = evaluate_samples(lambda n: images[next(cursor) :][:n], 64, 16, features, stats, verbose=0)
    assert abs(result["fid"]) < 1e-8
    assert "kid_mean" not in result  # no real rows for KID
    stats.extractor = "another"
    with pytest.raises(ValueError, match="another feature extractor"):
        evaluate_samples(lambda n: images[:n], 64, 16, features, stats, verbose=0)


def test_compute_real_statistics_accepts_tuples_and_dicts_and_checks_length():
    images = np.random.default_rng(15).integers(0, 256, size=(30, 2, 2, 3), dtype=np.uint8)
    features = _LinearFeatures(12)
    a = compute_real_statistics([(images[:20], None), (images[20:], None)], features, verbose=0)
    b = compute_real_statistics([{"image": images}], features, verbose=0)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-12)
    with pytest.raises(ValueError, match="ended before num_examples=40"):
        compute_real_statistics([images], features, num_examples=40, verbose=0)

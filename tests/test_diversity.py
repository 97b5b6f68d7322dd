"""Mode-collapse signals (alphagan_tf/metrics/diversity.py): hand-made numbers, then the demo."""

import numpy as np
import pytest

from alphagan_tf.metrics import diversity


# -- mean pairwise distance and the ratio, by hand ------------------------------------


def test_mean_pairwise_distance_by_hand():
    # Three 1x2 "images": (0, 0), (3, 4), (6, 8): distances 5, 10, 5 -> mean 20 / 3.
    images = np.array([[[0.0, 0.0]], [[3.0, 4.0]], [[6.0, 8.0]]])
    assert diversity.mean_pairwise_distance(images) == pytest.approx(20.0 / 3.0, rel=1e-15)


def test_identical_images_have_ratio_zero():
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (16, 4, 4, 3))
    same = np.repeat(real[:1], 16, axis=0)
    assert diversity.mean_pairwise_distance(same) == 0.0
    assert diversity.diversity_ratio(same, real) == 0.0


def test_ratio_is_relative_scale():
    # Halving every generated image's distance to their mean halves the ratio.
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (20, 4, 4, 3))
    generated = rng.uniform(-1, 1, (20, 4, 4, 3))
    shrunk = generated.mean(0) + 0.5 * (generated - generated.mean(0))
    full = diversity.diversity_ratio(generated, real)
    assert diversity.diversity_ratio(shrunk, real) == pytest.approx(0.5 * full, rel=1e-12)
    assert diversity.diversity_ratio(real, real) == 1.0


def test_real_against_real_is_about_one():
    from alphagan_tf.data.pipeline import scale_images
    from alphagan_tf.data.sources import load_demo

    digits = scale_images(load_demo(16)).numpy()
    order = np.random.default_rng(0).permutation(len(digits))
    ratios = [
        diversity.diversity_ratio(digits[order[i : i + 64]], digits[order[i + 64 : i + 128]])
        for i in range(0, 1280, 128)
    ]
    assert 0.9 < min(ratios) and max(ratios) < 1.1, ratios  # measured: 0.951..1.053


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="at least 2 images"):
        diversity.mean_pairwise_distance(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="same shape"):
        diversity.diversity_ratio(np.zeros((2, 4, 4, 3)), np.ones((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="all identical"):
        diversity.diversity_ratio(np.zeros((2, 4, 4, 3)), np.ones((3, 4, 4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        diversity.mean_pairwise_distance(np.full((2, 2), np.nan))


# -- the collapse warning ----------------------------------------------------------------


def test_warning_names_the_ratio_and_only_when_collapsed():
    rng = np.random.default_rng(2)
    real = rng.uniform(-1, 1, (8, 4, 4, 3))
    collapsed = diversity.check_diversity(np.repeat(real[:1], 8, 0) + 1e-3 * real, real)
    assert collapsed.collapsed and collapsed.ratio == pytest.approx(1e-3, rel=1e-9)
    message = collapsed.warning("epoch 12")
    assert message.startswith("epoch 12: the generator may have mode-collapsed")
    assert "0.00 x that of real images" in message and "below 0.5" in message
    healthy = diversity.check_diversity(real[::-1], real)
    assert not healthy.collapsed and healthy.warning("epoch 12") is None
    assert diversity.check_diversity(real, real, threshold=1.5).collapsed
    with pytest.raises(ValueError, match="threshold"):
        diversity.check_diversity(real, real, threshold=0.0)


def _demo_generators():
    """A generator whose output ignores z, and one that draws demo digits (z picks one)."""
    import keras
    import tensorflow as tf

    from alphagan_tf.data.pipeline import scale_images
    from alphagan_tf.data.sources import load_demo
    from alphagan_tf.gan.space.generator import Generator
    from alphagan_tf.gan.space.genotypes import PRESETS

    digits = scale_images(load_demo(16)).numpy()
    ignores_z = Generator(PRESETS["alphaGAN_s"], gf=8, latent_dim=16, bottom_width=2)
    ignores_z(tf.zeros([2, 16]), training=False)
    dense = ignores_z.stem.dense
    dense.kernel.assign(tf.zeros_like(dense.kernel))  # z no longer reaches the image
    dense.bias.assign(keras.random.normal(dense.bias.shape, seed=0))

    def draws_digits(z):
        picks = np.argsort(np.asarray(z)[:, 0])  # z -> an index into the data (no two alike)
        return digits[(picks * 97) % len(digits)]

    real = digits[np.random.default_rng(5).choice(len(digits), 64, replace=False)]
    return (lambda z: ignores_z(z, training=False).numpy()), draws_digits, real


def test_a_generator_that_ignores_z_triggers_the_warning_and_a_healthy_one_does_not():
    collapsed_g, healthy_g, real = _demo_generators()
    z = np.random.default_rng(3).normal(size=(64, 16)).astype(np.float32)
    collapsed = diversity.check_diversity(collapsed_g(z), real)
    healthy = diversity.check_diversity(healthy_g(z), real)
    assert collapsed.ratio < 1e-5 and collapsed.warning() is not None
    assert 0.9 < healthy.ratio < 1.1 and healthy.warning() is None


# -- digit classes -------------------------------------------------------------------


def test_class_histogram_by_hand():
    logits = np.array([
        [5.0, 0.0, 0.0],  # class 0, p = 0.987
        [0.0, 1.0, 0.9],  # class 1, p = 0.42
        [0.0, 0.0, 3.0],  # class 2, p = 0.91
        [4.0, 0.0, 0.0],  # class 0, p = 0.965
    ])
    histogram = diversity.class_histogram(logits, num_classes=5)
    assert histogram.tolist() == [2, 1, 1, 0, 0]
    assert histogram.dtype == np.int64
    assert diversity.distinct_classes(histogram) == 3
    confident = diversity.class_histogram(logits, min_confidence=0.9)
    assert confident.tolist() == [2, 0, 1]
    assert diversity.distinct_classes(confident) == 2
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        diversity.class_histogram(np.zeros(3))
    with pytest.raises(ValueError, match="num_classes"):
        diversity.class_histogram(logits, num_classes=2)


def test_check_classes_warns_below_the_minimum_by_hand():
    one_hot = np.eye(10)
    healthy = diversity.check_classes(one_hot[[0, 1, 2, 3, 4, 5, 6, 7, 7, 7]])  # 8 classes
    assert healthy.classes == 8 and healthy.minimum == diversity.MIN_DEMO_CLASSES == 8
    assert not healthy.collapsed and healthy.warning("epoch 3") is None
    collapsed = diversity.check_classes(one_hot[[1, 1, 1, 1, 1, 8, 8, 3, 2, 1]])  # 4 classes
    assert collapsed.collapsed and collapsed.histogram == (0, 6, 1, 1, 0, 0, 0, 0, 2, 0)
    message = collapsed.warning("epoch 12")
    assert message.startswith("epoch 12: the generator may have mode-collapsed")
    assert "fall into 4 of 10 classes (fewer than 8; 6 are class 1)" in message
    assert not diversity.check_classes(one_hot[[1, 1, 8, 3]], minimum=3).collapsed
    with pytest.raises(ValueError, match="minimum"):
        diversity.check_classes(one_hot[[1, 2]], minimum=11)


def _nearest_mean_digit_logits():
    """A tiny demo digits classifier: logits = -distance to each digit's mean image."""
    from alphagan_tf.data.pipeline import scale_images
    from alphagan_tf.tuner.demo_classifier import demo_digits

    images, labels = demo_digits(16)
    flat = scale_images(images).numpy().reshape(len(images), -1).astype(np.float64)
    means = np.stack([flat[labels == k].mean(0) for k in range(10)])

    def logits(batch):
        x = np.asarray(batch, np.float64).reshape(len(batch), -1)
        return -np.linalg.norm(x[:, None, :] - means[None], axis=-1)

    return logits, flat, labels


def test_demo_class_check_of_collapsed_and_healthy_generators():
    # What the demo's criterion (>= 8 of 10 digits among 64 samples) says of a generator
    # whose output ignores z and of one that draws demo digits, with a nearest-mean
    # classifier standing in for the demo's CNN (seconds, no training).
    logits, flat, labels = _nearest_mean_digit_logits()
    accuracy = np.mean(np.argmax(logits(flat), axis=1) == labels)
    assert accuracy > 0.85, accuracy  # measured: 0.90
    collapsed_g, healthy_g, real = _demo_generators()
    z = np.random.default_rng(7).normal(size=(64, 16)).astype(np.float32)
    assert not diversity.check_classes(logits(real)).collapsed
    healthy = diversity.check_classes(logits(healthy_g(z)))
    assert healthy.classes >= 8 and healthy.warning() is None
    collapsed = diversity.check_classes(logits(collapsed_g(z)))
    assert collapsed.classes == 1 and collapsed.warning("epoch 5") is not None


@pytest.fixture(scope="module")
def demo_classifier(tmp_path_factory):
    """The demo's digits classifier (alphagan_tf.tuner.demo_classifier, its 20 epochs; 4 stay at chance)."""
    from alphagan_tf.metrics.features import ClassifierFeatures
    from alphagan_tf.tuner.demo_classifier import train_demo_classifier

    out = tmp_path_factory.mktemp("demo") / "classifier"
    report = train_demo_classifier(str(out), verbose=0)
    assert report.test_accuracy > 0.85, report
    return ClassifierFeatures(str(out))


def test_demo_class_count_of_collapsed_and_healthy_generators(demo_classifier):
    collapsed_g, healthy_g, real = _demo_generators()
    z = np.random.default_rng(4).normal(size=(64, 16)).astype(np.float32)

    def classes(images):
        histogram = diversity.class_histogram(demo_classifier(images)["logits"], num_classes=10)
        assert histogram.sum() == 64
        return diversity.distinct_classes(histogram)

    assert classes(real) == 10
    assert classes(healthy_g(z)) >= 8
    assert classes(collapsed_g(z)) == 1


# -- the loops' warning and reference batch -------------------------------------------


def test_check_and_warn_logs_only_when_collapsed(caplog):
    rng = np.random.default_rng(6)
    real = rng.uniform(-1, 1, (8, 4, 4, 3))
    with caplog.at_level("WARNING"):
        healthy = diversity.check_and_warn(real[::-1], real, "epoch 3")
    assert not healthy.collapsed and not caplog.records
    with caplog.at_level("WARNING"):
        collapsed = diversity.check_and_warn(np.repeat(real[:1], 8, 0), real, "iteration 50")
    assert collapsed.collapsed and collapsed.ratio == 0.0
    assert len(caplog.records) == 1 and caplog.records[0].levelname == "WARNING"
    assert caplog.records[0].getMessage().startswith(
        "iteration 50: the generator may have mode-collapsed")


def test_first_images_takes_across_batches_and_names_a_short_supply():
    batches = [np.full((3, 2, 2, 1), i, np.float32) for i in range(4)]
    taken = diversity.first_images(batches, 7)
    assert taken.shape == (7, 2, 2, 1) and taken.dtype == np.float64
    assert taken[:, 0, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 2]
    with pytest.raises(ValueError, match="ran out after 12 images; 13 wanted"):
        diversity.first_images(batches, 13)

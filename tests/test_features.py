"""Feature extractors on tiny SavedModels built here, and the offline classifier chain."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from alphagan_tf.metrics import classifier as classifier_lib  # noqa: E402
from alphagan_tf.metrics.evaluation import compute_real_statistics, evaluate_samples  # noqa: E402
from alphagan_tf.metrics.features import (  # noqa: E402
    INCEPTION_DOWNLOAD_URL,
    ClassifierFeatures,
    FeatureExtractor,
    InceptionFeatures,
    WeightsNotFoundError,
    as_unit_range_images,
)


class _TinyInception(tf.Module):
    """Same call convention and output shapes as the TF-GAN Inception module.

    It insists on 299x299 inputs; pool_3[:, :3] is the mean colour of the image
    (so the test can see what values reached it). With `logits=False` it has no
    logits output, like the converted FID Inception; `pool_dim` < 2048 keeps
    the FID's matrix square root fast.
    """

    def __init__(self, logits: bool = True, pool_dim: int = 2048):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(3, pool_dim)).astype(np.float32))
        self.v = tf.Variable(rng.normal(size=(pool_dim, 1008)).astype(np.float32) * 0.01)
        self.logits = logits
        self.pool_dim = pool_dim

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        tf.debugging.assert_equal(tf.shape(images)[1:3], tf.constant([299, 299]), message="not 299x299")
        # float64: a float32 sum of 299 * 299 equal values drifts by ~1e-3.
        mean = tf.cast(tf.reduce_mean(tf.cast(images, tf.float64), axis=[1, 2]), tf.float32)
        pool = tf.concat([mean, tf.nn.relu(tf.matmul(mean, self.w))[:, 3:]], axis=1)
        outputs = {"pool_3": tf.reshape(pool, [-1, 1, 1, self.pool_dim])}
        if self.logits:
            outputs["logits"] = tf.matmul(pool, self.v)
        return outputs


@pytest.fixture(scope="module")
def tiny_inception_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "saved_model"
    tf.saved_model.save(_TinyInception(), str(path))
    return path


def _graph_range(x):
    """What the Inception graph sees of [-1, 1] values: (127.5 (x + 1) - 128) / 128."""
    return (127.5 * (np.asarray(x) + 1.0) - 128.0) / 128.0


def test_inception_features_from_a_local_saved_model(tiny_inception_dir):
    features = InceptionFeatures(str(tiny_inception_dir))
    assert isinstance(features, FeatureExtractor) and features.name == "tfgan_inception"
    assert features.has_logits
    images = np.full((2, 32, 32, 3), 0.5, np.float32)
    images[1] = -0.25
    out = features(images)
    assert out["pool"].shape == (2, 2048) and out["logits"].shape == (2, 1008)
    assert out["pool"].dtype == np.float32
    # Resized to 299x299 (the model asserts it) and passed in the graph's range:
    # the pixel values 127.5 (x + 1) mapped by (v - 128) / 128.
    np.testing.assert_allclose(out["pool"][:, :3], [[_graph_range(0.5)] * 3, [_graph_range(-0.25)] * 3], atol=1e-6)
    # uint8 input: 255 -> 127/128, as in the graph.
    out_uint8 = features(np.full((1, 48, 48, 3), 255, np.uint8))
    np.testing.assert_allclose(out_uint8["pool"][0, :3], [127 / 128] * 3, atol=1e-6)
    # A textured image: the resized mean stays close to the mean of the original.
    textured = np.tanh(np.random.default_rng(1).normal(size=(1, 32, 32, 3))).astype(np.float32)
    np.testing.assert_allclose(
        features(textured)["pool"][0, :3], _graph_range(textured.mean(axis=(0, 1, 2))), atol=0.02
    )


def test_inception_without_logits_gives_fid_and_kid_and_says_there_is_no_is(tmp_path):
    path = tmp_path / "no_logits"
    tf.saved_model.save(_TinyInception(logits=False, pool_dim=8), str(path))
    with pytest.warns(UserWarning, match="no 'logits' output.*FID and KID only.*Inception Score needs"):
        features = InceptionFeatures(str(path))
    assert not features.has_logits
    rng = np.random.default_rng(4)
    real = rng.integers(0, 256, size=(24, 16, 16, 3), dtype=np.uint8)
    out = features(real[:3])
    assert sorted(out) == ["pool"] and out["pool"].shape == (3, 8)
    stats = compute_real_statistics([real], features, batch_size=12, verbose=0)
    fake = rng.integers(0, 128, size=(24, 16, 16, 3), dtype=np.uint8)
    result = evaluate_samples(lambda n: fake[:n], 24, 24, features, stats, num_splits=2, verbose=0)
    assert "fid" in result and "kid_mean" in result and result["fid"] > 0
    assert "inception_score_mean" not in result


def test_inception_without_pool_3_is_an_error_at_load(tmp_path):
    class NoPool(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, images):
            return {"features": tf.reduce_mean(images, axis=[1, 2])}

    tf.saved_model.save(NoPool(), str(tmp_path / "no_pool"))
    with pytest.raises(ValueError, match=r"with 'pool_3'.*Received: \['features'\]"):
        InceptionFeatures(str(tmp_path / "no_pool"))


def test_tiny_inception_really_rejects_unresized_images(tiny_inception_dir):
    model = tf.saved_model.load(str(tiny_inception_dir))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not 299x299"):
        model(tf.zeros([1, 32, 32, 3]))


def test_inception_missing_local_path_fails_fast_with_instructions(tmp_path):
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as info:
        InceptionFeatures(str(tmp_path / "no_such_inception"))
    message = str(info.value)
    assert "no_such_inception" in message
    assert INCEPTION_DOWNLOAD_URL in message and "tar -xzf" in message
    assert time.monotonic() - start < 10


def test_inception_unreachable_handle_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
    start = time.monotonic()
    # Port 9 on localhost is closed: connection refused at once, no real network used.
    with pytest.raises(WeightsNotFoundError, match="Cannot reach http://127.0.0.1:9/inception"):
        InceptionFeatures("http://127.0.0.1:9/inception", connect_timeout=1.0)
    assert time.monotonic() - start < 10


def _export_tiny_classifier(path, image_size=16, num_classes=4):
    import keras

    keras.utils.set_random_seed(0)
    model = classifier_lib.build_feature_classifier(
        (image_size, image_size, 3), num_classes=num_classes, widths=(4,), feature_dim=6
    )
    model.export(str(path), format="tf_saved_model", verbose=False)
    return model


def test_classifier_features_from_a_keras_export(tmp_path):
    model = _export_tiny_classifier(tmp_path / "clf")
    features = ClassifierFeatures(tmp_path / "clf")
    assert features.name == "classifier:clf" and features.image_size == (16, 16)
    images = np.tanh(np.random.default_rng(2).normal(size=(5, 16, 16, 3))).astype(np.float32)
    out = features(images)
    expected = model(images, training=False)
    np.testing.assert_allclose(out["pool"], np.asarray(expected["features"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["logits"], np.asarray(expected["logits"]), rtol=1e-5, atol=1e-6)
    # Other sizes are resized to the model's 16x16 (bilinear).
    big = tf.image.resize(images, [32, 32], method="bilinear").numpy()
    assert features(big)["pool"].shape == (5, 6)
    # The callable endpoint works too; logits can be skipped.
    serve = ClassifierFeatures(tmp_path / "clf", signature="serve", logits_key=None, name="x")
    out_serve = serve(images)
    assert sorted(out_serve) == ["pool"] and serve.name == "x"
    np.testing.assert_allclose(out_serve["pool"], out["pool"], rtol=1e-6)


def test_classifier_features_errors(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="alphagan_tf.cli.classifier"):
        ClassifierFeatures(tmp_path / "missing")
    _export_tiny_classifier(tmp_path / "clf")
    with pytest.raises(ValueError, match="no signature or callable 'predict'"):
        ClassifierFeatures(tmp_path / "clf", signature="predict")
    wrong_key = ClassifierFeatures(tmp_path / "clf", features_key="pool_3")
    with pytest.raises(ValueError, match=r"Received: \['features', 'logits'\]"):
        wrong_key(np.zeros((1, 16, 16, 3), np.float32))


def test_as_unit_range_images():
    x = np.array([[[[0, 127, 255]]]], np.uint8)
    np.testing.assert_allclose(as_unit_range_images(x), [[[[-1.0, 127 / 127.5 - 1, 1.0]]]])
    np.testing.assert_allclose(as_unit_range_images(tf.constant(x)).numpy(), as_unit_range_images(x))
    y = np.full((1, 1, 1, 3), 0.3)
    assert as_unit_range_images(y).dtype == np.float32


def _toy_data(rng, n, size=16):
    """Two classes: reddish vs bluish noisy images, uint8."""
    labels = np.arange(n) % 2
    base = np.where(labels[:, None] == 0, [200, 60, 60], [60, 60, 200])
    images = base[:, None, None, :] + rng.normal(0, 30, size=(n, size, size, 3))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def test_classifier_chain_end_to_end(tmp_path):
    rng = np.random.default_rng(3)
    x_train, y_train = _toy_data(rng, 48)
    x_test, y_test = _toy_data(rng, 24)
    out_dir = tmp_path / "classifier"
    report = classifier_lib.train_feature_classifier(
        x_train, y_train, x_test, y_test, out_dir, epochs=3,
        batch_size=16, widths=(4, 8), feature_dim=8, verbose=0,
    )  # fmt: skip
    assert report.num_classes == 2 and report.image_shape == (16, 16, 3)
    metadata = json.loads((out_dir / "alphagan_classifier.json").read_text())
    assert metadata["test_accuracy"] == report.test_accuracy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classifier"]  # no temporary left

    features = ClassifierFeatures(out_dir)
    out = features(x_test)
    # The exported model reproduces the accuracy measured on the Keras model.
    assert np.mean(np.argmax(out["logits"], axis=1) == y_test) == pytest.approx(report.test_accuracy)
    assert out["pool"].shape == (24, 8)

    stats = compute_real_statistics([x_train[:24], x_train[24:]], features, batch_size=10, verbose=0)
    assert stats.count == 48 and stats.extractor == "classifier:classifier"

    def sampler(images):
        position = [0]

        def sample_fn(n):
            batch = images[position[0] : position[0] + n]
            position[0] += n
            return batch

        return sample_fn

    same = evaluate_samples(sampler(x_train), 48, 16, features, stats, num_splits=2, verbose=0)
    assert abs(same["fid"]) < 1e-4 * np.trace(stats.sigma) + 1e-6
    noise = rng.integers(0, 256, size=(48, 16, 16, 3), dtype=np.uint8)
    from_noise = evaluate_samples(sampler(noise), 48, 16, features, stats, num_splits=2, verbose=0)
    from_test = evaluate_samples(sampler(np.concatenate([x_test, x_test])), 48, 16, features, stats, num_splits=2, verbose=0)
    assert from_noise["fid"] > from_test["fid"] > same["fid"]
    assert 1.0 <= same["inception_score_mean"] <= 2.0
    assert same["kid_num_real"] == 48 and same["kid_mean"] < from_noise["kid_mean"]

    with pytest.raises(FileExistsError, match="overwrite"):
        classifier_lib.train_feature_classifier(x_train, y_train, x_test, y_test, out_dir, epochs=1, verbose=0)


def test_metrics_modules_import_without_tensorflow():
    code = (
        "import sys, alphagan_tf.metrics, alphagan_tf.metrics.features, "
        "alphagan_tf.metrics.classifier, alphagan_tf.metrics.evaluation\n"
        "bad = [m for m in ('tensorflow', 'tensorflow_hub', 'tensorflow_datasets', 'keras_tuner') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""The evaluate CLI: --make_stats round trip, --checkpoint and --saved_model reports, errors."""

import json
import math
import os
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from alphagan_tf import evaluate as evaluate_cli
from alphagan_tf.data.pipeline import evaluation_dataset
from alphagan_tf.gan.generator import Generator
from alphagan_tf.gan.genotypes import PRESETS
from alphagan_tf.metrics import classifier as classifier_lib
from alphagan_tf.metrics import generator_eval
from alphagan_tf.metrics.evaluation import compute_real_statistics
from alphagan_tf.metrics.features import ClassifierFeatures
from alphagan_tf.metrics.statistics import FeatureStatistics
from alphagan_tf.serving import savedmodel

GF, LATENT, BOTTOM = 8, 16, 2  # 16x16 images


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """A tiny (untrained) classifier SavedModel with 'features' [B, 8] and 'logits' [B, 4]."""
    path = tmp_path_factory.mktemp("clf") / "clf"
    keras.utils.set_random_seed(0)
    model = classifier_lib.build_feature_classifier((16, 16, 3), num_classes=4, widths=(4,), feature_dim=8)
    model.export(str(path), format="tf_saved_model", verbose=False)
    return str(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A training workdir as load_trained_generator reads it; raw G and EMA G differ."""
    root = tmp_path_factory.mktemp("train")
    generators = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        g = Generator.from_genotype(PRESETS["alphaGAN_s"], gf=GF, latent_dim=LATENT, bottom_width=BOTTOM)
        g(tf.zeros([1, LATENT]), training=False)
        generators.append(g)
    os.makedirs(root / "checkpoints")
    with open(root / "train_config.json", "w") as f:
        json.dump({"gf": GF, "bottom_width": BOTTOM, "dataset": "demo", "train": {"latent_dim": LATENT}}, f)
    PRESETS["alphaGAN_s"].save(str(root / "genotype.json"))
    tf.train.Checkpoint(generator=generators[0], ema_generator=generators[1]).save(
        str(root / "checkpoints" / "ckpt"))
    return str(root), generators[1]


def _run(**flag_values):
    """Runs the CLI's main with these flags; returns its exit status."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.as_parsed(**{k: str(v) for k, v in flag_values.items()}):
        return evaluate_cli.main(["evaluate"])


def test_make_stats_round_trip(classifier_dir, tmp_path, capsys):
    out = tmp_path / "stats.npz"
    status = _run(make_stats="true", dataset="demo", image_size=16, max_examples=50,
                  feature_extractor="classifier:" + classifier_dir, out=out, eval_batch_size=16)
    assert status == 0 and "Real statistics of 50 images" in capsys.readouterr().out
    stats = FeatureStatistics.load(out)
    assert stats.count == 50 and stats.extractor == "classifier:clf" and stats.dataset == "demo"
    assert stats.mu.shape == (8,) and stats.kid_activations.shape == (50, 8)
    # The same numbers as the library computes in-process on the same images.
    expected = compute_real_statistics(
        evaluation_dataset("demo", image_size=16, batch_size=16, max_examples=50),
        ClassifierFeatures(classifier_dir), num_examples=50, verbose=0)
    np.testing.assert_allclose(stats.mu, expected.mu, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats.sigma, expected.sigma, rtol=1e-6, atol=1e-9)
    assert np.abs(stats.sigma).max() > 0


def _metrics_in_process(generator, classifier_dir, stats_path, n=40, batch=16):
    return generator_eval.evaluate_generator(
        lambda z: generator(z, training=False), ClassifierFeatures(classifier_dir),
        FeatureStatistics.load(stats_path), num_samples=n, batch_size=batch, latent_dim=LATENT,
        seed=0, verbose=0)


@pytest.fixture(scope="module")
def stats_path(classifier_dir, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("stats") / "demo16.npz")
    assert _run(make_stats="true", dataset="demo", image_size=16, max_examples=60,
                feature_extractor="classifier:" + classifier_dir, out=path) == 0
    return path


def test_evaluate_checkpoint_writes_json_of_the_ema_generator(workdir, classifier_dir, stats_path, capsys):
    root, ema = workdir
    status = _run(checkpoint=root, feature_extractor="classifier:" + classifier_dir,
                  real_stats=stats_path, num_samples=40, eval_batch_size=16)  # 16+16+8
    assert status == 0
    printed = capsys.readouterr().out
    assert "FID " in printed and "IS  " in printed and "KID " in printed
    report = json.load(open(os.path.join(root, "evaluation_latest.json")))
    metrics = report["metrics"]
    assert metrics["num_samples"] == 40 and report["feature_extractor"] == "classifier:clf"
    assert report["generator"]["weights"] == "ema_generator" and report["image_size"] == 16
    for key in ("fid", "inception_score_mean", "inception_score_std", "kid_mean"):
        assert math.isfinite(metrics[key]), key
    assert metrics["fid"] > 0 and 1.0 <= metrics["inception_score_mean"] <= 4.0
    expected = _metrics_in_process(ema, classifier_dir, stats_path)
    for key in ("fid", "inception_score_mean", "kid_mean"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-6), key


def test_evaluate_saved_model_matches_the_checkpoint(workdir, classifier_dir, stats_path, tmp_path):
    root, ema = workdir
    base = str(tmp_path / "export")
    savedmodel.export_saved_model(ema, base, max_batch=16, warmup_batch_sizes=(1,))
    out = tmp_path / "saved_model_eval.json"
    status = _run(saved_model=base, feature_extractor="classifier:" + classifier_dir,
                  real_stats=stats_path, num_samples=40, eval_batch_size=16, out=out)
    assert status == 0
    report = json.load(open(out))
    assert report["generator"]["saved_model"] == os.path.join(base, "1")
    expected = _metrics_in_process(ema, classifier_dir, stats_path)
    for key in ("fid", "inception_score_mean", "kid_mean"):
        assert report["metrics"][key] == pytest.approx(expected[key], rel=1e-4), key


def test_real_stats_are_computed_from_the_training_dataset_and_cached(workdir, classifier_dir, tmp_path):
    root, _ = workdir
    cache = os.path.join(root, "real_stats_classifier:clf.npz")
    assert not os.path.exists(cache)
    status = _run(checkpoint=root, feature_extractor="classifier:" + classifier_dir, max_examples=30,
                  num_samples=20, eval_batch_size=10, out=tmp_path / "e.json")
    assert status == 0
    cached = FeatureStatistics.load(cache)
    assert cached.count == 30 and cached.dataset == "demo"  # train_config.json's dataset
    assert json.load(open(tmp_path / "e.json"))["real_stats"]["count"] == 30


def test_missing_weights_data_or_sources_fail_fast_and_clearly(workdir, classifier_dir, stats_path, tmp_path, capsys):
    root, _ = workdir
    start = time.monotonic()
    assert _run(checkpoint=root, feature_extractor="classifier:" + str(tmp_path / "none"),
                real_stats=stats_path) == 2
    assert "python -m alphagan_tf.metrics.classifier" in capsys.readouterr().err
    assert _run(checkpoint=root, feature_extractor="inception", inception_path=tmp_path / "none",
                real_stats=stats_path) == 2
    assert "No Inception SavedModel" in capsys.readouterr().err
    assert _run(make_stats="true", dataset="npz:" + str(tmp_path / "missing.npz"), out=tmp_path / "s.npz",
                feature_extractor="classifier:" + classifier_dir) == 2
    assert "missing.npz" in capsys.readouterr().err and not os.path.exists(tmp_path / "s.npz")
    assert _run(checkpoint=str(tmp_path), feature_extractor="classifier:" + classifier_dir,
                real_stats=stats_path) == 2
    assert "train_config.json is missing" in capsys.readouterr().err
    assert time.monotonic() - start < 30
    for flag_values, message in [
        (dict(checkpoint=root, saved_model=root, real_stats=stats_path), "exactly one of --checkpoint"),
        (dict(saved_model=root, feature_extractor="classifier:" + classifier_dir), "--real_stats=PATH.npz"),
        (dict(make_stats="true", feature_extractor="classifier:" + classifier_dir), "--make_stats needs --out"),
    ]:
        assert _run(**flag_values) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines

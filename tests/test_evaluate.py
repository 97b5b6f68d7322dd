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

from alphagan_tf.cli import evaluate as evaluate_cli
from alphagan_tf.cli import search as search_cli
from alphagan_tf.cli import train as train_cli
from alphagan_tf.cli import tune as tune_cli
from alphagan_tf.data.pipeline import evaluation_dataset
from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.genotypes import PRESETS
from alphagan_tf.metrics import classifier as classifier_lib
from alphagan_tf.metrics import generator_eval
from alphagan_tf.metrics.evaluation import compute_real_statistics
from alphagan_tf.metrics.features import (
    INCEPTION_CONVERTER,
    ClassifierFeatures,
    WeightsNotFoundError,
    missing_weights_help,
)
from alphagan_tf.metrics.generator_eval import UncheckedStatisticsWarning
from alphagan_tf.metrics.statistics import FeatureStatistics, StatisticsError
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
        json.dump({"model": {"gf": GF, "bottom_width": BOTTOM, "latent_dim": LATENT}, "data": {"dataset": "demo"}}, f)
    PRESETS["alphaGAN_s"].save(str(root / "genotype.json"))
    tf.train.Checkpoint(generator=generators[0], ema_generator=generators[1]).save(
        str(root / "checkpoints" / "ckpt"))
    return str(root), generators[1]


def _run_command(module, **flag_values):
    """Runs a command's main with these flags; returns its exit status."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.as_parsed(**{k: str(v) for k, v in flag_values.items()}):
        return module.main([module.__name__])


def _run(**flag_values):
    """Runs the evaluate CLI's main with these flags; returns its exit status."""
    return _run_command(evaluate_cli, **flag_values)


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
    assert "python -m alphagan_tf.cli.classifier" in capsys.readouterr().err
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


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_standard_mu_sigma_file_is_accepted_with_one_warning(workdir, classifier_dir, stats_path, tmp_path):
    """TTUR's fid_stats_cifar10_train.npz layout: np.savez_compressed(path, mu=, sigma=) only."""
    root, ema = workdir
    ours = FeatureStatistics.load(stats_path)
    ttur = tmp_path / "fid_stats_cifar10_train.npz"
    np.savez_compressed(ttur, mu=ours.mu, sigma=ours.sigma)
    out = tmp_path / "ttur.json"
    with pytest.warns(UncheckedStatisticsWarning) as record:
        status = _run(checkpoint=root, feature_extractor="classifier:" + classifier_dir,
                      real_stats=ttur, num_samples=40, eval_batch_size=16, out=out)
    assert status == 0
    unchecked = [w for w in record if issubclass(w.category, UncheckedStatisticsWarning)]
    assert len(unchecked) == 1, [str(w.message) for w in unchecked]
    message = str(unchecked[0].message)
    assert str(ttur) in message and "TTUR" in message and "pytorch-fid" in message
    assert "clean-fid" in message and "cannot be checked" in message
    metrics = json.load(open(out))["metrics"]
    # The same mu / sigma as our own file: the same FID; no KID (the file holds no rows).
    expected = _metrics_in_process(ema, classifier_dir, stats_path)
    assert metrics["fid"] == pytest.approx(expected["fid"], rel=1e-6)
    assert "kid_mean" not in metrics and "kid_mean" in expected


def test_statistics_of_another_image_size_or_extractor_are_one_error_naming_both(
        workdir, classifier_dir, stats_path, tmp_path, capsys):
    root, _ = workdir
    ours = FeatureStatistics.load(stats_path)
    assert ours.image_size == 16  # --make_stats recorded it
    ours.image_size = 32
    other_size = ours.save(tmp_path / "other_size.npz")
    ours.image_size, ours.extractor = 16, "tfgan_inception"
    other_extractor = ours.save(tmp_path / "other_extractor.npz")
    features = "classifier:" + classifier_dir
    assert _run(checkpoint=root, feature_extractor=features, real_stats=other_size) == 2
    line = _error_line(capsys)
    assert line.startswith("error: --real_stats: ") and "other_size.npz" in line
    assert "32x32 images" in line and "makes 16x16 images" in line and "--image_size=16" in line
    assert _run(checkpoint=root, feature_extractor=features, real_stats=other_extractor) == 2
    line = _error_line(capsys)
    assert "'tfgan_inception'" in line and "'classifier:clf'" in line and "--make_stats" in line
    # The library raises the same error, naming the flag only when the file came from it.
    with pytest.raises(StatisticsError, match=r"^cache.npz holds statistics of 32x32 images") as error:
        generator_eval.check_statistics(FeatureStatistics.load(other_size), path="cache.npz",
                                        extractor="classifier:clf", image_size=16)
    assert error.value.key is None


def test_statistics_without_a_recorded_size_warn_once_and_are_used(workdir, classifier_dir, stats_path,
                                                                   tmp_path):
    root, _ = workdir
    old = FeatureStatistics.load(stats_path)
    old.image_size = 0  # as written before sizes were recorded
    path = old.save(tmp_path / "old.npz")
    with pytest.warns(UncheckedStatisticsWarning, match="does not record the image size") as record:
        status = _run(checkpoint=root, feature_extractor="classifier:" + classifier_dir,
                      real_stats=path, num_samples=20, eval_batch_size=10, out=tmp_path / "o.json")
    assert status == 0 and sum(issubclass(w.category, UncheckedStatisticsWarning) for w in record) == 1


def test_make_stats_takes_the_generators_size_else_the_flag_else_the_protocol(
        workdir, classifier_dir, tmp_path, capsys):
    root, _ = workdir
    features = "classifier:" + classifier_dir
    out = tmp_path / "for_generator.npz"
    # --checkpoint: the generator's 16x16 and its training dataset (train_config.json's demo).
    assert _run(make_stats="true", checkpoint=root, feature_extractor=features, out=out,
                max_examples=20) == 0
    assert "(16x16, features classifier:clf" in capsys.readouterr().out
    stats = FeatureStatistics.load(out)
    assert (stats.image_size, stats.dataset, stats.count) == (16, "demo", 20)
    assert _run(make_stats="true", checkpoint=root, image_size=32, feature_extractor=features,
                out=tmp_path / "x.npz") == 2
    line = _error_line(capsys)
    assert "--image_size=32" in line and "16x16" in line
    assert _run(make_stats="true", dataset="demo", feature_extractor=features,
                out=tmp_path / "y.npz") == 2
    line = _error_line(capsys)
    assert "--dataset=demo has no protocol image size" in line and "--image_size=S" in line
    assert not os.path.exists(tmp_path / "x.npz") and not os.path.exists(tmp_path / "y.npz")


def test_a_missing_feature_extractor_reads_the_same_in_every_command(workdir, stats_path, tmp_path, capsys):
    """train, evaluate, tune and search --algorithm=random_ws: the flags and the converter."""
    root, _ = workdir
    missing = str(tmp_path / "no_inception")
    extractor = dict(feature_extractor="inception", inception_path=missing)
    tiny = dict(dataset="demo", gf=4, df=4, latent_dim=8, bottom_width=1)
    runs = {
        "evaluate": (evaluate_cli, dict(checkpoint=root, real_stats=stats_path)),
        "train": (train_cli, dict(workdir=tmp_path / "train", genotype="alphaGAN_s", **tiny)),
        "tune": (tune_cli, dict(workdir=tmp_path / "tune", max_trials=1, **tiny)),
        "search": (search_cli, dict(workdir=tmp_path / "search", algorithm="random_ws", **tiny)),
    }
    help_text = " ".join(missing_weights_help().split())
    for command, (module, flag_values) in runs.items():
        assert _run_command(module, **extractor, **flag_values) == 2, command
        line = _error_line(capsys)
        assert f"No Inception SavedModel at {missing!r}" in line and line.endswith(help_text), command
    for words in ("--inception_path=DIR", "--feature_extractor=classifier:DIR", INCEPTION_CONVERTER):
        assert words in help_text
    with pytest.raises(WeightsNotFoundError) as error:  # the library says the same
        ClassifierFeatures(tmp_path / "no_classifier")
    assert " ".join(str(error.value).split()).endswith(help_text)

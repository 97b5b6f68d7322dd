"""Random search with weight sharing (gan/search/random_ws.py) on a tiny supernet (8x8 images).

Tracing and optimising the sampled-path steps takes a minute or two whatever
the width, so the tests that train share ONE trainer and start from its
initial state, restored from a checkpoint (`trainer`), as tests/test_searcher.py
does; every test and run seeds 0, which keeps the compiled steps
(`utils/seeding.py`).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver
from scipy import stats

from alphagan_tf.gan.search import random_ws
from alphagan_tf.gan.search.config import ALGORITHMS, SearchConfig, SearchRunConfig
from alphagan_tf.gan.search.config import RandomWSConfig
from alphagan_tf.gan.search.random_ws import (
    CANDIDATE,
    EDGE_SIZES,
    TRAIN,
    build_trainer,
    run_random_ws_search,
    sample_architecture,
)
from alphagan_tf.gan.space import genotypes
from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.space.search_generator import SearchGenerator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = SearchConfig(inner_steps=4, n_critic=2, batch_size=4)
TINY_MODEL = GeneratorConfig(gf=4, df=4, latent_dim=8, bottom_width=1)
DERIVE = RandomWSConfig(candidates=3, eval_samples=16, eval_batch_size=8)


def tiny_config(**overrides) -> SearchRunConfig:
    # seed 0, as conftest seeds every test: a run that reseeds TensorFlow to another seed clears
    # its kernel cache, and every compiled step is optimised again (tens of seconds).
    base = dict(search=TINY, model=TINY_MODEL, epochs=2, seed=0,
                keep_checkpoints=2, deterministic=True, algorithm="random_ws", random_ws=DERIVE)
    base.update(overrides)
    return SearchRunConfig(**base)


class PixelFeatures:
    """A stand-in feature extractor: 4 pixel statistics per image (no network)."""

    name = "pixel_stats"

    def __call__(self, images):
        x = np.asarray(images, np.float32).reshape(len(images), -1)
        return {"pool": np.stack([x.mean(1), x.std(1), x[:, ::5].mean(1), np.abs(x).mean(1)], 1)}


@pytest.fixture(scope="module")
def shared_trainer(tmp_path_factory):
    tf.config.experimental.enable_op_determinism()  # as every run does, before the first trace
    keras.utils.set_random_seed(0)
    trainer = build_trainer(tiny_config())
    checkpoint = tf.train.Checkpoint(**trainer.checkpoint_items())
    path = checkpoint.write(str(tmp_path_factory.mktemp("initial") / "state"))
    return trainer, checkpoint, path


@pytest.fixture()
def trainer(shared_trainer):
    """The shared trainer, back in its initial state."""
    trainer, checkpoint, path = shared_trainer
    checkpoint.read(path).assert_consumed()
    return trainer


def state(trainer):
    return [v.numpy().copy() for v in trainer.generator.variables + trainer.discriminator.variables]


def run(trainer, workdir, **overrides):
    return run_random_ws_search(tiny_config(**overrides), str(workdir), verbose=0,
                                trainer=trainer, feature_fn=PixelFeatures())


def test_uniform_sampler_draws_every_op_of_every_edge_evenly():
    draws = np.stack([sample_architecture(0, TRAIN, s) for s in range(3000)])
    assert draws.shape == (3000, 18) and draws.dtype == np.int32
    # Per edge, a chi-square test of the op counts against uniform, Bonferroni over the 18 edges.
    threshold = {k: stats.chi2.ppf(1 - 1e-3 / 18, k - 1) for k in set(EDGE_SIZES)}
    for edge, size in enumerate(EDGE_SIZES):
        counts = np.bincount(draws[:, edge], minlength=size)
        assert len(counts) == size and counts.min() > 0, (edge, counts)
        chi2 = stats.chisquare(counts).statistic
        assert chi2 < threshold[size], (genotypes.EDGE_NAMES[edge], counts)
    # The test has power: 3000 draws with one op of a normal edge 30% too frequent fail it.
    skewed = np.array([650, 470, 470, 470, 470, 470])
    assert stats.chisquare(skewed).statistic > threshold[6]
    # Edges are independent of each other (no shared draw): a 6x3 contingency test.
    table = np.zeros((6, 3))
    np.add.at(table, (draws[:, 2], draws[:, 0]), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # A pure function of (seed, stream, index).
    np.testing.assert_array_equal(sample_architecture(0, TRAIN, 7), draws[7])
    assert not np.array_equal(sample_architecture(1, TRAIN, 7), draws[7])
    assert not np.array_equal(sample_architecture(0, CANDIDATE, 7), draws[7])


def test_sampled_path_is_the_one_hot_supernet():
    generator = SearchGenerator(gf=4, latent_dim=8, bottom_width=1)
    genotype = genotypes.PRESETS["alphaGAN_s"]
    z = tf.random.stateless_normal([3, 8], seed=[1, 2])
    path = generator(z, training=False, architecture=tf.constant(generator.architecture_indices(genotype)))
    generator.set_alphas_from_genotype(genotype)
    np.testing.assert_allclose(path, generator(z, training=False), rtol=1e-5, atol=1e-6)
    other = genotypes.PRESETS["alphaGAN_l"]
    other_path = generator(z, training=False, architecture=tf.constant(generator.architecture_indices(other)))
    assert np.abs(np.asarray(other_path) - np.asarray(path)).max() > 1e-3
    assert random_ws.architecture_genotype(generator.architecture_indices(genotype)) == genotype


def test_a_step_trains_only_the_sampled_path(trainer):
    architecture = sample_architecture(0, TRAIN, 0)
    before = {id(v): v.numpy().copy() for v in trainer.generator.trainable_variables}
    real = tf.random.stateless_uniform([4, 8, 8, 3], seed=[0, 1], minval=-1, maxval=1)
    trainer.d_step(real, tf.constant(architecture))
    trainer.g_step(tf.constant(architecture))
    moved = {id(v) for v in trainer.generator.trainable_variables
             if np.abs(v.numpy() - before[id(v)]).max() > 0}
    for op, chosen in zip(trainer.generator.mixed_ops(), architecture):
        for k, candidate in enumerate(op.candidates):
            weights = [id(v) for v in candidate.trainable_variables]
            if k == chosen:  # (nearest and bilinear upsampling have no weights)
                assert not weights or any(w in moved for w in weights), (op.name, k)
            else:  # zero gradients and beta_1 = 0: an op off the path does not move
                assert not any(w in moved for w in weights), (op.name, k)
    assert not any(id(v) in moved for v in trainer.generator.arch_variables)
    assert sum(id(v) in moved for v in trainer.generator.weight_variables) > 20


def test_resume_after_interruption_matches_uninterrupted(trainer, shared_trainer, tmp_path):
    _, initial, initial_path = shared_trainer
    straight = run(trainer, tmp_path / "straight", epochs=2)
    straight_state = state(trainer)
    initial.read(initial_path).assert_consumed()
    first_half = run(trainer, tmp_path / "resumed", epochs=1)
    after_one = state(trainer)
    # The "new process": every variable of the trainer moves away before resuming.
    trainer.run_epoch(iter(tf.data.Dataset.from_tensors(tf.ones([4, 8, 8, 3])).repeat()), seed=11)
    resumed = run(trainer, tmp_path / "resumed", epochs=2)
    assert first_half.epochs_run == 1 and resumed.epochs_run == 1
    for a, b in zip(straight_state, state(trainer)):
        np.testing.assert_array_equal(a, b)
    assert max(np.abs(a - b).max() for a, b in zip(after_one, straight_state)) > 1e-4
    assert resumed.genotype == straight.genotype
    scores = [json.load(open(tmp_path / d / "candidate_scores.json")) for d in ("straight", "resumed")]
    assert scores[0] == scores[1]
    history = [json.load(open(tmp_path / d / "random_ws_history.json")) for d in ("straight", "resumed")]
    assert history[0] == history[1] and [h["epoch"] for h in history[0]] == [1, 2]


def test_same_seed_same_search_and_another_seed_samples_others(trainer, shared_trainer, tmp_path):
    _, initial, initial_path = shared_trainer
    results = {}
    for name in ("a", "b"):
        initial.read(initial_path).assert_consumed()
        run(trainer, tmp_path / name, epochs=1)
        results[name] = (state(trainer), json.load(open(tmp_path / name / "candidate_scores.json")),
                         json.load(open(tmp_path / name / "random_ws_history.json")))
    for x, y in zip(results["a"][0], results["b"][0]):
        np.testing.assert_array_equal(x, y)
    assert results["a"][1] == results["b"][1] and results["a"][2] == results["b"][2]
    # Another seed trains other paths (a whole run with it would reseed TensorFlow, and
    # recompiling the steps costs a minute: the seed's way into the draws is checked here).
    def epoch_with(seed):
        initial.read(initial_path).assert_consumed()
        trainer.run_epoch(iter(tf.data.Dataset.from_tensors(tf.ones([4, 8, 8, 3])).repeat()), seed)
        return state(trainer)

    same, other = epoch_with(0), epoch_with(1)
    np.testing.assert_array_equal(same[0], epoch_with(0)[0])
    assert max(np.abs(x - y).max() for x, y in zip(same, other)) > 1e-4


def _tiny_classifier(path):
    from alphagan_tf.metrics import classifier as classifier_lib

    keras.utils.set_random_seed(0)
    model = classifier_lib.build_feature_classifier((8, 8, 3), num_classes=4, widths=(4,), feature_dim=6)
    model.export(str(path), format="tf_saved_model", verbose=False)
    return str(path)


def test_cli_writes_the_best_candidate_and_every_score(trainer, monkeypatch, tmp_path, capsys):
    from alphagan_tf.cli import search as search_cli

    # The CLI's own players would trace the steps again (a minute): hand it the shared ones.
    monkeypatch.setattr(random_ws, "build_trainer", lambda config: trainer)
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    workdir = tmp_path / "run"
    with flagsaver.as_parsed(
        algorithm="random_ws", workdir=str(workdir), dataset="demo", gf="4", df="4",
        bottom_width="1", latent_dim="8", batch_size="4", inner_steps="4", n_critic="2",
        epochs="1", seed="0", random_ws_candidates="5", random_ws_eval_samples="12",
        eval_batch_size="6", feature_extractor="classifier:" + _tiny_classifier(tmp_path / "clf"),
    ):
        assert search_cli.main(["search"]) == 0
    genotype = genotypes.load_genotype(str(workdir / "genotype.json"))
    scores = json.load(open(workdir / "candidate_scores.json"))
    assert [c["candidate"] for c in scores["candidates"]] == list(range(5))
    assert "FID of 12 images" in scores["proxy"] and "classifier:clf" in scores["proxy"]
    fids = [c["fid"] for c in scores["candidates"]]
    assert all(np.isfinite(fids)) and scores["best"] == int(np.argmin(fids))
    assert genotype == genotypes.Genotype.from_dict(scores["candidates"][scores["best"]]["genotype"])
    assert all("inception_score_mean" in c for c in scores["candidates"])  # the classifier has logits
    config = json.load(open(workdir / "search_config.json"))
    assert config["algorithm"] == "random_ws" and config["random_ws"]["candidates"] == 5
    assert (workdir / "samples.png").exists() and (workdir / "search_summary.json").exists()
    assert "Search done" in capsys.readouterr().out


def test_bad_algorithm_is_one_clear_error_listing_the_choices():
    def search(value):
        return subprocess.run(
            [sys.executable, "-m", "alphagan_tf.search", f"--algorithm={value}", "--workdir=/tmp/x"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )

    # Not an algorithm at all: the flag parser's one line (the flag is shared with textnas.search).
    result = search("random")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "algorithm" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0] == ("error: --algorithm: value should be one of "
                         "<alphagan|darts|enas|random_ws>. Received: random")
    # TextNAS's algorithm given to the GAN search: the config's one line, exit 2.
    result = search("enas")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors[-1] == ("error: --algorithm: must be one of ('alphagan', 'random_ws'). "
                          "Received: 'enas'"), result.stderr
    assert ALGORITHMS == ("alphagan", "random_ws")
    with pytest.raises(ValueError, match=r"algorithm: must be one of \('alphagan', 'random_ws'\)"):
        tiny_config(algorithm="random")

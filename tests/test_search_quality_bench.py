"""bench/search_quality.py: its statistics, its random genotypes, and a toy run end to end."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
    spec = importlib.util.spec_from_file_location(
        "search_quality", os.path.join(ROOT, "bench", "search_quality.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_paired_difference_is_the_paired_t_statistic():
    paired = bench.paired_difference({0: 30.0, 1: 25.0, 2: 41.0, 3: 9.0},
                                     {0: 28.0, 1: 20.0, 2: 40.0})
    assert paired["seeds"] == [0, 1, 2]  # seed 3 has no partner
    np.testing.assert_allclose(paired["differences"], [2.0, 5.0, 1.0])
    assert paired["mean"] == pytest.approx(8 / 3)
    sd = math.sqrt(((2 - 8 / 3) ** 2 + (5 - 8 / 3) ** 2 + (1 - 8 / 3) ** 2) / 2)
    assert paired["sd"] == pytest.approx(sd)
    assert paired["t"] == pytest.approx((8 / 3) / (sd / math.sqrt(3)))
    assert paired["seeds_for_t2"] == max(2, math.ceil((2 * sd / (8 / 3)) ** 2)) == 3
    assert math.isnan(bench.paired_difference({0: 1.0}, {0: 2.0})["t"])


def test_summarize_gives_mean_and_sample_sd_per_genotype():
    results = [{"label": "a", "seed": s, "fid_test": v} for s, v in enumerate([10.0, 14.0, 12.0])]
    results.append({"label": "b", "seed": 0, "fid_test": 7.0})
    table = bench.summarize(results, "fid_test")
    assert table["a"]["n"] == 3 and table["a"]["mean"] == pytest.approx(12.0)
    assert table["a"]["sd"] == pytest.approx(2.0)
    assert table["b"]["n"] == 1 and math.isnan(table["b"]["sd"])


def test_random_genotypes_are_seeded_and_uniform_over_each_edge():
    from alphagan_tf.gan.space import genotypes

    assert bench.random_genotype(100).ops() == bench.random_genotype(100).ops()
    assert bench.random_genotype(100).ops() != bench.random_genotype(101).ops()
    draws = np.array([bench.random_genotype(seed).ops() for seed in range(600)])
    for edge, (_, kind) in enumerate(genotypes.EDGES):
        candidates = genotypes.candidates_for(kind)
        counts = np.array([(draws[:, edge] == op).sum() for op in candidates])
        expected = len(draws) / len(candidates)
        chi_square = ((counts - expected) ** 2 / expected).sum()
        assert chi_square < 25.0, (edge, counts)  # df <= 5: p < 1.4e-4 per edge if uniform


def test_genotype_labels_must_be_unique():
    assert bench.parse_genotypes("search=a.json,alphaGAN_l") == [
        ("search", "a.json"), ("alphaGAN_l", "alphaGAN_l")]
    with pytest.raises(ValueError, match="unique"):
        bench.parse_genotypes("alphaGAN_l,alphaGAN_l")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A 16x16 .npz, a tiny classifier as the feature extractor, a 2-iteration recipe."""
    import keras

    from alphagan_tf.metrics.classifier import build_feature_classifier

    folder = tmp_path_factory.mktemp("search_quality")
    rng = np.random.default_rng(0)
    npz = folder / "data.npz"
    np.savez(npz, x_train=rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8),
             y_train=rng.integers(0, 4, 40), x_test=rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8),
             y_test=rng.integers(0, 4, 24))
    keras.utils.set_random_seed(0)
    build_feature_classifier((16, 16, 3), num_classes=4, widths=(4,), feature_dim=6).export(
        str(folder / "clf"), format="tf_saved_model", verbose=False)
    recipe = folder / "recipe.cfg"
    recipe.write_text("\n".join([
        f"--dataset=npz:{npz}", "--bottom_width=2", "--gf=8", "--df=8", "--latent_dim=8",
        "--g_iterations=2", "--n_critic=1", "--g_batch_size=8", "--d_batch_size=8",
        "--ema_decay=0.5", "--checkpoint_every=2", "--sample_every=2", ""]))
    return folder, npz, recipe


def _run_bench(folder, npz, recipe, *extra):
    command = [sys.executable, os.path.join(ROOT, "bench", "search_quality.py"), f"--npz={npz}",
               "--genotypes=alphaGAN_s", "--random_genotypes=1", "--seeds=0,1",
               f"--train_flagfile={recipe}", f"--feature_extractor=classifier:{folder / 'clf'}",
               "--num_samples=20", "--batch_size=10", "--train_real=0", "--reference=alphaGAN_s",
               "--jobs=2", "--threads_per_job=1", f"--workdir={folder / 'bench'}", *extra]
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=580)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.long  # the bench end to end in subprocesses (~50-130 s); its parts are tested above
def test_toy_bench_retrains_scores_summarizes_and_resumes(toy):
    folder, npz, recipe = toy
    out = _run_bench(folder, npz, recipe)
    assert "2 genotypes x 2 seeds = 4 retrainings" in out
    workdir = folder / "bench"
    summary = json.loads((workdir / "summary.json").read_text())
    results = summary["results"]
    assert sorted((r["label"], r["seed"]) for r in results) == [
        ("alphaGAN_s", 0), ("alphaGAN_s", 1), ("random_0", 0), ("random_0", 1)]
    for r in results:
        assert r["num_samples"] == 20 and r["train_cpu_s"] > 0
        for metric in bench.METRICS:
            assert np.isfinite(r[metric])
        assert r["fid_test"] > 0 and r["fid_train"] > 0
    # Generators differ by seed and genotype, so do their scores.
    assert len({round(r["fid_test"], 8) for r in results}) == 4
    table = (workdir / "summary.md").read_text()
    paired = bench.paired_difference(summary["fid_test"]["random_0"]["values"],
                                     summary["fid_test"]["alphaGAN_s"]["values"])
    assert f"{paired['mean']:+.2f}" in table.split("Paired with")[1]
    assert (workdir / "quality.png").stat().st_size > 1000
    # Written genotypes are what was retrained: the random one is random_genotype(100).
    random_0 = json.loads((workdir / "genotypes" / "random_0.json").read_text())
    assert random_0 == json.loads(bench.random_genotype(100).to_json())

    # Rerun: nothing retrains, every score is read back unchanged.
    logs = {p: p.stat().st_size for p in (workdir / "runs").glob("*/train.log")}
    again = _run_bench(folder, npz, recipe)
    assert {p: p.stat().st_size for p in logs} == logs
    assert json.loads((workdir / "summary.json").read_text())["results"] == results
    assert sum(line.startswith("[") for line in again.splitlines()) == 4  # one line per run
    # A second scorer finds nothing left to score; one result removed is scored again, the same.
    scored = workdir / "runs" / "random_0_seed1" / "result.json"
    first = json.loads(scored.read_text())
    scored.unlink()
    rescored = _run_bench(folder, npz, recipe, "--score_only")
    assert rescored.count("seed 1: FID test") == 1 and "random_0 seed 1" in rescored
    assert json.loads(scored.read_text())["fid_test"] == pytest.approx(first["fid_test"], rel=1e-6)
    # --summary_only reads the scored runs back and writes the same tables.
    table_again = _run_bench(folder, npz, recipe, "--summary_only")
    assert "4 of 4 retrainings scored so far" in table_again
    assert (workdir / "summary.md").read_text() == table and table in table_again

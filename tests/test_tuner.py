"""KerasTuner space, trials and report (issue 8): tiny widths, the demo dataset, seconds."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras_tuner = pytest.importorskip("keras_tuner")

from absl import flags  # noqa: E402
from absl.testing import flagsaver  # noqa: E402

from alphagan_tf.gan.space.genotypes import (
    EDGE_NAMES,
    NORMAL_OPS,
    PRESETS,
    UP_OPS,
    GenotypeError,
    load_genotype,
)
from alphagan_tf.tuner import report, space  # noqa: E402
from alphagan_tf.tuner.tuners import make_tuner  # noqa: E402

TINY = dict(gf=8, latent_dim=8, bottom_width=2)


def test_importing_the_package_and_cli_does_not_import_keras_tuner():
    code = ("import sys, alphagan_tf, alphagan_tf.tuner, alphagan_tf.tune; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras_tuner', 'tensorflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_space_has_one_choice_per_edge():
    hp = keras_tuner.HyperParameters()
    space.declare_edges(hp)
    assert [p.name for p in hp.space] == list(EDGE_NAMES)
    sizes = [len(p.values) for p in hp.space]
    assert sizes.count(len(NORMAL_OPS)) == 9 and sizes.count(len(UP_OPS)) == 9
    for p in hp.space:
        assert tuple(p.values) in (NORMAL_OPS, UP_OPS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_values_genotype_round_trip(name):
    genotype = PRESETS[name]
    values = space.genotype_to_values(genotype)
    assert list(values) == list(EDGE_NAMES)
    assert values["cell1.up[0]"] == genotype.cells[0].up[0]
    assert values["skip_3[1]"] == genotype.skip_3[1]
    assert space.values_to_genotype(values) == genotype
    # Through a HyperParameters object, as a trial holds them (Hyperband keys ignored).
    hp = keras_tuner.HyperParameters()
    space.declare_edges(hp)
    hp.values.update(values)
    hp.values["tuner/epochs"] = 3
    assert space.GeneratorHyperModel(**TINY).genotype(hp) == genotype
    assert space.values_to_genotype(hp) == genotype


def test_values_errors_name_the_edge():
    values = space.genotype_to_values(PRESETS["alphaGAN_s"])
    with pytest.raises(GenotypeError, match=r"values\['cell2.normal\[1\]'\]: unknown op 'deconv'"):
        space.values_to_genotype({**values, "cell2.normal[1]": "deconv"})
    missing = dict(values)
    del missing["skip_2[0]"]
    with pytest.raises(GenotypeError, match=r"Missing: \['skip_2\[0\]'\]"):
        space.values_to_genotype(missing)
    with pytest.raises(GenotypeError, match=r"unknown: \['cell4.up\[0\]'\]"):
        space.values_to_genotype({**values, "cell4.up[0]": "deconv"})


def test_every_sampled_genotype_builds():
    import tensorflow as tf

    hypermodel = space.GeneratorHyperModel(**TINY)
    hp = keras_tuner.HyperParameters()
    space.declare_edges(hp)
    seen = set()
    for seed in range(4):
        values = {p.name: p.random_sample(seed * 100 + i) for i, p in enumerate(hp.space)}
        sample = keras_tuner.HyperParameters()
        space.declare_edges(sample)
        sample.values.update(values)
        genotype = hypermodel.genotype(sample)
        seen.add(genotype.ops())
        generator = hypermodel.build(sample)
        images = generator(tf.random.normal([2, TINY["latent_dim"]]), training=False).numpy()
        assert images.shape == (2, 16, 16, 3)
        assert np.all(np.isfinite(images)) and np.abs(images).max() <= 1.0
        assert generator.count_params() > 0
    assert len(seen) == 4


def _fake_objective(fail_calls=()):
    """A deterministic objective: FID = number of sep convs; raises on the listed calls."""
    calls = []

    def objective(genotype, workdir, g_iterations=None):
        calls.append(genotype)
        if len(calls) in fail_calls:
            raise ModuleNotFoundError("No module named 'tensorboard'")
        sep = sum(op.startswith("sep_conv") for op in genotype.ops())
        return {"fid": float(sep), "inception_score": 1.0 + sep}

    return objective, calls


def test_failed_trials_are_reported_not_counted(tmp_path):
    objective, calls = _fake_objective(fail_calls=(2,))
    hypermodel = space.GeneratorHyperModel(**TINY, objective=objective)
    tuner = make_tuner("random", hypermodel, max_trials=3, directory=str(tmp_path / "kt"), seed=1)
    tuner.search(verbose=0)
    summary = report.write_report(tuner, str(tmp_path))
    assert len(calls) == 3
    assert (summary["trials"], summary["completed"], summary["failed"]) == (3, 2, 1)
    assert summary["failures"][0]["trial"] == "1"
    assert "No module named 'tensorboard'" in summary["failures"][0]["error"]
    assert "ModuleNotFoundError" in (tmp_path / "trial_errors.txt").read_text()
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert [r["status"] for r in rows] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert "tensorboard" in rows[1]["error"] and rows[1]["fid"] == "nan"
    # The best genotype is the completed trial with the lowest FID.
    fids = {i: sum(op.startswith("sep_conv") for op in g.ops()) for i, g in enumerate(calls)}
    best_call = min((0, 2), key=lambda i: fids[i])
    assert load_genotype(str(tmp_path / "best_genotype.json")) == calls[best_call]
    assert summary["best"]["fid"] == fids[best_call]
    assert float(rows[2]["best_fid_so_far"]) == min(fids[0], fids[2])
    assert (tmp_path / "trials.png").stat().st_size > 0
    assert "FAILED trial 1: ModuleNotFoundError" in report.format_summary(summary)


def test_resume_runs_only_the_missing_trials(tmp_path):
    objective, calls = _fake_objective()
    hypermodel = space.GeneratorHyperModel(**TINY, objective=objective)
    make_tuner("random", hypermodel, max_trials=2, directory=str(tmp_path), seed=3).search(verbose=0)
    first = [g.ops() for g in calls]
    tuner = make_tuner("random", hypermodel, max_trials=3, directory=str(tmp_path), seed=3)
    tuner.search(verbose=0)
    assert len(calls) == 3 and [g.ops() for g in calls[:2]] == first
    assert [r["trial"] for r in report.trial_rows(tuner)] == ["0", "1", "2"]


# --- the CLI on the demo dataset, with a tiny classifier as the feature extractor -------------


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    import keras

    from alphagan_tf.metrics.classifier import build_feature_classifier

    path = tmp_path_factory.mktemp("features") / "clf"
    keras.utils.set_random_seed(0)
    build_feature_classifier((16, 16, 3), num_classes=4, widths=(4,), feature_dim=6).export(
        str(path), format="tf_saved_model", verbose=False)
    return str(path)


def _tune_flags(workdir, classifier, **overrides):
    values = dict(
        dataset="demo", bottom_width=2, gf=8, df=8, latent_dim=8, g_iterations=2, n_critic=1,
        g_batch_size=8, d_batch_size=8, ema_decay=0.5, eval_samples=20, eval_batch_size=10,
        checkpoint_every=2, sample_every=2, feature_extractor=f"classifier:{classifier}",
        tuner="random", max_trials=2, workdir=str(workdir), seed=0,
    )
    values.update(overrides)
    return values


def _run_cli(**values):
    from alphagan_tf.cli import tune

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.as_parsed(**{k: str(v) for k, v in values.items()}):
        return tune.main(["tune"])


def test_two_trial_random_search_on_demo_writes_best_genotype(tmp_path, tiny_classifier, capsys):
    assert _run_cli(**_tune_flags(tmp_path, tiny_classifier)) == 0
    out = capsys.readouterr().out
    assert "2 completed, 0 FAILED" in out
    summary = json.loads((tmp_path / "tune_summary.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    fids = [float(r["fid"]) for r in rows]
    assert len(fids) == 2 and all(np.isfinite(fids)) and all(f >= 0 for f in fids)
    best = load_genotype(str(tmp_path / "best_genotype.json"))
    best_row = rows[int(np.argmin(fids))]
    assert best.ops() == tuple(best_row[name] for name in EDGE_NAMES)
    assert summary["best"]["fid"] == pytest.approx(min(fids))
    # Each trial is an ordinary training workdir of the genotype it reports.
    trial_dir = tmp_path / "keras_tuner" / "random" / f"trial_{best_row['trial']}" / "retrain"
    assert load_genotype(str(trial_dir / "genotype.json")) == best
    assert json.loads((trial_dir / "objective.json").read_text())["g_iterations"] == 2
    # Re-running the same command resumes: nothing left to do, same result.
    assert _run_cli(**_tune_flags(tmp_path, tiny_classifier)) == 0
    assert list(csv.DictReader(open(tmp_path / "trials.csv"))) == rows
    # --report_only rewrites the report from KerasTuner's files without running a trial.
    (tmp_path / "trials.csv").unlink()
    assert _run_cli(**_tune_flags(tmp_path, tiny_classifier, report_only=True)) == 0
    assert list(csv.DictReader(open(tmp_path / "trials.csv"))) == rows
    # Another configuration in the same workdir is refused, and nothing is touched.
    assert _run_cli(**_tune_flags(tmp_path, tiny_classifier, gf=16)) == 2
    assert "changed: ['objective']" in capsys.readouterr().err
    assert list(csv.DictReader(open(tmp_path / "trials.csv"))) == rows


def test_cli_reports_when_every_trial_fails(tmp_path, tiny_classifier, capsys, monkeypatch):
    from alphagan_tf.gan.train import loop as train_loop

    def no_tensorboard(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'tensorboard'")

    monkeypatch.setattr(train_loop, "run_training", no_tensorboard)
    code = _run_cli(**_tune_flags(tmp_path, tiny_classifier, max_trials=4,
                                  max_consecutive_failed_trials=2))
    assert code == 1
    captured = capsys.readouterr()
    assert "0 completed, 2 FAILED" in captured.out
    assert captured.out.count("FAILED trial") == 2 and "No module named 'tensorboard'" in captured.out
    assert "KerasTuner stopped the search" in captured.out
    assert not (tmp_path / "best_genotype.json").exists()
    assert "trial(s) FAILED" in captured.err


def test_objective_needs_features(tmp_path):
    from alphagan_tf.tuner.objective import ObjectiveConfig, ObjectiveConfigError, objective_from_spec

    with pytest.raises(ObjectiveConfigError, match="Received: feature_extractor='none'"):
        objective_from_spec(ObjectiveConfig(), "none")


def test_bayesian_and_hyperband_run_with_their_budgets(tmp_path):
    objective, calls = _fake_objective()
    budgets = []

    def recording(genotype, workdir, g_iterations=None):
        budgets.append(g_iterations)
        return objective(genotype, workdir, g_iterations)

    hypermodel = space.GeneratorHyperModel(**TINY, objective=recording)
    tuner = make_tuner("bayesian", hypermodel, max_trials=3, directory=str(tmp_path), seed=0,
                       bayesian_initial_points=2)
    tuner.search(verbose=0)
    assert [r["status"] for r in report.trial_rows(tuner)] == ["COMPLETED"] * 3
    assert budgets == [None] * 3  # the objective's own budget
    budgets.clear()
    tuner = make_tuner("hyperband", hypermodel, max_trials=4, directory=str(tmp_path), seed=0,
                       hyperband_max_epochs=3, hyperband_factor=3, steps_per_epoch=5)
    tuner.search(verbose=0)
    rows = report.trial_rows(tuner)
    assert len(rows) == 4 and all(r["status"] == "COMPLETED" for r in rows)
    # One Hyperband epoch is steps_per_epoch generator iterations.
    assert budgets == [5 * int(r["epochs"]) for r in rows]
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_tuner("hyperband", hypermodel, max_trials=1, directory=str(tmp_path / "x"))


def test_time_budget_spans_resumed_runs(tmp_path):
    objective, calls = _fake_objective()
    hypermodel = space.GeneratorHyperModel(**TINY, objective=objective)
    for _ in range(2):
        tuner = make_tuner("random", hypermodel, max_trials=5, directory=str(tmp_path), seed=0,
                           max_seconds=1e-6)
        tuner.search(verbose=0)
    assert len(calls) == 1  # the budget was spent by the first trial, and stays spent
    used = tuner.budget_used()
    assert used["wall_seconds"] > 0 and used["cpu_seconds"] > 0
    assert len(report.trial_rows(tuner)) == 1


def test_the_demo_builds_its_missing_digits_classifier_once(tmp_path, tiny_classifier, monkeypatch):
    import shutil

    from alphagan_tf.cli import tune
    from alphagan_tf.tuner import demo_classifier

    calls = []

    def fake_train(out_dir, image_size, verbose):
        calls.append((out_dir, image_size))
        shutil.copytree(tiny_classifier, out_dir)
        return type("Report", (), {"out_dir": out_dir, "test_accuracy": 0.5})()

    monkeypatch.setattr(demo_classifier, "train_demo_classifier", fake_train)
    target = str(tmp_path / "runs" / "demo_classifier")
    tune._build_demo_classifier_if_missing("npz:x.npz", f"classifier:{target}", 32)
    tune._build_demo_classifier_if_missing("demo", "inception", 16)
    assert calls == []  # only the demo's own classifier is built
    tune._build_demo_classifier_if_missing("demo", f"classifier:{target}", 16)
    tune._build_demo_classifier_if_missing("demo", f"classifier:{target}", 16)
    assert calls == [(target, 16)]
    assert os.path.exists(os.path.join(target, "saved_model.pb"))

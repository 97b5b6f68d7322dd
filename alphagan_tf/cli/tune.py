"""Black-box search baselines over the AlphaGAN genotypes with KerasTuner.

    python -m alphagan_tf.tune --tuner=random --max_trials=2 --flagfile=configs/tune_demo.cfg --workdir=DIR
    python -m alphagan_tf.tune --tuner=bayesian|hyperband ...

Each trial samples one op per edge, retrains that genotype for --g_iterations
(the train flags set widths, batch sizes and optimizer) and scores it by FID
(lower is better) and IS on --eval_samples images with --feature_extractor
(inception or classifier:PATH; FID needs features, so none is an error).

Writes into --workdir: keras_tuner/<tuner>/ (KerasTuner's project, one trial_<id>/retrain
training workdir per trial), trials.csv, trials.png, trial_errors.txt (failed trials),
best_genotype.json (our Genotype JSON; `python -m alphagan_tf.train --genotype=` takes it),
tune_summary.json and tune_config.json. Re-running the same command resumes the run
(KerasTuner's overwrite=False; an interrupted trial resumes from its checkpoint);
--max_trials (or --max_cpu_minutes / --max_minutes, budgets summed over resumed runs) can be
raised to extend it, --tune_overwrite starts over, --report_only rewrites the report.

Distributed (KerasTuner's chief oracle and workers, one process each, on one machine or
many): set KERASTUNER_TUNER_ID (chief / tuner0, tuner1, ...), KERASTUNER_ORACLE_IP and
KERASTUNER_ORACLE_PORT for every process and run the same command in each
(`alphagan_tf/tuner/cluster.py`; `python -m alphagan_tf.cli.tune_launch --workers=N -- FLAGS`
starts them on this machine). The chief hands out the trials and, once they are all done,
writes the report files above; the workers run the trials in their trial_<id>/retrain dirs
(under their own --workdir, which may be the chief's) and write no report. A worker
exits 0 once the chief has no trial left for it; the chief's exit status is the run's.

Exit status: 0 when at least one trial completed (failed trials are listed with their
error), 1 when none did, 2 on a configuration error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys

from absl import app, flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.cli import flags as alphagan_flags
from alphagan_tf.utils.typed_config import require, require_positive

alphagan_flags.define_tune_flags()
FLAGS = flags.FLAGS

_CONSECUTIVE_FAILURES = "Number of consecutive failures exceeded the limit"
# Flags that may change between a run and its resumption.
_RESUMABLE_KEYS = ("max_trials", "max_consecutive_failed_trials", "max_cpu_minutes", "max_minutes")


def objective_config_from_flags():
    """Flags -> the typed ObjectiveConfig (the only place the retrain flags are read)."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.tuner.objective import ObjectiveConfig

    run = alphagan_flags.retrain_run_config_from_flags("(sampled per trial)")
    return ObjectiveConfig(
        run=run, eval_samples=FLAGS.eval_samples, eval_batch_size=FLAGS.eval_batch_size,
        eval_seed=FLAGS.seed,
    )


def tune_config_from_flags(objective_config) -> dict:
    """What defines a tuning run (tune_config.json): resuming needs the same values."""
    return {
        "tuner": FLAGS.tuner,
        "max_trials": FLAGS.max_trials,
        "max_consecutive_failed_trials": FLAGS.max_consecutive_failed_trials,
        "max_cpu_minutes": FLAGS.max_cpu_minutes,
        "max_minutes": FLAGS.max_minutes,
        "bayesian_initial_points": FLAGS.bayesian_initial_points,
        "hyperband_max_epochs": FLAGS.hyperband_max_epochs,
        "hyperband_factor": FLAGS.hyperband_factor,
        "hyperband_steps_per_epoch": _steps_per_epoch(),
        "feature_extractor": FLAGS.feature_extractor,
        "real_stats": FLAGS.real_stats,
        "objective": dataclasses.asdict(objective_config),
    }


def _steps_per_epoch() -> int | None:
    if FLAGS.tuner != "hyperband":
        return None
    return FLAGS.hyperband_steps_per_epoch or max(1, FLAGS.g_iterations // FLAGS.hyperband_max_epochs)


def check_resumable(path: str, config: dict) -> None:
    """Raises ObjectiveConfigError when `path` records a run with another configuration."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.tuner.objective import ObjectiveConfigError
    from alphagan_tf.utils import files

    previous = files.read_json(path)
    if previous is None:
        return
    config = json.loads(json.dumps(config))  # as stored: tuples (e.g. `devices`) become lists
    keys = sorted(set(previous) | set(config))
    changed = [k for k in keys if k not in _RESUMABLE_KEYS and previous.get(k) != config.get(k)]
    if changed:
        raise ObjectiveConfigError(
            f"{os.path.dirname(path)} holds a {previous.get('tuner')} tuning run with another "
            f"configuration (changed: {changed}); re-run it with the same flags to resume, "
            "pass --tune_overwrite to start over, or use another --workdir. "
            f"Received: {', '.join(f'{k}={config.get(k)!r}' for k in changed)}"
        )


def _build_demo_classifier_if_missing(dataset: str, feature_extractor: str, image_size: int) -> None:
    """The demo builds what it needs: its digits classifier, when the features name a missing one."""
    if dataset != "demo" or not feature_extractor.startswith("classifier:"):
        return
    out_dir = feature_extractor.split(":", 1)[1]
    if os.path.exists(os.path.join(out_dir, "saved_model.pb")):
        return
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.tuner.demo_classifier import train_demo_classifier

    print(f"No digits classifier at {out_dir}: training it once (the demo's FID features, "
          "about 30 s; `python -m alphagan_tf.cli.demo_classifier` does the same).")
    report = train_demo_classifier(out_dir, image_size=image_size, verbose=0)
    print(f"classifier: {report.out_dir}  test accuracy {report.test_accuracy:.4f}")


def check_tune_flags(workdir: str) -> None:
    """The tuner's own flags and the workdir, before anything is written (ConfigError)."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.tuner.objective import check_feature_extractor
    from alphagan_tf.utils.workdir import check_writable_folder

    require_positive(FLAGS, "max_trials", "max_consecutive_failed_trials", "hyperband_max_epochs")
    require(FLAGS.hyperband_factor >= 2, "hyperband_factor", FLAGS.hyperband_factor,
            "must be an integer >= 2")
    for name in ("bayesian_initial_points", "hyperband_steps_per_epoch"):
        require(FLAGS[name].value is None or FLAGS[name].value >= 1, name, FLAGS[name].value,
                "must be an integer >= 1 (or unset)")
    for name in ("max_cpu_minutes", "max_minutes"):
        require(FLAGS[name].value is None or FLAGS[name].value > 0, name, FLAGS[name].value,
                "must be a number > 0 (or unset)")
    check_writable_folder(workdir)
    if not FLAGS.report_only:
        check_feature_extractor(FLAGS.feature_extractor)


def check_distributed_flags(role: str) -> None:
    """What a chief or a worker of a distributed run cannot do (ClusterError); nothing when single."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.tuner.cluster import ClusterError

    if role == "single":
        return
    refused = [f"--{name}" for name in ("tune_overwrite", "report_only", "max_cpu_minutes",
                                        "max_minutes") if FLAGS[name].value]
    if refused:
        raise ClusterError(
            f"Distributed tuning ({role}) does not take {', '.join(refused)}: the processes would "
            "each apply it on their own (a worker deleting what another writes, a budget per "
            "worker). Bound the run with --max_trials; overwrite, report or budget with a "
            "one-process run (without the KERASTUNER_* variables) on the chief's --workdir."
        )
    try:
        import grpc  # noqa: F401  (KerasTuner's chief and workers talk gRPC)
    except ImportError:
        raise ClusterError("Distributed tuning needs grpcio: pip install grpcio") from None


def _objective(objective_config, workdir: str, role: str):
    """The trials' objective (the demo classifier built if missing, real statistics cached).

    The workers of one machine share --workdir: they take turns (a file lock), so the
    classifier and the statistics are computed once and the others read them.
    """
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.tuner.objective import objective_from_spec
    from alphagan_tf.utils import files

    lock = (files.exclusive_lock(os.path.join(workdir, ".prepare.lock")) if role == "worker"
            else contextlib.nullcontext())
    with lock:
        _build_demo_classifier_if_missing(
            FLAGS.dataset, FLAGS.feature_extractor, image_size=8 * FLAGS.bottom_width
        )
        return objective_from_spec(
            objective_config, FLAGS.feature_extractor, inception_path=FLAGS.inception_path,
            real_stats_path=FLAGS.real_stats, cache_dir=workdir,
        )


def _worker_summary(tuner) -> str:
    ran = tuner.trials_run
    ids = ", ".join(trial_id for trial_id, _ in ran) or "none"
    done = sum(status == "COMPLETED" for _, status in ran)
    return (f"worker {tuner.tuner_id}: ran trials [{ids}] ({done} completed, "
            f"{len(ran) - done} not); the chief writes the report.")


def run_tuning(workdir: str) -> int:
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.tuner import cluster, report
    from alphagan_tf.tuner.space import GeneratorHyperModel
    from alphagan_tf.tuner.tuners import make_tuner
    from alphagan_tf.utils import files

    role = cluster.tuning_role()
    objective_config = objective_config_from_flags()
    tune_config = tune_config_from_flags(objective_config)
    check_distributed_flags(role)
    check_tune_flags(workdir)
    if role != "single":
        print(cluster.describe())
    config_path = os.path.join(workdir, "tune_config.json")
    tuner_dir = os.path.join(workdir, "keras_tuner")
    if FLAGS.tune_overwrite:
        for name in ("keras_tuner", "tune_config.json", "trials.csv", "trials.png",
                     "trial_errors.txt", "best_genotype.json", "tune_summary.json"):
            path = os.path.join(workdir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    check_resumable(config_path, tune_config)
    if FLAGS.report_only:
        if not os.path.exists(config_path):
            raise FileNotFoundError(f"--report_only: no tuning run in {workdir} (tune_config.json).")
        objective = None
    else:
        os.makedirs(workdir, exist_ok=True)
        # The chief runs no trial; a worker leaves the run's record to the chief.
        objective = None if role == "chief" else _objective(objective_config, workdir, role)
        if role != "worker":
            files.write_json_atomic(config_path, tune_config)
    hypermodel = GeneratorHyperModel(
        gf=FLAGS.gf, latent_dim=FLAGS.latent_dim, bottom_width=FLAGS.bottom_width,
        objective=objective,
    )
    tuner = make_tuner(
        FLAGS.tuner, hypermodel, max_trials=FLAGS.max_trials, directory=tuner_dir,
        seed=FLAGS.seed, overwrite=False,
        max_consecutive_failed_trials=FLAGS.max_consecutive_failed_trials,
        bayesian_initial_points=FLAGS.bayesian_initial_points,
        hyperband_max_epochs=FLAGS.hyperband_max_epochs,
        hyperband_factor=FLAGS.hyperband_factor, steps_per_epoch=_steps_per_epoch(),
        max_cpu_seconds=None if FLAGS.max_cpu_minutes is None else 60.0 * FLAGS.max_cpu_minutes,
        max_seconds=None if FLAGS.max_minutes is None else 60.0 * FLAGS.max_minutes,
    )
    stopped = ""
    try:
        if not FLAGS.report_only:
            tuner.search()
    except RuntimeError as error:
        if _CONSECUTIVE_FAILURES not in str(error):
            raise
        stopped = str(error)
    if role == "worker":
        print(_worker_summary(tuner))
        return 0
    used = tuner.budget_used()
    print(f"Trials used {used['cpu_seconds'] / 60:.1f} CPU minutes, "
          f"{used['wall_seconds'] / 60:.1f} wall minutes"
          + (" (summed over the workers that share this workdir)." if role == "chief" else "."))
    summary = report.write_report(tuner, workdir, stopped_reason=stopped)
    print(report.format_summary(summary, report.trial_rows(tuner)))
    print(f"Wrote {os.path.join(workdir, 'trials.csv')}, trials.png"
          + (", best_genotype.json" if summary["best"] else "")
          + (", trial_errors.txt" if summary["failed"] else "") + ".")
    if summary["failed"]:
        print(f"warning: {summary['failed']} trial(s) FAILED; see "
              f"{os.path.join(workdir, 'trial_errors.txt')}.", file=sys.stderr)
    return 0 if summary["completed"] else 1


@cli_errors.command
def main(argv):
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required (or set it in the flagfile).")
    return run_tuning(FLAGS.workdir)


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()

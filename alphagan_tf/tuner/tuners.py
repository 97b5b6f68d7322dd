"""How the space is searched: KerasTuner oracles whose trials retrain a genotype.

`make_tuner("random" | "bayesian" | "hyperband", hypermodel, ...)` returns a
KerasTuner tuner (RandomSearch, BayesianOptimization or Hyperband) whose
`run_trial` builds the sampled generator (`GeneratorHyperModel.build`) and
retrains it (`GeneratorHyperModel.fit` -> `objective.RetrainObjective`) in the
trial's own directory, <directory>/<project_name>/trial_<id>/retrain. The
objective is "fid", minimised.

Hyperband's budget: one KerasTuner "epoch" is `steps_per_epoch` generator
iterations, and a promoted trial continues the retrain of the trial it comes
from (its checkpoints are copied, and run_training resumes them).

Failures: KerasTuner catches a trial's exception, marks the trial FAILED (after
`max_retries_per_trial` retries) and carries on, and stops the search with a
RuntimeError after `max_consecutive_failed_trials` failures in a row.
`report.py` reads every trial back, failed ones with their error, so that they
are reported instead of counted as done.
"""

from __future__ import annotations

import gc
import glob
import os
import shutil
import time

import keras
import keras_tuner

from alphagan_tf.tuner import cluster
from alphagan_tf.tuner.objective import OBJECTIVE_NAME
from alphagan_tf.tuner.space import GeneratorHyperModel
from alphagan_tf.utils import files

TUNERS = ("random", "bayesian", "hyperband")


def objective() -> keras_tuner.Objective:
    return keras_tuner.Objective(OBJECTIVE_NAME, direction="min")


class _RetrainTrials:
    """Mixin: a trial = build the sampled generator, retrain it, return its metrics."""

    steps_per_epoch: int | None = None  # Hyperband only
    max_cpu_seconds: float | None = None  # no new trial once the run used this much CPU
    max_seconds: float | None = None  # ... or this much wall-clock time
    _mark: tuple[float, float] = (0.0, 0.0)
    trials_run: list[tuple[str, str]] = []  # (trial id, status) of the trials this process ran

    # The budget spent is kept in <project>/budget.json, so it spans resumed invocations
    # (budget_<tuner id>.json for each worker of a distributed run: they may share the folder).
    def _budget_path(self) -> str:
        name = "budget.json" if cluster.tuning_role() == "single" else f"budget_{self.tuner_id}.json"
        return os.path.join(self.project_dir, name)

    def _budget_of(self, path: str) -> dict:
        return files.read_json(path, {"cpu_seconds": 0.0, "wall_seconds": 0.0})

    def budget_used(self) -> dict:
        """{"cpu_seconds", "wall_seconds"} spent by trials of this run so far.

        The chief of a distributed run (which runs no trial) sums the workers' files
        found in its project folder (all of them when the workers share it).
        """
        if cluster.tuning_role() != "chief":
            return self._budget_of(self._budget_path())
        used = [self._budget_of(path) for path in
                sorted(glob.glob(os.path.join(self.project_dir, "budget_*.json")))]
        return {key: sum(u[key] for u in used) for key in ("cpu_seconds", "wall_seconds")}

    def _over_budget(self, used: dict) -> list[str]:
        return [f"{what} {used[key]:.0f} s >= {limit:.0f} s" for what, key, limit in (
            ("CPU", "cpu_seconds", self.max_cpu_seconds), ("wall", "wall_seconds", self.max_seconds))
            if limit is not None and used[key] >= limit]

    def _stop_if_over_budget(self, used: dict) -> None:
        over = self._over_budget(used)
        if over:
            # create_trial hands out an interrupted (ongoing) trial first, then answers
            # STOPPED once max_trials trials exist.
            self.oracle.max_trials = len(self.oracle.trials)
            print(f"Budget used ({', '.join(over)}): no new trial.")

    def on_search_begin(self):
        super().on_search_begin()
        self._mark = (time.process_time(), time.monotonic())
        self._stop_if_over_budget(self.budget_used())

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.trials_run = [*self.trials_run, (trial.trial_id, str(trial.status))]
        now = (time.process_time(), time.monotonic())
        used = self.budget_used()
        used["cpu_seconds"] += now[0] - self._mark[0]
        used["wall_seconds"] += now[1] - self._mark[1]
        self._mark = now
        files.write_json_atomic(self._budget_path(), used)
        self._stop_if_over_budget(used)

    def run_trial(self, trial, *args, **kwargs) -> dict:
        keras.backend.clear_session()
        gc.collect()
        hp = trial.hyperparameters
        model = self.hypermodel.build(hp)
        workdir = os.path.join(self.get_trial_dir(trial.trial_id), "retrain")
        g_iterations = None
        if "tuner/epochs" in hp.values:
            g_iterations = int(hp.values["tuner/epochs"]) * self.steps_per_epoch
            parent = hp.values.get("tuner/trial_id")
            parent_dir = os.path.join(self.get_trial_dir(parent), "retrain") if parent else None
            if parent_dir and os.path.isdir(parent_dir) and not os.path.exists(workdir):
                shutil.copytree(parent_dir, workdir)
        return self.hypermodel.fit(hp, model, workdir=workdir, g_iterations=g_iterations)


class RetrainRandomSearch(_RetrainTrials, keras_tuner.RandomSearch):
    """Random search; every trial retrains its genotype."""


class RetrainBayesianOptimization(_RetrainTrials, keras_tuner.BayesianOptimization):
    """Gaussian-process Bayesian optimisation; every trial retrains its genotype."""


class RetrainHyperband(_RetrainTrials, keras_tuner.Hyperband):
    """Hyperband over retraining budgets; promoted trials continue their parent's retrain."""


def make_tuner(
    kind: str,
    hypermodel: GeneratorHyperModel,
    *,
    max_trials: int,
    directory: str,
    project_name: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    max_consecutive_failed_trials: int = 3,
    bayesian_initial_points: int | None = None,
    hyperband_max_epochs: int = 9,
    hyperband_factor: int = 3,
    steps_per_epoch: int | None = None,
    max_cpu_seconds: float | None = None,
    max_seconds: float | None = None,
):
    """A KerasTuner tuner over `hypermodel` (see the module docstring).

    Args:
        kind: "random", "bayesian" or "hyperband".
        hypermodel: the space (with its objective for `fit`).
        max_trials: trials to run in total (resuming counts the ones already run;
            Hyperband stops after this many too).
        directory: KerasTuner's directory; the project is <directory>/<project_name>.
        project_name: default: `kind`.
        seed: seed of the oracle.
        overwrite: False resumes an existing project (KerasTuner's reload), True
            deletes it first.
        max_consecutive_failed_trials: KerasTuner stops after this many failures in a row.
        bayesian_initial_points: random trials before the Gaussian process is used
            (default: max(2, max_trials // 4)).
        hyperband_max_epochs: Hyperband's largest budget, in epochs.
        hyperband_factor: Hyperband's reduction factor.
        steps_per_epoch: generator iterations per Hyperband epoch (required for it).
        max_cpu_seconds: start no new trial once the run's trials have used this much
            CPU time (all threads of this process, summed over resumed invocations and
            kept in <project>/budget.json; None: no limit). An interrupted trial is
            still finished when resumed.
        max_seconds: the same in wall-clock seconds.

    Returns:
        The tuner; `tuner.search()` runs it.
    """
    if kind not in TUNERS:
        raise ValueError(f"tuner must be one of {TUNERS}. Received: tuner={kind!r}")
    if max_trials < 1:
        raise ValueError(f"max_trials must be >= 1. Received: max_trials={max_trials}")
    common = dict(
        hypermodel=hypermodel, objective=objective(), seed=seed, directory=directory,
        project_name=project_name or kind, overwrite=overwrite,
        max_consecutive_failed_trials=max_consecutive_failed_trials,
    )
    if kind == "random":
        tuner = RetrainRandomSearch(max_trials=max_trials, **common)
    elif kind == "bayesian":
        initial = bayesian_initial_points or max(2, max_trials // 4)
        tuner = RetrainBayesianOptimization(
            max_trials=max_trials, num_initial_points=initial, **common
        )
    else:
        tuner = _make_hyperband(common, max_trials, hyperband_max_epochs, hyperband_factor,
                                steps_per_epoch)
    tuner.max_cpu_seconds = max_cpu_seconds
    tuner.max_seconds = max_seconds
    return tuner


def _make_hyperband(common, max_trials, max_epochs, factor, steps_per_epoch):
    if not steps_per_epoch or steps_per_epoch < 1:
        raise ValueError(
            "Hyperband needs steps_per_epoch >= 1 (generator iterations per epoch). "
            f"Received: steps_per_epoch={steps_per_epoch}"
        )
    tuner = RetrainHyperband(max_epochs=max_epochs, factor=factor, **common)
    tuner.steps_per_epoch = steps_per_epoch
    tuner.oracle.max_trials = max_trials  # create_trial stops once this many exist
    return tuner

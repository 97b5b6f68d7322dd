"""The tuning objective: a short retrain of a genotype, scored by FID (lower is better).

`RetrainObjective(config, feature_fn, real_stats)(genotype, workdir)` retrains the
genotype with the project's loop (`gan/train/loop.run_training`: hinge loss,
n_critic, EMA generator, checkpoints) for the configured budget, then evaluates
the final EMA generator once (`metrics/generator_eval.make_evaluate_fn`, the same
fixed latents for every trial) and returns

    {"fid": ..., "inception_score": ..., "inception_score_std": ..., ["kid": ...,]
     "train_seconds": ..., "eval_seconds": ...}

The workdir is an ordinary training workdir (train_config.json, genotype.json,
checkpoints/, samples.png, objective.json), so an interrupted trial resumes from
its last checkpoint and `load_trained_generator(workdir)` works on it.

FID needs features: `objective_from_spec` accepts the feature extractors
"inception" and "classifier:/path/to/SavedModel"; "none" is an error.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Callable

from alphagan_tf.gan.space.genotypes import Genotype
from alphagan_tf.gan.train import loop as train_loop
from alphagan_tf.gan.train.config import TrainRunConfig
from alphagan_tf.metrics import generator_eval
from alphagan_tf.utils import files
from alphagan_tf.utils.typed_config import require, require_positive

OBJECTIVE_NAME = "fid"


class ObjectiveConfigError(ValueError):
    """A tuning objective that cannot be computed as configured (e.g. FID without features)."""


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """How every trial is retrained and evaluated.

    Attributes:
        run: the retraining configuration (data, widths, batch sizes, optimizer,
            seed); `run.train.g_iterations` is a trial's budget and `run.genotype`
            is replaced by the trial's genotype.
        eval_samples: generated images per evaluation.
        eval_batch_size: batch size of sampling and feature extraction.
        eval_seed: seed of the evaluation latents (the same for every trial).
    """

    run: TrainRunConfig = TrainRunConfig()
    eval_samples: int = 1000
    eval_batch_size: int = 100
    eval_seed: int = 0

    def __post_init__(self):
        require(isinstance(self.eval_samples, int) and self.eval_samples >= 2, "eval_samples",
                self.eval_samples, "must be an integer >= 2")
        require_positive(self, "eval_batch_size")


class RetrainObjective:
    """genotype, workdir -> metrics of the retrained genotype (see the module docstring).

    Args:
        config: the `ObjectiveConfig`.
        feature_fn: the feature extractor (`metrics.features`), images -> {"pool", "logits"}.
        real_stats: real-data `FeatureStatistics` of the same extractor.
        verbose: 1 for progress bars of retraining and evaluation.
    """

    def __init__(self, config: ObjectiveConfig, feature_fn, real_stats, verbose: int = 1):
        self.config = config
        self.evaluate_fn = generator_eval.make_evaluate_fn(
            feature_fn, real_stats, num_samples=config.eval_samples,
            batch_size=config.eval_batch_size, latent_dim=config.run.model.latent_dim,
            seed=config.eval_seed, verbose=verbose,
        )
        self.verbose = verbose

    def run_config(self, genotype_path: str, g_iterations: int | None = None) -> TrainRunConfig:
        """The retraining configuration of one trial."""
        run = self.config.run
        steps = run.train.g_iterations if g_iterations is None else int(g_iterations)
        return dataclasses.replace(
            run,
            genotype=genotype_path,
            train=dataclasses.replace(run.train, g_iterations=steps),
            checkpoint_every=min(run.checkpoint_every, steps),
            sample_every=min(run.sample_every, steps),
            eval_every=steps,
        )

    def __call__(self, genotype: Genotype, workdir: str, g_iterations: int | None = None) -> dict:
        """Retrains `genotype` in `workdir` (resuming) and evaluates its EMA generator.

        Args:
            genotype: the trial's genotype.
            workdir: its training workdir.
            g_iterations: budget in generator iterations (None: `config.run`'s).

        Returns:
            {"fid", "inception_score", "inception_score_std", "kid" (if computed),
             "train_seconds", "eval_seconds"}: Python floats.
        """
        os.makedirs(workdir, exist_ok=True)
        genotype_path = os.path.join(workdir, "genotype.json")
        files.write_text_atomic(genotype_path, genotype.to_json())
        config = self.run_config(genotype_path, g_iterations)
        started = time.time()
        train_loop.run_training(config, workdir, evaluate_fn=None, verbose=self.verbose)
        trained = time.time()
        result = self.evaluate_fn(train_loop.load_trained_generator(workdir, "latest"))
        metrics = {
            "fid": float(result["fid"]),
            "inception_score": float(result.get("inception_score_mean", float("nan"))),
            "inception_score_std": float(result.get("inception_score_std", float("nan"))),
        }
        if "kid_mean" in result:
            metrics["kid"] = float(result["kid_mean"])
        metrics["train_seconds"] = trained - started
        metrics["eval_seconds"] = time.time() - trained
        files.write_json_atomic(
            os.path.join(workdir, "objective.json"),
            {"g_iterations": config.train.g_iterations, **metrics},
        )
        return metrics


def check_feature_extractor(feature_extractor: str) -> None:
    """Raises ObjectiveConfigError for none (FID needs features), ConfigError for an unknown one."""
    if not feature_extractor or feature_extractor == "none":
        raise ObjectiveConfigError(
            "The tuning objective is FID, which needs a feature extractor: "
            "--feature_extractor=inception or --feature_extractor=classifier:/path/to/SavedModel "
            "(`alphagan classifier` trains one offline). "
            f"Received: feature_extractor={feature_extractor!r}"
        )
    generator_eval.check_feature_extractor_spec(feature_extractor)


def objective_from_spec(
    config: ObjectiveConfig,
    feature_extractor: str,
    *,
    inception_path: str | None = None,
    real_stats_path: str | None = None,
    cache_dir: str | None = None,
    verbose: int = 1,
) -> RetrainObjective:
    """The objective with the feature extractor a CLI names.

    Args:
        config: how trials are retrained and evaluated.
        feature_extractor: "inception" or "classifier:/path/to/SavedModel".
        inception_path: TF-Hub handle or local SavedModel of the TF-GAN Inception.
        real_stats_path: precomputed real statistics (.npz) of that extractor, or None
            to compute them from `config.run.data` (cached in `cache_dir`).
        cache_dir: where computed real statistics are cached.
        verbose: progress bars.

    Raises:
        ObjectiveConfigError: `feature_extractor` is "none" (FID needs features).
        ValueError: an unknown `feature_extractor`, or real statistics of another extractor.
        WeightsNotFoundError: the extractor's weights are missing.
    """
    check_feature_extractor(feature_extractor)
    feature_fn = generator_eval.feature_extractor_from_spec(feature_extractor, inception_path)
    cache_path = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", feature_fn.name)
        cache_path = os.path.join(cache_dir, f"real_stats_{safe}.npz")
    run = config.run
    real_stats = generator_eval.real_statistics(
        feature_fn, dataset=run.data.dataset, image_size=run.image_size,
        stats_path=real_stats_path, cache_path=cache_path, batch_size=config.eval_batch_size,
        verbose=verbose, **run.data.loader_kwargs(),
    )
    return RetrainObjective(config, feature_fn, real_stats, verbose=verbose)


ObjectiveFn = Callable[..., dict]

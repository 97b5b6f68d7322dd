"""Retrain a derived generator (fixed architecture) and evaluate it periodically.

    python -m alphagan_tf.train --genotype=alphaGAN_l --flagfile=configs/train_cifar10.cfg --workdir=DIR
    python -m alphagan_tf.train --genotype=runs/demo_search/genotype.json --flagfile=configs/demo_train.cfg
    python -m alphagan_tf.train ... --strategy=mirrored                 # every GPU of this host
    python -m alphagan_tf.train ... --strategy=mirrored --cpu_devices=2 --devices=/cpu:0,/cpu:1
    TF_CONFIG='{"cluster": ...}' python -m alphagan_tf.train ... --strategy=multi_worker   # every host

Writes checkpoints (exact resume), the best checkpoint by FID, TensorBoard logs,
eval_history.json and samples.png into --workdir; re-running resumes.
"""

from __future__ import annotations

import os

from absl import app, flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.cli import flags as alphagan_flags

alphagan_flags.define_train_flags()
FLAGS = flags.FLAGS
flags.adopt_module_key_flags(alphagan_flags)  # --help lists them


def config_from_flags():
    """Flags -> a typed TrainRunConfig (the only place train flags are read)."""
    return alphagan_flags.retrain_run_config_from_flags(
        FLAGS.genotype, init_from=FLAGS.init_from, eval_every=FLAGS.eval_every,
        **alphagan_flags.strategy_fields_from_flags(),
    )


def evaluate_fn_from_flags(config, workdir: str):
    """The periodic evaluation the flags ask for, or None (--feature_extractor=none)."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.metrics import generator_eval

    feature_fn = generator_eval.feature_extractor_from_spec(
        FLAGS.feature_extractor, FLAGS.inception_path
    )
    if feature_fn is None:
        return None
    real_stats = generator_eval.real_statistics(
        feature_fn, dataset=config.data.dataset, image_size=config.image_size,
        stats_path=FLAGS.real_stats,
        cache_path=generator_eval.real_stats_cache_path(workdir, feature_fn),
        batch_size=FLAGS.eval_batch_size, **config.data.loader_kwargs(),
    )
    return generator_eval.make_evaluate_fn(
        feature_fn, real_stats, num_samples=FLAGS.eval_samples,
        batch_size=FLAGS.eval_batch_size, latent_dim=config.model.latent_dim, seed=FLAGS.seed,
    )


@cli_errors.command
def main(argv):
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required (or set it in the flagfile).")
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.gan.train.loop import open_workdir, run_training
    from alphagan_tf.utils import distribution

    distribution.quiet_all_reduce_logs(FLAGS.strategy)

    config = config_from_flags()
    distribution.prepare_cpu(config.cpu_devices)  # before the evaluation's first TF op
    if config.strategy == distribution.MULTI_WORKER:  # before the first TF op too
        distribution.multi_worker_strategy(FLAGS.worker_timeout)
    open_workdir(config, FLAGS.workdir)  # bad genotype or workdir: before evaluation setup
    # Only the chief of a multi-worker run evaluates (and caches the real statistics).
    evaluate_fn = evaluate_fn_from_flags(config, FLAGS.workdir) if distribution.is_chief(config) else None
    with distribution.report_lost_workers(os.path.join(FLAGS.workdir, "checkpoints")):
        run_training(config, FLAGS.workdir, evaluate_fn=evaluate_fn)


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()

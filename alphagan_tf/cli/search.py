"""AlphaGAN architecture search.

    python -m alphagan_tf.search --flagfile=configs/demo.cfg
    python -m alphagan_tf.search --flagfile=configs/cifar10.cfg --workdir=runs/cifar10_search
    python -m alphagan_tf.search --algorithm=random_ws --flagfile=configs/demo.cfg --workdir=DIR
    TF_CONFIG='{"cluster": ...}' python -m alphagan_tf.search ... --strategy=multi_worker  # every host

Writes genotype.json, alpha_history.png, samples.png, TensorBoard logs and
checkpoints into --workdir; re-running the same command resumes.
"""

from __future__ import annotations

import os

from absl import app, flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.cli import flags as alphagan_flags

alphagan_flags.define_search_flags()
FLAGS = flags.FLAGS
flags.adopt_module_key_flags(alphagan_flags)  # --help lists them


def config_from_flags():
    """Flags -> a typed SearchRunConfig (the only place search flags are read)."""
    # Here, not at the top: the command's --help and import stay without TensorFlow.
    from alphagan_tf.gan.search.config import RandomWSConfig, SearchConfig, SearchRunConfig
    from alphagan_tf.nas.arch_optimizer import ArchOptimizerConfig

    search = SearchConfig(
        inner_steps=FLAGS.inner_steps,
        worst_steps=FLAGS.worst_steps,
        outer_steps=FLAGS.outer_steps,
        n_critic=FLAGS.n_critic,
        batch_size=FLAGS.batch_size,
        g_lr=FLAGS.g_lr,
        d_lr=FLAGS.d_lr,
        beta_1=FLAGS.beta_1,
        beta_2=FLAGS.beta_2,
        worst_lr_halving_epoch=FLAGS.worst_lr_halving_epoch,
        r1_gamma=FLAGS.r1_gamma,
        arch=ArchOptimizerConfig(
            learning_rate=FLAGS.arch_learning_rate,
            beta_1=FLAGS.arch_beta_1,
            beta_2=FLAGS.arch_beta_2,
            weight_decay=FLAGS.arch_weight_decay,
        ),
        jit_compile=FLAGS.jit_compile,
        steps_per_call=FLAGS.steps_per_call,
    )
    return SearchRunConfig(
        search=search,
        model=alphagan_flags.generator_config_from_flags(),
        data=alphagan_flags.data_config_from_flags(),
        epochs=FLAGS.epochs,
        seed=FLAGS.seed,
        sample_every=FLAGS.sample_every or 5,
        keep_checkpoints=FLAGS.keep_checkpoints,
        deterministic=FLAGS.deterministic,
        depthwise_gradient=FLAGS.depthwise_gradient,
        fuse_convs=FLAGS.fuse_convs,
        precision=alphagan_flags.precision_from_flags(),
        **alphagan_flags.strategy_fields_from_flags(),
        algorithm=FLAGS.algorithm or "alphagan",
        random_ws=RandomWSConfig(
            candidates=FLAGS.random_ws_candidates,
            eval_samples=FLAGS.random_ws_eval_samples,
            eval_batch_size=FLAGS.eval_batch_size,
            feature_extractor=FLAGS.feature_extractor,
            inception_path=FLAGS.inception_path,
        ),
    )


@cli_errors.command
def main(argv):
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required (or set it in the flagfile).")
    if FLAGS.algorithm == "random_ws" and FLAGS.feature_extractor == "none":
        raise app.UsageError("--algorithm=random_ws scores candidates by FID: give a "
                             "--feature_extractor (inception or classifier:DIR), not 'none'.")
    # Here, not at the top: the command's --help and import stay without TensorFlow.
    from alphagan_tf.gan.search import alphagan, random_ws
    from alphagan_tf.utils import distribution

    distribution.quiet_all_reduce_logs(FLAGS.strategy)
    config = config_from_flags()
    # The one place the algorithm is chosen.
    run_search = {"alphagan": alphagan.run_search,
                  "random_ws": random_ws.run_random_ws_search}[config.algorithm]
    if config.strategy == distribution.MULTI_WORKER:  # before the first TF op
        distribution.prepare_cpu(config.cpu_devices)
        distribution.multi_worker_strategy(FLAGS.worker_timeout)
    with distribution.report_lost_workers(os.path.join(FLAGS.workdir, "checkpoints")):
        run_search(config, FLAGS.workdir)


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()

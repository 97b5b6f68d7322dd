"""Retrain a TextNAS architecture on SST from scratch.

    python -m alphagan_tf.textnas.train --flagfile=configs/train_sst2.cfg \
        --architecture=DIR/architecture.json|textnas_paper|random:<seed> --workdir=TRAIN_DIR

On several devices (the batch split over the replicas, the same result as one device):

    python -m alphagan_tf.textnas.train ... --strategy=mirrored                # every GPU
    python -m alphagan_tf.textnas.train ... --strategy=mirrored --cpu_devices=2 --devices=/cpu:0,/cpu:1

Trains on all train phrases, keeps the best dev-sentence epoch, evaluates the
test sentences once at the end and writes TRAIN_DIR/results.json. With
--export_dir it also exports the best model as a raw-string SavedModel.
"""

from absl import app, flags

from alphagan_tf.cli import cli_errors, textnas_flags

FLAGS = flags.FLAGS
textnas_flags.define_train_flags()


@cli_errors.command
def main(argv):
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required.")
    if not FLAGS.architecture:
        raise app.UsageError(
            "--architecture is required: a JSON path, textnas_paper or random:<seed>[:<layers>]."
        )
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.textnas.train.classification import set_threads
    from alphagan_tf.utils import distribution

    set_threads(FLAGS.num_threads)
    config = textnas_flags.train_config_from_flags()
    distribution.quiet_all_reduce_logs(config.strategy)
    distribution.prepare_cpu(config.cpu_devices)  # before the first TensorFlow op
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.textnas.space.architecture import load_architecture
    from alphagan_tf.textnas.train.loop import run_training

    try:
        architecture = load_architecture(FLAGS.architecture)
    except ValueError as e:
        raise app.UsageError(f"--architecture: {e}") from None
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.textnas.train.export import check_export_dir, export_classifier, load_trained

    if FLAGS.export_dir:
        check_export_dir(FLAGS.export_dir)  # before training, not after it
    results = run_training(config, architecture, FLAGS.workdir,
                           architecture_source=FLAGS.architecture)
    if results is not None and FLAGS.export_dir:

        model, vocab, max_length = load_trained(FLAGS.workdir)
        export_classifier(model, vocab, max_length, FLAGS.export_dir)
        print(f"exported {FLAGS.export_dir}")


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()

"""Retrain a TextNAS architecture on SST from scratch.

    python -m alphagan_tf.textnas.train --flagfile=configs/sst2.cfg \
        --architecture=DIR/architecture.json|textnas_paper|random:<seed> --workdir=TRAIN_DIR

Trains on all train phrases, keeps the best dev-sentence epoch, evaluates the
test sentences once at the end and writes TRAIN_DIR/results.json. With
--export_dir it also exports the best model as a raw-string SavedModel.
"""

from absl import app, flags

from alphagan_tf.textnas import flags as textnas_flags

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required.")
    if not FLAGS.architecture:
        raise app.UsageError(
            "--architecture is required: a JSON path, textnas_paper or random:<seed>[:<layers>]."
        )
    from alphagan_tf.textnas.training import set_threads

    set_threads(FLAGS.num_threads)
    from alphagan_tf.textnas.architecture import load_architecture
    from alphagan_tf.textnas.trainer import run_training

    try:
        architecture = load_architecture(FLAGS.architecture)
    except ValueError as e:
        raise app.UsageError(f"--architecture: {e}") from None
    from alphagan_tf.cli_errors import report_errors

    def train():
        results = run_training(textnas_flags.train_config_from_flags(), architecture,
                               FLAGS.workdir, architecture_source=FLAGS.architecture)
        if results is not None and FLAGS.export_dir:
            from alphagan_tf.textnas.exporter import export_classifier, load_trained

            model, vocab, max_length = load_trained(FLAGS.workdir)
            export_classifier(model, vocab, max_length, FLAGS.export_dir)
            print(f"exported {FLAGS.export_dir}")

    return report_errors(train)


def run():
    app.run(main)


if __name__ == "__main__":
    run()

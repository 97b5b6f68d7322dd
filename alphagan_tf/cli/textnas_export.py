"""Export a retrained TextNAS classifier as a SavedModel taking raw strings.

    python -m alphagan_tf.textnas.export --train_dir=TRAIN_DIR --export_dir=EXPORT_DIR

Signature serving_default: sentences tf.string [batch] -> probabilities
float32 [batch, classes]; loadable by tf.saved_model.load and by the TF1
session loader (tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)).
"""

from absl import app, flags

from alphagan_tf.cli import cli_errors, textnas_flags

FLAGS = flags.FLAGS
textnas_flags.define_export_flags()


@cli_errors.command
def main(argv):
    if not FLAGS.train_dir or not FLAGS.export_dir:
        raise app.UsageError("--train_dir and --export_dir are required.")
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.textnas.train.export import check_export_dir, export_classifier, load_trained

    check_export_dir(FLAGS.export_dir)
    model, vocab, max_length = load_trained(FLAGS.train_dir)
    export_classifier(model, vocab, max_length, FLAGS.export_dir)
    print(f"exported {FLAGS.export_dir}")


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()

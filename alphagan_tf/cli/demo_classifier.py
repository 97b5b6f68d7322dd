"""`alphagan demo-classifier`: the demo digits' feature classifier (alphagan_tf/tuner/demo_classifier.py).

    python -m alphagan_tf.cli.demo_classifier --out=runs/demo_classifier
"""

from __future__ import annotations

from absl import flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.tuner.demo_classifier import train_demo_classifier


def define_flags() -> None:
    flags.DEFINE_string("out", "runs/demo_classifier", "SavedModel directory to write.")
    flags.DEFINE_integer("epochs", 20, "Training epochs.")
    flags.DEFINE_integer("image_size", 16, "Image size (the demo configs use 16).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")


@cli_errors.command
def main(argv) -> int:
    f = flags.FLAGS
    report = train_demo_classifier(f.out, image_size=f.image_size, epochs=f.epochs,
                                   overwrite=f.overwrite)  # an existing --out: one error line
    print(f"classifier: {report.out_dir}  test accuracy {report.test_accuracy:.4f} "
          f"on {report.num_test} digits")
    return 0


def run() -> None:
    define_flags()
    cli_errors.run(main)


if __name__ == "__main__":
    run()

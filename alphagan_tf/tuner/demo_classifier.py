"""A digits classifier for the demo dataset's feature-FID (the tuning objective needs features).

    python -m alphagan_tf.tuner.demo_classifier --out=runs/demo_classifier

Trains `metrics.classifier.build_feature_classifier` on scikit-learn's handwritten
digits as the demo source serves them (`data.sources.load_demo`, grey -> RGB,
16x16), 1500 train / 297 test, in well under a minute on a CPU, and exports the
SavedModel `ClassifierFeatures` reads (--feature_extractor=classifier:runs/demo_classifier
in configs/tune_demo.cfg). Its FIDs compare demo generators with each other only.
"""

from __future__ import annotations

import numpy as np
from absl import flags

from alphagan_tf import cli_errors

NUM_TRAIN = 1500


def demo_digits(image_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The demo images (uint8 [1797, S, S, 3]) and their digit labels (int [1797])."""
    from sklearn.datasets import load_digits

    from alphagan_tf.data.sources import load_demo

    return load_demo(image_size), load_digits().target.astype(np.int64)


def train_demo_classifier(out_dir: str, *, image_size: int = 16, epochs: int = 20,
                          overwrite: bool = False, verbose: int = 2):
    """Trains and exports the digits classifier; returns the `ClassifierReport`."""
    from alphagan_tf.metrics.classifier import train_feature_classifier

    images, labels = demo_digits(image_size)
    return train_feature_classifier(
        images[:NUM_TRAIN], labels[:NUM_TRAIN], images[NUM_TRAIN:], labels[NUM_TRAIN:],
        out_dir, epochs, batch_size=32, learning_rate=3e-3, widths=(16, 32), feature_dim=64,
        augment=False,
        overwrite=overwrite, verbose=verbose,
    )


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

"""`alphagan classifier`: train a feature classifier for offline FID/IS (any image .npz).

    python -m alphagan_tf.cli.classifier --npz=DATA.npz --out=DIR

The network and its export: alphagan_tf/metrics/classifier.py.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from absl import app, flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.metrics.classifier import train_feature_classifier, write_classifier_metadata
from alphagan_tf.metrics.features import ClassifierFeatures
from alphagan_tf.metrics.fid import frechet_distance_from_activations


def define_flags() -> None:
    flags.DEFINE_string("npz", None, "An .npz with x_train, y_train, x_test, y_test (uint8 images).")
    flags.DEFINE_string("out", None, "SavedModel directory to write.")
    flags.DEFINE_integer("epochs", 20, "Training epochs.")
    flags.DEFINE_integer("batch_size", 64, "Batch size.")
    flags.DEFINE_float("learning_rate", 1e-3, "Initial Adam learning rate (cosine decay).")
    flags.DEFINE_integer("feature_dim", 128, "Size of the feature layer.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")
    flags.mark_flags_as_required(["npz", "out"])


@cli_errors.command
def main(argv: Sequence[str]) -> None:
    """Trains, exports, then prints the test accuracy and a sanity FID train vs test."""
    f = flags.FLAGS
    with np.load(f.npz) as data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if missing:
            raise app.UsageError(f"--npz lacks {sorted(missing)}. Received arrays: {sorted(data.files)}")
        x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    report = train_feature_classifier(
        x_train, y_train, x_test, y_test, f.out, f.epochs,
        batch_size=f.batch_size, learning_rate=f.learning_rate, feature_dim=f.feature_dim,
        seed=f.seed, overwrite=f.overwrite, verbose=2,
    )  # fmt: skip
    features = ClassifierFeatures(report.out_dir)

    def pool(images):
        return np.concatenate([features(images[i : i + 256])["pool"] for i in range(0, len(images), 256)])

    train_pool, test_pool = pool(x_train), pool(x_test)
    noise = np.random.default_rng(f.seed).integers(0, 256, size=x_test.shape, dtype=np.uint8)
    fid_test = frechet_distance_from_activations(train_pool, test_pool)
    fid_noise = frechet_distance_from_activations(train_pool, pool(noise))
    write_classifier_metadata(
        report.out_dir,
        sanity_fid_train_vs_test=fid_test,
        sanity_fid_train_vs_uniform_noise=fid_noise,
    )
    print(f"classifier: {report.out_dir}")
    print(f"test accuracy: {report.test_accuracy:.4f} on {report.num_test} images "
          f"(train accuracy {report.train_accuracy:.4f} on {report.num_train})")
    print(f"classifier FID, train ({len(x_train)}) vs test ({len(x_test)}): {fid_test:.3f}")
    print(f"classifier FID, train vs {len(noise)} uniform-noise images: {fid_noise:.3f}")


def run() -> None:
    define_flags()
    cli_errors.run(main)


if __name__ == "__main__":
    run()

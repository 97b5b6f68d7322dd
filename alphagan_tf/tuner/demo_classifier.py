"""A digits classifier for the demo dataset's feature-FID (the tuning objective needs features).

    python -m alphagan_tf.cli.demo_classifier --out=runs/demo_classifier

Trains `metrics.classifier.build_feature_classifier` on scikit-learn's handwritten
digits as the demo source serves them (`data.sources.load_demo`, grey -> RGB,
16x16), 1500 train / 297 test, in well under a minute on a CPU, and exports the
SavedModel `ClassifierFeatures` reads (--feature_extractor=classifier:runs/demo_classifier
in configs/tune_demo.cfg). Its FIDs compare demo generators with each other only.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from alphagan_tf.data.sources import load_demo
from alphagan_tf.metrics.classifier import train_feature_classifier

NUM_TRAIN = 1500


def demo_digits(image_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The demo images (uint8 [1797, S, S, 3]) and their digit labels (int [1797])."""
    return load_demo(image_size), load_digits().target.astype(np.int64)


def train_demo_classifier(out_dir: str, *, image_size: int = 16, epochs: int = 20,
                          overwrite: bool = False, verbose: int = 2):
    """Trains and exports the digits classifier; returns the `ClassifierReport`."""
    images, labels = demo_digits(image_size)
    return train_feature_classifier(
        images[:NUM_TRAIN], labels[:NUM_TRAIN], images[NUM_TRAIN:], labels[NUM_TRAIN:],
        out_dir, epochs, batch_size=32, learning_rate=3e-3, widths=(16, 32), feature_dim=64,
        augment=False,
        overwrite=overwrite, verbose=verbose,
    )

"""A small CNN classifier, exported as a SavedModel, for offline feature-FID.

The standard Inception needs a download; this classifier is trained in a few
CPU minutes on the data at hand (e.g. ../shared/data/cifar10_sample.npz) and
gives the whole IS / FID / KID chain without network access:

    python -m alphagan_tf.cli.classifier \
        --npz=../shared/data/cifar10_sample.npz --out=/path/to/classifier

then `ClassifierFeatures("/path/to/classifier")` (alphagan_tf.metrics.features).
Numbers measured with it are "classifier FID", comparable only with each other
(same classifier, same sample sizes), never with published Inception FIDs.

Exported SavedModel: signature "serving_default" (and endpoint "serve") taking
`images` float32 [B, H, W, 3] in [-1, 1] and returning
    "features": [B, feature_dim] penultimate ReLU features,
    "logits":   [B, num_classes].
Beside it, `alphagan_classifier.json` records the training set-up and the test
accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Sequence

import numpy as np


METADATA_FILE = "alphagan_classifier.json"


@dataclasses.dataclass
class ClassifierReport:
    """What `train_feature_classifier` did.

    Attributes:
        out_dir: the SavedModel directory.
        test_accuracy: top-1 accuracy on (x_test, y_test), in [0, 1].
        train_accuracy: top-1 accuracy on (x_train, y_train) without augmentation.
        num_train, num_test: examples used.
        epochs: training epochs.
        image_shape: (H, W, 3) the model takes.
        num_classes, feature_dim: output sizes.
    """

    out_dir: str
    test_accuracy: float
    train_accuracy: float
    num_train: int
    num_test: int
    epochs: int
    image_shape: tuple[int, int, int]
    num_classes: int
    feature_dim: int


def build_feature_classifier(
    image_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    widths: Sequence[int] = (32, 64, 128),
    feature_dim: int = 128,
):
    """The CNN: per width [conv3x3, BN, ReLU, max-pool 2], global average pool,
    dense(feature_dim) + ReLU ("features"), dense(num_classes) ("logits").

    Args:
        image_shape: (H, W, 3) of the float32 input images in [-1, 1].
        num_classes: number of classes.
        widths: channels of the convolution stages.
        feature_dim: size of the feature layer.

    Returns:
        A keras.Model mapping images [B, H, W, 3] to
        {"features": [B, feature_dim], "logits": [B, num_classes]}.
    """
    # here: the metrics package imports without TensorFlow
    import keras

    images = keras.Input(tuple(image_shape), name="images")
    x = images
    for i, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    features = keras.layers.Dense(feature_dim, activation="relu", name="features")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(keras.layers.Dropout(0.3)(features))
    return keras.Model(images, {"features": features, "logits": logits}, name="feature_classifier")


def train_feature_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    out_dir: str | os.PathLike,
    epochs: int = 20,
    *,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    widths: Sequence[int] = (32, 64, 128),
    feature_dim: int = 128,
    augment: bool = True,
    seed: int = 0,
    overwrite: bool = False,
    verbose: int = 1,
) -> ClassifierReport:
    """Trains the CNN and exports it as a SavedModel with features and logits.

    Args:
        x_train: uint8 images [N, H, W, 3] in [0, 255].
        y_train: integer labels [N] in [0, num_classes).
        x_test: uint8 images [M, H, W, 3], for the reported accuracy only (no
            model selection on it).
        y_test: labels [M].
        out_dir: SavedModel directory to write (must not exist unless
            `overwrite`; written atomically).
        epochs: training epochs (Adam, cosine-decayed learning rate).
        batch_size: batch size.
        learning_rate: initial Adam learning rate.
        widths: channels of the convolution stages.
        feature_dim: size of the feature layer ("features" output).
        augment: random horizontal flips and translations (+-10%) in training.
        seed: seed of weights, shuffling and augmentation.
        overwrite: replace an existing `out_dir`.
        verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line/epoch).

    Returns:
        A `ClassifierReport` with the test accuracy.
    """
    # here: the metrics package imports without TensorFlow
    import keras

    out_dir = os.fspath(out_dir)
    x_train, y_train = _check_split(x_train, y_train, "train")
    x_test, y_test = _check_split(x_test, y_test, "test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"Train and test images must have the same shape. Received: {x_train.shape} and {x_test.shape}"
        )
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"out_dir exists; pass overwrite=True to replace it. Received: {out_dir}")
    num_classes = int(max(y_train.max(), y_test.max())) + 1

    keras.utils.set_random_seed(seed)
    model = build_feature_classifier(x_train.shape[1:], num_classes, widths, feature_dim)
    images = keras.Input(x_train.shape[1:], name="images")
    x = images
    if augment:
        x = keras.layers.RandomFlip("horizontal", seed=seed)(x)
        x = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed)(x)
    trainer = keras.Model(images, model(x)["logits"])
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    trainer.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    trainer.fit(
        _to_unit_range(x_train), y_train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose
    )
    train_accuracy = _accuracy(model, x_train, y_train, batch_size)
    test_accuracy = _accuracy(model, x_test, y_test, batch_size)

    report = ClassifierReport(
        out_dir=os.path.abspath(out_dir),
        test_accuracy=test_accuracy,
        train_accuracy=train_accuracy,
        num_train=len(x_train),
        num_test=len(x_test),
        epochs=epochs,
        image_shape=tuple(int(s) for s in x_train.shape[1:]),
        num_classes=num_classes,
        feature_dim=feature_dim,
    )
    _export_atomically(model, report, out_dir)
    return report


def read_classifier_metadata(saved_model_dir: str | os.PathLike) -> dict:
    """The `alphagan_classifier.json` written next to the SavedModel."""
    with open(os.path.join(os.fspath(saved_model_dir), METADATA_FILE), encoding="utf-8") as f:
        return json.load(f)


def write_classifier_metadata(saved_model_dir: str | os.PathLike, **fields) -> dict:
    """Adds `fields` to the classifier's metadata JSON and returns all of it."""
    metadata = read_classifier_metadata(saved_model_dir)
    metadata.update(fields)
    path = os.path.join(os.fspath(saved_model_dir), METADATA_FILE)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
    os.replace(path + ".tmp", path)
    return metadata


def _export_atomically(model, report: ClassifierReport, out_dir: str) -> None:
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".classifier-", dir=parent)
    try:
        export_dir = os.path.join(tmp, "model")
        model.export(export_dir, format="tf_saved_model", verbose=False)
        metadata = {
            **dataclasses.asdict(report),
            "input": "images float32 [B, H, W, 3] in [-1, 1]",
            "outputs": {"features": "penultimate ReLU features", "logits": "class logits"},
            "signature": "serving_default",
        }
        with open(os.path.join(export_dir, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(export_dir, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _to_unit_range(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def _accuracy(model, images: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(_to_unit_range(images[start : start + batch_size]), training=False)["logits"]
        correct += int(np.sum(np.argmax(np.asarray(logits), axis=1) == labels[start : start + batch_size]))
    return correct / len(images)


def _check_split(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(
            f"x_{name} must be uint8 images [N, H, W, 3]. Received: dtype={x.dtype}, shape={x.shape}"
        )
    if len(y) != len(x) or len(x) == 0 or y.min() < 0:
        raise ValueError(
            f"y_{name} must hold one label >= 0 per image. Received: {len(x)} images, labels shape {y.shape}"
        )
    return x, y

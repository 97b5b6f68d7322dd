"""Export a trained TextNAS classifier as a SavedModel that takes raw strings.

The serving function does the tokenisation in the graph, exactly as training
did on the tree leaves: `tf.strings.lower` (UTF-8), whitespace split, the first
`max_length` tokens, vocabulary lookup in a `tf.lookup.StaticHashTable`
(unknown words -> id 1, padding -> 0). It returns class probabilities.

Signature `serving_default` (alias of endpoint `serve`):
    inputs:  sentences: tf.string [batch]
    outputs: probabilities: float32 [batch, num_classes]

Written with `keras.export.ExportArchive` (a `tf.Module` holding a Keras 3
model writes a SavedModel the TF1 session loader cannot restore), so it loads
with `tf.saved_model.load` and with
`tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)`.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from alphagan_tf.textnas.data import PAD_ID, UNK_ID, Vocabulary
from alphagan_tf.textnas.space.architecture import TextArchitecture
from alphagan_tf.textnas.space.model import NetworkConfig, TextClassifier
from alphagan_tf.utils.typed_config import require

SERVING_INPUT = "sentences"
SERVING_OUTPUT = "probabilities"


def tokenize_in_graph(sentences: tf.Tensor, table: tf.lookup.StaticHashTable,
                      max_length: int) -> tf.Tensor:
    """tf.string [B] -> ids int32 [B, T] (T >= 1), right-padded with 0."""
    tokens = tf.strings.split(tf.strings.lower(sentences, encoding="utf-8"))
    tokens = tokens[:, :max_length]
    ids = tf.ragged.map_flat_values(table.lookup, tokens).to_tensor(default_value=PAD_ID)
    missing = tf.maximum(1 - tf.shape(ids)[1], 0)  # an all-empty batch still gets one column
    return tf.pad(ids, [[0, 0], [0, missing]])


def check_export_dir(export_dir: str) -> None:
    """Raises ConfigError unless `export_dir` is a new or empty folder."""
    usable = not os.path.exists(export_dir) or (
        os.path.isdir(export_dir) and not os.listdir(export_dir))
    require(usable, "export_dir", export_dir, "must be new or empty")


def export_classifier(model: keras.Model, vocab: Vocabulary, max_length: int,
                      export_dir: str) -> str:
    """Writes the SavedModel; returns `export_dir`.

    Args:
        model: maps ids int32 [B, T] to logits [B, num_classes].
        vocab: the training vocabulary (id = position).
        max_length: tokens kept per sentence (as in training).
        export_dir: target folder (must not exist or be empty).
    """
    check_export_dir(export_dir)
    words = vocab.words[UNK_ID + 1:]
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(words, dtype=tf.string),
            tf.range(UNK_ID + 1, UNK_ID + 1 + len(words), dtype=tf.int32),
        ),
        default_value=UNK_ID,
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def serve(sentences):
        ids = tokenize_in_graph(sentences, table, max_length)
        logits = model(ids, training=False)
        return {SERVING_OUTPUT: tf.nn.softmax(logits, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(table)
    archive.add_endpoint(name="serve", fn=serve)
    archive.write_out(export_dir, verbose=False)
    return export_dir


def load_trained(train_dir: str) -> tuple[TextClassifier, Vocabulary, int]:
    """Rebuilds the classifier a `trainer.run_training` workdir describes.

    Returns:
        (model with the best dev-epoch weights, vocabulary, max_length).
    """
    config_path = os.path.join(train_dir, "model_config.json")
    weights_path = os.path.join(train_dir, "best.weights.h5")
    for path in (config_path, weights_path, os.path.join(train_dir, "vocab.txt")):
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} not found: train_dir must be the workdir of a finished "
                f"`alphagan_tf.textnas.train` run. Received: {train_dir!r}"
            )
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    model = TextClassifier.from_architecture(
        TextArchitecture.from_dict(config["architecture"]),
        NetworkConfig.from_dict(config["network"]),
    )
    model.load_weights(weights_path)
    return model, Vocabulary.load(os.path.join(train_dir, "vocab.txt")), int(config["max_length"])

"""Pieces shared by the TextNAS search and retraining drivers.

- `classification_loss_fn`: mean cross-entropy + accuracy of a model on a batch (or a
  replica's share of them: `replica_batch`).
- `make_predict_fn` / `evaluate`: compiled inference and accuracy over batches.
- `check_run_fields`: the config fields both drivers share, validated alike.
- `make_checkpoint`: the object-based `tf.train.Checkpoint` every loop of the
  project uses (model, optimizers, step), plus the one thing TF's object graph
  does not reach in a Keras 3 model: the `SeedGenerator` states of its dropouts
  (a Keras object, not a TF trackable), which exact resume needs. The models
  make their listed sub-layers reachable with `nas.tracking.track_layers`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.textnas.space.model import check_network_fields
from alphagan_tf.utils import precision
from alphagan_tf.utils.typed_config import (
    require,
    require_finite_positive,
    require_non_negative,
    require_positive,
)

BATCH_SIGNATURE = (
    tf.TensorSpec([None, None], tf.int32, name="ids"),
    tf.TensorSpec([None], tf.int32, name="labels"),
)
IDS_SIGNATURE = (tf.TensorSpec([None, None], tf.int32, name="ids"),)
WEIGHTED_BATCH_SIGNATURE = (*BATCH_SIGNATURE, tf.TensorSpec([None], tf.float32, name="weights"))


def replica_batch(ids: np.ndarray, labels: np.ndarray, replicas: int):
    """(ids, labels, weights) of a batch that `replicas` replicas split evenly.

    A batch of B examples is padded to a multiple of `replicas` with empty rows (all
    padding, label 0, weight 0); the B real rows weigh 1/B, so the weighted sums of
    `classification_loss_fn` over any slice are that slice's share of the batch mean,
    and summed over the replicas they are the batch mean (one device's loss).
    """
    size = len(labels)
    extra = -size % replicas
    weights = np.concatenate([np.full(size, 1.0 / size, np.float32), np.zeros(extra, np.float32)])
    if extra:
        ids = np.concatenate([ids, np.zeros((extra, ids.shape[1]), ids.dtype)])
        labels = np.concatenate([labels, np.zeros(extra, labels.dtype)])
    return ids, labels, weights


def check_run_fields(config) -> None:
    """The fields a TextNAS search and a retraining config share (ConfigError naming the field)."""
    check_network_fields(config)
    require_positive(config, "max_length", "batch_size", "epochs", "log_every",
                     "checkpoint_every")
    for name in ("max_train_trees", "max_steps"):
        value = getattr(config, name)
        require(value is None or (isinstance(value, int) and value >= 1), name, value,
                "must be an integer >= 1 (or 0 / unset: no limit)")
    require_finite_positive(config, "learning_rate")
    require_non_negative(config, "clipnorm")


def smoothed_cross_entropy(labels, logits, label_smoothing: float = 0.0):
    """Mean cross-entropy against (1 - eps) * one_hot(labels) + eps / num_classes.

    Args:
        labels: int [B] class ids.
        logits: float [B, num_classes].
        label_smoothing: eps in [0, 1); 0 = plain cross-entropy.

    Returns:
        scalar float.
    """
    return keras.ops.mean(example_cross_entropy(labels, logits, label_smoothing))


def example_cross_entropy(labels, logits, label_smoothing: float = 0.0):
    """`smoothed_cross_entropy` of each example: float [B]."""
    one_hot = keras.ops.one_hot(labels, keras.ops.shape(logits)[-1], dtype=logits.dtype)
    return keras.losses.categorical_crossentropy(
        one_hot, logits, from_logits=True, label_smoothing=label_smoothing)


def batch_accuracy(logits, labels):
    """Share of argmax(logits) == labels: float32 scalar in [0, 1].

    Args:
        logits: float [B, num_classes].
        labels: int [B].
    """
    return keras.ops.mean(example_correct(logits, labels))


def example_correct(logits, labels):
    """1.0 where argmax(logits) == labels, else 0.0: float32 [B]."""
    correct = keras.ops.equal(keras.ops.argmax(logits, axis=-1), keras.ops.cast(labels, "int64"))
    return keras.ops.cast(correct, "float32")


def classification_loss_fn(model: keras.Model, label_smoothing: float = 0.0) -> Callable:
    """loss_fn(ids, labels, weights=None, **call_kwargs) -> (mean cross-entropy, {"accuracy": ...})
    in training mode.

    `call_kwargs` go to the model (e.g. the supernet's `architecture=`). With
    `label_smoothing` > 0 the loss is `smoothed_cross_entropy` (the reported
    accuracy is unaffected). With `weights` (float32 [B], `replica_batch`) the loss and
    the accuracy are the weighted sums instead of the means: a replica's share of the
    global batch's means.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1). Received: {label_smoothing}")

    def loss_fn(ids, labels, weights=None, **call_kwargs):
        logits = precision.to_float32(model(ids, training=True, **call_kwargs))  # float32 loss
        if weights is None:
            loss = smoothed_cross_entropy(labels, logits, label_smoothing)
            return loss, {"accuracy": batch_accuracy(logits, labels)}
        loss = keras.ops.sum(example_cross_entropy(labels, logits, label_smoothing) * weights)
        return loss, {"accuracy": keras.ops.sum(example_correct(logits, labels) * weights)}

    return loss_fn


def make_predict_fn(model: keras.Model) -> Callable:
    """Compiled inference: ids int32 [B, T] -> logits float32 [B, classes]."""
    return tf.function(lambda ids: precision.to_float32(model(ids, training=False)),
                       input_signature=IDS_SIGNATURE)


def evaluate(predict_fn: Callable, batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Accuracy and mean cross-entropy over (ids, labels) batches."""
    correct, total, loss_sum = 0, 0, 0.0
    for ids, labels in batches:
        logits = predict_fn(tf.constant(ids)).numpy().astype(np.float64)
        log_probs = logits - logits.max(-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
        loss_sum += -log_probs[np.arange(len(labels)), labels].sum()
        correct += int((logits.argmax(-1) == labels).sum())
        total += len(labels)
    return {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1)}


def seed_states(model: keras.Model) -> list[tf.Variable]:
    """The state variables of the model's Keras `SeedGenerator`s (dropout, word dropout)."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def make_checkpoint(model: keras.Model, optimizers: dict[str, Any], step: tf.Variable,
                    **more: Any) -> tf.train.Checkpoint:
    """The object-based checkpoint of a model, its optimizers and the step (module docstring).

    `more` (name -> a trackable, e.g. a search controller and its REINFORCE state)
    adds further state; models among them get their seed states saved too.
    """
    seeds = {"seed_states": seed_states(model)}
    for name, item in more.items():
        if isinstance(item, keras.Model) and seed_states(item):
            seeds[f"{name}_seed_states"] = seed_states(item)
    return tf.train.Checkpoint(step=step, model=model, **optimizers, **more, **seeds)


def set_threads(num_threads: int) -> None:
    """Caps TensorFlow's CPU threads (0 = TensorFlow's default). Call before any op."""
    if num_threads and num_threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(num_threads)

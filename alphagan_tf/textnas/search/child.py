"""The shared-weight child: one sampled architecture per step on the supernet's weights.

ENAS-style weight sharing (Pham et al., 2018), as TextNAS searches: every step
trains the supernet's weights on ONE architecture (`TextNASSupernet.call(ids,
architecture=...)`: one candidate op per layer runs, `tf.switch_case`), so a
step costs about one network rather than eight (`bench/textnas_sampled_step.py`
measures it). The architecture is a tensor input (`encoding.py`), so each step
is compiled once for every architecture of L layers.

The candidates a step did not run get zero gradients. `SampledPathAdam` then
leaves them and their Adam moments untouched, as PyTorch's Adam does for
parameters without a gradient (NNI's ENAS, which TextNAS used): a plain
Adam would keep moving them with their old momentum.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.textnas.space.encoding import EncodedArchitecture
from alphagan_tf.textnas.train.classification import (
    BATCH_SIGNATURE,
    IDS_SIGNATURE,
    classification_loss_fn,
    evaluate,
)
from alphagan_tf.utils import precision


def architecture_signature(num_layers: int) -> tuple[tf.TensorSpec, ...]:
    """The `tf.function` input signature of an encoded architecture of `num_layers`."""
    return (
        tf.TensorSpec([num_layers], tf.int32, name="ops"),
        tf.TensorSpec([num_layers], tf.int32, name="inputs"),
        tf.TensorSpec([num_layers, num_layers], tf.int32, name="skips"),
    )


class SampledPathAdam(keras.optimizers.Adam):
    """Adam that skips every variable whose gradient is exactly zero everywhere.

    The variable and its moments stay as they are (the bias correction still
    uses the optimizer's global step count). On the sampled path this is the
    weights of the candidate ops that did not run; a weight that did run but
    got an exactly-zero gradient (e.g. behind a dead ReLU) is skipped alike.
    """

    def update_step(self, gradient, variable, learning_rate):
        touched = tf.reduce_any(tf.not_equal(gradient, 0))

        def update():
            super(SampledPathAdam, self).update_step(gradient, variable, learning_rate)
            return tf.constant(True)

        tf.cond(touched, update, lambda: tf.constant(False))


class ChildSteps:
    """Compiled training and inference of a supernet on one given architecture.

    Args:
        model: a built `TextNASSupernet`.
        optimizer: updates `model.weight_variables` with the mean cross-entropy
            (a `SampledPathAdam`); built here.

    `train_step(ids, labels, ops, inputs, skips)` -> {"loss", "accuracy"} (tensors);
    `predict(ids, ops, inputs, skips)` -> logits in inference mode.
    """

    def __init__(self, model, optimizer: keras.optimizers.Optimizer):
        self.model = model
        self.loss_fn = classification_loss_fn(model)
        self.optimizer = optimizer
        self.variables = list(model.weight_variables)
        optimizer.build(self.variables)
        arch = architecture_signature(model.num_layers)
        self.train_step = tf.function(self._train_step, input_signature=(*BATCH_SIGNATURE, *arch))
        self.predict = tf.function(self._predict, input_signature=(*IDS_SIGNATURE, *arch))

    def _train_step(self, ids, labels, ops, inputs, skips):
        with tf.GradientTape() as tape:
            loss, metrics = self.loss_fn(ids, labels, architecture=(ops, inputs, skips))
            scaled = self.optimizer.scale_loss(loss)  # float16: the loss scale; else the loss
        self.optimizer.apply(tape.gradient(scaled, self.variables), self.variables)
        return {"loss": loss, **metrics}

    def _predict(self, ids, ops, inputs, skips):
        return precision.to_float32(self.model(ids, training=False, architecture=(ops, inputs, skips)))

    def evaluate(self, architecture: EncodedArchitecture,
                 batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """Accuracy and mean cross-entropy of `architecture` over (ids, labels) batches."""
        arrays = tuple(tf.constant(a) for a in architecture.as_tuple())
        return evaluate(lambda ids: self.predict(ids, *arrays), batches)


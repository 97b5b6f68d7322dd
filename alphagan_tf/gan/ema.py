"""Exponential moving average of generator weights (used for sampling and evaluation).

The average lives in a second Generator of identical structure (the one that is
exported), updated after every generator step:

    ema <- decay * ema + (1 - decay) * weights        (trainable weights)
    ema <- weights                                   (non-trainable state: BN statistics)
"""

from __future__ import annotations

import keras
import tensorflow as tf


class WeightEMA:
    """Keeps `average_model` an exponential moving average of `model`.

    Args:
        model: the generator being trained.
        average_model: a model of identical structure that holds the average.
        decay: the EMA decay (0.999 in the paper's retraining).
    """

    def __init__(self, model: keras.Model, average_model: keras.Model, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1). Received: decay={decay}")
        self.decay = float(decay)
        self._pairs = list(zip(model.trainable_variables, average_model.trainable_variables))
        self._state_pairs = list(
            zip(model.non_trainable_variables, average_model.non_trainable_variables)
        )
        if len(model.variables) != len(average_model.variables):
            raise ValueError(
                "The EMA model must have the structure of the trained model. Received: "
                f"{len(model.variables)} vs {len(average_model.variables)} variables"
            )

    def initialize(self) -> None:
        """Start the average at the current weights."""
        for source, target in self._pairs + self._state_pairs:
            target.assign(source)

    def update(self) -> None:
        """One EMA step (call inside or outside tf.function)."""
        decay = tf.constant(self.decay, tf.float32)
        for source, target in self._pairs:
            target.assign(decay * target + (1.0 - decay) * source)
        for source, target in self._state_pairs:
            target.assign(source)

"""A relaxed choice among candidate tensors: their sum, each scaled by a weight from one logit.

    output = sum_j w(logits)_j * inputs_j

The two relaxations differ only in w: a softmax for "exactly one of these"
(`nas.input_choice.InputChoice`), independent sigmoids for "any subset of these"
(`nas.gates.SigmoidGates`). The logits are the layer's only architecture weights.
"""

from __future__ import annotations

import keras

from alphagan_tf.nas.architecture import ArchitectureLayer
from alphagan_tf.nas.mixed_op import alpha_initializer


def weighted_sum(weights, tensors):
    """sum_j weights[j] * tensors[j] (weights: a [len(tensors)] tensor)."""
    output = None
    for j, x in enumerate(tensors):
        term = weights[j] * x
        output = term if output is None else output + term
    return output


class CandidateSum(ArchitectureLayer):
    """Sum of `num_candidates` same-shaped tensors, weighted by `candidate_weights()`.

    Subclasses set `logits_name` (the weight's name) and define `candidate_weights`.

    Args:
        num_candidates: how many tensors the call receives (>= 1).
        alpha_stddev: standard deviation of the logit initialisation (logits near 0).

    Call args:
        inputs: list of `num_candidates` tensors of one shape.

    Returns:
        a tensor of that shape.
    """

    logits_name = "logits"

    def __init__(self, num_candidates: int, alpha_stddev: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1. Received: {num_candidates}")
        self.num_candidates = int(num_candidates)
        self.alpha_stddev = float(alpha_stddev)
        self.supports_masking = True

    def build(self, input_shape):
        self.candidate_logits = self.add_weight(
            name=self.logits_name,
            shape=(self.num_candidates,),
            initializer=alpha_initializer(self.alpha_stddev),
            trainable=True,
        )
        self.built = True

    @property
    def arch_variables(self) -> list:
        return [self.candidate_logits]

    def candidate_weights(self):
        """float32 [num_candidates]: the weight of each candidate."""
        raise NotImplementedError

    def call(self, inputs):
        if len(inputs) != self.num_candidates:
            raise ValueError(
                f"{type(self).__name__} expects {self.num_candidates} inputs. "
                f"Received: {len(inputs)}"
            )
        return weighted_sum(self.candidate_weights(), inputs)

    def compute_mask(self, inputs, mask=None):
        return None  # masks travel as explicit arguments

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_candidates": self.num_candidates,
                "alpha_stddev": self.alpha_stddev}

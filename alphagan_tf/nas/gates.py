"""Sigmoid gates: a relaxed "any subset of these tensors".

Each candidate j has an independent gate logit g_j; the layer returns

    output = sum_j sigmoid(g_j) * inputs_j

so the relaxation of a subset choice is a product of independent Bernoulli
relaxations (not a softmax: several, all or none may be kept). Derivation keeps
the candidates whose gate exceeds 0.5 (`gated_choices`). Our design for the
TextNAS skip connections (the paper searches them with ENAS).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

from alphagan_tf.nas.architecture import ArchitectureLayer
from alphagan_tf.nas.mixed_op import alpha_initializer


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SigmoidGates(ArchitectureLayer):
    """Sum of `num_candidates` same-shaped tensors, each scaled by its sigmoid gate.

    Args:
        num_candidates: how many tensors the call receives (>= 1).
        alpha_stddev: standard deviation of the gate-logit initialisation
            (logits near 0, i.e. gates near 0.5).

    Call args:
        inputs: list of `num_candidates` tensors of one shape.

    Returns:
        a tensor of that shape.
    """

    def __init__(self, num_candidates: int, alpha_stddev: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1. Received: {num_candidates}")
        self.num_candidates = int(num_candidates)
        self.alpha_stddev = float(alpha_stddev)
        self.supports_masking = True

    def build(self, input_shape):
        self.logits = self.add_weight(
            name="gate_logits",
            shape=(self.num_candidates,),
            initializer=alpha_initializer(self.alpha_stddev),
            trainable=True,
        )
        self.built = True

    @property
    def arch_variables(self) -> list:
        return [self.logits]

    def gate_values(self):
        """sigmoid(logits): float32 [num_candidates] in (0, 1)."""
        return ops.sigmoid(ops.convert_to_tensor(self.logits))

    def call(self, inputs):
        if len(inputs) != self.num_candidates:
            raise ValueError(
                f"SigmoidGates expects {self.num_candidates} inputs. Received: {len(inputs)}"
            )
        gates = self.gate_values()
        output = None
        for j, x in enumerate(inputs):
            term = gates[j] * x
            output = term if output is None else output + term
        return output

    def compute_mask(self, inputs, mask=None):
        return None  # masks travel as explicit arguments

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_candidates": self.num_candidates,
                "alpha_stddev": self.alpha_stddev}


def gated_choices(logits: np.ndarray | Sequence[float], threshold: float = 0.5) -> list[int]:
    """Derivation: the indices whose gate sigmoid(logit) exceeds `threshold`."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1:
        raise ValueError(f"logits must be a vector. Received: shape={logits.shape}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1). Received: {threshold}")
    gates = 1.0 / (1.0 + np.exp(-logits))
    return [int(j) for j in np.flatnonzero(gates > threshold)]

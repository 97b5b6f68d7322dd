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

from alphagan_tf.nas.candidate_sum import CandidateSum


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SigmoidGates(CandidateSum):
    """Sum of `num_candidates` same-shaped tensors, each scaled by its sigmoid gate (`CandidateSum`)."""

    logits_name = "gate_logits"

    @property
    def logits(self):
        """The architecture weight: one gate logit per candidate."""
        return self.candidate_logits

    def candidate_weights(self):
        """sigmoid(logits): float32 [num_candidates] in (0, 1)."""
        return ops.sigmoid(ops.convert_to_tensor(self.logits))

    gate_values = candidate_weights


def gated_choices(logits: np.ndarray | Sequence[float], threshold: float = 0.5) -> list[int]:
    """Derivation: the indices whose gate sigmoid(logit) exceeds `threshold`."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1:
        raise ValueError(f"logits must be a vector. Received: shape={logits.shape}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1). Received: {threshold}")
    gates = 1.0 / (1.0 + np.exp(-logits))
    return [int(j) for j in np.flatnonzero(gates > threshold)]

"""Architecture weights: who owns them, how they are separated, how they are read.

Alpha has one owner. Every layer that holds architecture weights derives from
`ArchitectureLayer` and lists them in `arch_variables`; a searchable model
gathers those lists in a fixed, documented order. Nothing here (or anywhere in
the project) tells architecture weights from network weights by name.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import keras
import numpy as np


class ArchitectureLayer(keras.layers.Layer):
    """Base of every layer that holds architecture weights (alphas, gates)."""

    @property
    def arch_variables(self) -> list:
        """The layer's architecture weights, in a fixed order."""
        raise NotImplementedError


def weight_variables_excluding(
    trainable_variables: Iterable, arch_variables: Sequence
) -> list:
    """The trainable variables that are not architecture weights (by identity).

    Args:
        trainable_variables: all trainable variables of a model.
        arch_variables: the model's architecture weights.

    Returns:
        The network weights, in the order of `trainable_variables`.
    """
    arch_ids = {id(v) for v in arch_variables}
    return [v for v in trainable_variables if id(v) not in arch_ids]


def argmax_choice(alpha: np.ndarray | Sequence[float], names: Sequence[str]) -> str:
    """Derivation on one edge: the name of the candidate with the largest alpha."""
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.shape != (len(names),):
        raise ValueError(
            f"alpha must have one entry per candidate ({len(names)}). "
            f"Received: shape={alpha.shape}"
        )
    return names[int(np.argmax(alpha))]


def softmax(alpha: np.ndarray | Sequence[float]) -> np.ndarray:
    """numpy softmax over the last axis (for reports and plots)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    e = np.exp(alpha - alpha.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

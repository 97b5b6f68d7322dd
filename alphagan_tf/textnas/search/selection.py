"""Perturbation-based operation selection for a trained TextNAS supernet.

The argmax of the op softmax is not a reliable read-out of a relaxed search:
on SST our first-order search drifted every layer's op alphas toward the
parameter-free pools (layers 0..23 all `max_pool_3`, the pools' probability
0.13-0.22 against 0.125 for uniform), the text analogue of DARTS's drift to
skip connections. Wang et al. (ICLR 2021, "Rethinking Architecture Selection
in Differentiable NAS") select instead by how much the trained supernet needs
each operation. Our one-shot adaptation (no fine-tuning between decisions,
held-out loss instead of accuracy, our choice):

    for every layer i and candidate op k:
        remove op k from layer i's mixture (its alpha set to -inf, the others
        renormalised), evaluate the held-out sentences, restore the alpha;
    layer i gets the op whose removal raises the held-out loss the most.

Inputs and skips are derived as before (argmax input, gates > 0.5, optional
cap): only the op choice changes.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from alphagan_tf.textnas.space.architecture import OPS, LayerChoice, TextArchitecture
from alphagan_tf.textnas.train.classification import evaluate

#: An alpha this low removes a candidate from the softmax (exp underflows to 0).
REMOVED = -1e9


def op_removal_scores(model, predict_fn: Callable,
                      batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Held-out loss increase when each op of each layer is removed.

    Args:
        model: a `TextNASSupernet` (its alphas are restored on return).
        predict_fn: compiled inference of `model` (ids -> logits).
        batches: held-out (ids, labels) batches.

    Returns:
        float64 [num_layers, len(OPS)]: loss without op k in layer i minus the
        loss of the full supernet.
    """
    base = evaluate(predict_fn, batches)["loss"]
    scores = np.zeros((model.num_layers, len(OPS)))
    for i, layer in enumerate(model.search_layers):
        alpha = layer.mixed_op.alpha
        original = np.array(alpha.numpy())
        try:
            for k in range(len(OPS)):
                removed = original.copy()
                removed[k] = REMOVED
                alpha.assign(removed)
                scores[i, k] = evaluate(predict_fn, batches)["loss"] - base
        finally:
            alpha.assign(original)
    return scores


def select_by_removal(architecture: TextArchitecture, scores: np.ndarray) -> TextArchitecture:
    """`architecture` with each layer's op replaced by the one of largest removal score.

    Ties go to the earlier op of `OPS`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (architecture.num_layers, len(OPS)):
        raise ValueError(f"scores must have shape {(architecture.num_layers, len(OPS))}. "
                         f"Received: shape={scores.shape}")
    return TextArchitecture(layers=tuple(
        LayerChoice(op=OPS[int(np.argmax(row))], input=layer.input, skips=layer.skips)
        for layer, row in zip(architecture.layers, scores)
    ))

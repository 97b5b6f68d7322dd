"""Perturbation-based op selection: removal scores and the derived ops."""

import numpy as np
import pytest

from alphagan_tf.textnas.search.selection import op_removal_scores, select_by_removal
from alphagan_tf.textnas.space.architecture import OPS, LayerChoice, TextArchitecture
from alphagan_tf.textnas.space.model import NetworkConfig
from alphagan_tf.textnas.space.supernet import TextNASSupernet
from alphagan_tf.textnas.train.classification import evaluate, make_predict_fn

NET = NetworkConfig(vocab_size=30, num_classes=3, units=8, embedding_dim=8,
                    embedding_dropout=0.0, output_dropout=0.0)


def test_removal_scores_measure_the_held_out_loss_without_each_op():
    model = TextNASSupernet.create(NET, num_layers=3)
    # Layer 1 puts all its weight on conv_3: removing any other op of layer 1 changes nothing.
    dominant = np.full(len(OPS), -30.0, np.float32)
    dominant[OPS.index("conv_3")] = 0.0
    model.search_layers[1].mixed_op.alpha.assign(dominant)
    before = [layer.mixed_op.alpha.numpy().copy() for layer in model.search_layers]
    rng = np.random.default_rng(0)
    ids = np.zeros((6, 7), np.int32)
    for r in range(6):
        ids[r, : 3 + r % 4] = rng.integers(2, 30, 3 + r % 4)
    batches = [(ids[:4], np.array([0, 1, 2, 0], np.int32)), (ids[4:], np.array([1, 2], np.int32))]
    predict_fn = make_predict_fn(model)
    scores = op_removal_scores(model, predict_fn, batches)
    assert scores.shape == (3, len(OPS))
    for layer, alpha in zip(model.search_layers, before):  # alphas restored exactly
        np.testing.assert_array_equal(layer.mixed_op.alpha.numpy(), alpha)
    others = [k for k in range(len(OPS)) if OPS[k] != "conv_3"]
    assert np.abs(scores[1, others]).max() < 1e-6
    assert abs(scores[1, OPS.index("conv_3")]) > 1e-4
    # One entry by hand: layer 0 without bi_gru.
    base = evaluate(predict_fn, batches)["loss"]
    alpha = model.search_layers[0].mixed_op.alpha
    removed = alpha.numpy().copy()
    removed[OPS.index("bi_gru")] = -1e9
    alpha.assign(removed)
    by_hand = evaluate(predict_fn, batches)["loss"] - base
    np.testing.assert_allclose(scores[0, OPS.index("bi_gru")], by_hand, rtol=1e-5, atol=1e-9)


def test_select_by_removal_replaces_only_the_ops():
    arch = TextArchitecture((LayerChoice("max_pool_3", -1), LayerChoice("max_pool_3", -1, (0,)),
                             LayerChoice("avg_pool_3", 0, (1,))))
    scores = np.zeros((3, len(OPS)))
    scores[0, OPS.index("bi_gru")] = 0.02
    scores[1, OPS.index("conv_5")] = -0.01  # every removal lowers the loss but this one least
    scores[1, [k for k in range(len(OPS)) if OPS[k] != "conv_5"]] = -0.05
    scores[2, [OPS.index("conv_7"), OPS.index("self_attention")]] = 0.3  # tie: earlier op wins
    selected = select_by_removal(arch, scores)
    assert selected.ops == ("bi_gru", "conv_5", "conv_7")
    assert [(layer.input, layer.skips) for layer in selected.layers] == [(-1, ()), (-1, (0,)), (0, (1,))]
    with pytest.raises(ValueError, match="scores must have shape"):
        select_by_removal(arch, scores[:2])

"""The TextNAS search network and fixed network: masks, shapes, alphas, derivation."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.nas.gates import SigmoidGates
from alphagan_tf.nas.input_choice import InputChoice
from alphagan_tf.nas.mixed_op import MixedOp
from alphagan_tf.textnas.space.architecture import (
    OPS,
    PRESETS,
    LayerChoice,
    TextArchitecture,
    random_architecture,
)
from alphagan_tf.textnas.space.model import NetworkConfig, TextClassifier
from alphagan_tf.textnas.space.supernet import TextNASSupernet

NET = NetworkConfig(vocab_size=40, num_classes=5, units=8, embedding_dim=8,
                    embedding_dropout=0.0, output_dropout=0.0)


def _ids():
    rng = np.random.default_rng(0)
    ids = np.zeros((3, 32), np.int32)
    for r, n in enumerate([5, 16, 11]):
        ids[r, :n] = rng.integers(1, 40, n)
    return ids


def _models():
    return {
        "supernet": TextNASSupernet.create(NET, num_layers=7),
        "paper": TextClassifier.from_architecture(PRESETS["textnas_paper"], NET),
        "random": TextClassifier.from_architecture(random_architecture(9, 5), NET),
    }


@pytest.mark.parametrize("training", [False, True])
def test_padding_does_not_change_logits(training):
    ids = _ids()
    for name, model in _models().items():
        short = model(ids[:, :16], training=training).numpy()
        long = model(ids, training=training).numpy()
        assert short.shape == long.shape == (3, 5), name
        np.testing.assert_allclose(long, short, rtol=1e-4, atol=1e-5, err_msg=name)


def test_supernet_arch_variables_order_and_disjointness():
    model = TextNASSupernet.create(NET, num_layers=7)
    arch = model.arch_variables
    # Layer 0: op alpha only; layer i >= 1: op alpha, input alpha (min(i+1, 5)), i skip gates.
    expected = [(8,)]
    for i in range(1, 7):
        expected += [(8,), (min(i + 1, 5),), (i,)]
    assert [tuple(v.shape) for v in arch] == expected
    weight_ids = {id(v) for v in model.weight_variables}
    assert not weight_ids & {id(v) for v in arch}
    assert len(weight_ids) + len(arch) == len(model.trainable_variables)
    owners = [type(layer) for layer in model._flatten_layers() if hasattr(layer, "arch_variables")]
    assert {MixedOp, InputChoice, SigmoidGates} <= {c for o in owners for c in o.__mro__}


def test_every_arch_variable_gets_a_gradient():
    model = TextNASSupernet.create(NET, num_layers=7)
    ids = tf.constant(_ids())
    with tf.GradientTape() as tape:
        logits = model(ids, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits([0, 1, 2], logits))
    grads = tape.gradient(loss, model.arch_variables)
    assert all(g is not None for g in grads)
    assert min(float(tf.reduce_max(tf.abs(g))) for g in grads) > 0.0


def test_derivation_argmax_op_argmax_input_gates_above_half():
    model = TextNASSupernet.create(NET, num_layers=7)
    expected = []
    for i, layer in enumerate(model.search_layers):
        op = OPS[(3 * i) % len(OPS)]
        alpha = np.zeros(len(OPS), np.float32)
        alpha[OPS.index(op)] = 1.0
        layer.mixed_op.alpha.assign(alpha)
        source = -1
        if layer.input_choice is not None:
            beta = np.zeros(layer.num_inputs, np.float32)
            beta[0] = 0.5  # the oldest candidate
            layer.input_choice.alpha.assign(beta)
            source = max(-1, i - 5)
        skips = ()
        if layer.skip_gates is not None:
            logits = np.where(np.arange(i) % 2 == 0, 0.3, -0.3).astype(np.float32)
            layer.skip_gates.logits.assign(logits)
            skips = tuple(range(0, i, 2))
        expected.append(LayerChoice(op, source, skips))
    assert model.architecture() == TextArchitecture(tuple(expected))
    probs = model.probabilities()
    assert max(probs[3]["op"], key=probs[3]["op"].get) == OPS[9 % 8]
    assert abs(sum(probs[6]["input"].values()) - 1.0) < 1e-9
    assert probs[2]["skips"]["0"] > 0.5 > probs[2]["skips"]["1"]


def test_fixed_network_follows_inputs_and_skips():
    arch = TextArchitecture((
        LayerChoice("conv_1", -1), LayerChoice("avg_pool_3", -1), LayerChoice("max_pool_3", 0, (0, 1)),
    ))
    model = TextClassifier.from_architecture(arch, NET)
    ids = tf.constant(_ids()[:, :16])
    mask = ids != 0
    stem = model.stem(ids, training=False)
    l0 = model.text_layers[0](stem, mask=mask, training=False)
    l1 = model.text_layers[1](stem, mask=mask, training=False)
    l2 = model.text_layers[2](l0, skips=[l0, l1], mask=mask, training=False)
    logits = model.head([l0, l1, l2], mask=mask, training=False)
    np.testing.assert_allclose(model(ids, training=False).numpy(), logits.numpy(), rtol=1e-5, atol=1e-6)
    assert [type(l.op).__name__ for l in model.text_layers] == ["MaskedConvBN", "MaskedAvgPool", "MaskedMaxPool"]


def test_fixed_network_has_no_architecture_weights_and_config_round_trip():
    model = TextClassifier.from_architecture(PRESETS["textnas_paper"], NET)
    assert not any(hasattr(layer, "arch_variables") for layer in model._flatten_layers())
    clone = TextClassifier.from_config(model.get_config())
    clone(tf.ones((1, 2), tf.int32))
    assert clone.architecture == model.architecture
    assert clone.count_params() == model.count_params()


def test_parameter_count_of_paper_architecture():
    model = TextClassifier.from_architecture(PRESETS["textnas_paper"], NetworkConfig(1000, 2, units=32, embedding_dim=16))
    H, E = 32, 16
    bn = 4 * H  # gamma, beta, moving mean, moving variance
    expected = 1000 * E + (E * H + H) + bn  # stem
    expected += sum(k * H * H + bn for k in (7, 3, 3, 1, 3, 5, 1, 7, 5, 7, 7, 7))  # 12 convs (BN inside)
    expected += 2 * (2 * H * 3 * H + 2 * H * 3 * H + 4 * 3 * H)  # 2 bi-GRUs
    expected += 4 * (H * 3 * H + 3 * H + H * H + H)  # 4 attentions
    expected += 24 * bn + 24 + (H * 2 + 2)  # layer BNs, combination logits, classifier
    assert model.count_params() == expected


@pytest.mark.parametrize("kind", ["supernet", "fixed"])
def test_tf_checkpoint_of_the_model_object_holds_every_variable(kind, tmp_path):
    # Keras 3 keeps list-held layers in a TrackedList that tf.train.Checkpoint does not
    # follow; nas.tracking.track_layers makes every layer a checkpoint dependency.
    def make():
        if kind == "supernet":
            return TextNASSupernet.create(NET, num_layers=3)
        return TextClassifier.from_architecture(random_architecture(4, 1), NET)

    source = make()
    rng = np.random.default_rng(1)
    for v in source.variables:
        if "float" in str(v.dtype):
            v.assign(rng.normal(size=v.shape).astype("float32"))
    path = tf.train.Checkpoint(model=source).write(str(tmp_path / "ckpt"))
    saved = {name for name, _ in tf.train.list_variables(path)}
    per_layer = [n for n in saved if "text_layer_" in n or "search_layer_" in n]
    assert per_layer, sorted(saved)[:10]

    target = make()
    tf.train.Checkpoint(model=target).read(path).assert_consumed()
    assert len(source.variables) == len(target.variables)
    for a, b in zip(source.variables, target.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    ids = tf.constant(_ids())
    np.testing.assert_allclose(target(ids, training=False).numpy(),
                               source(ids, training=False).numpy(), rtol=1e-6)


@pytest.mark.parametrize("pooling", ["max", "mean_max"])
def test_max_pooling_heads_ignore_padding(pooling):
    net = NetworkConfig(vocab_size=40, num_classes=5, units=8, embedding_dim=8,
                        embedding_dropout=0.0, output_dropout=0.0, pooling=pooling)
    ids = _ids()
    for model in (TextNASSupernet.create(net, num_layers=3),
                  TextClassifier.from_architecture(random_architecture(4, 2), net)):
        np.testing.assert_allclose(model(ids, training=False).numpy(),
                                   model(ids[:, :16], training=False).numpy(), rtol=1e-4, atol=1e-5)
    features = 16 if pooling == "mean_max" else 8
    assert model.head.classifier.kernel.shape == (features, 5)
    assert TextClassifier.from_config(model.get_config()).network.pooling == pooling


def test_masked_pool_matches_numpy():
    from alphagan_tf.textnas.space.layers import masked_pool

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 6, 4)).astype("float32") - 5.0  # all negative: zero padding must not win
    mask = np.array([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], bool)
    x = x * mask[..., None]
    got = masked_pool(tf.constant(x), tf.constant(mask), "mean_max").numpy()
    for row in range(2):
        real = x[row][mask[row]]
        np.testing.assert_allclose(got[row, :4], real.mean(0), rtol=1e-6)
        np.testing.assert_allclose(got[row, 4:], real.max(0), rtol=1e-6)
    np.testing.assert_array_equal(got[2], np.zeros(8))  # an all-padding row pools to zeros
    with pytest.raises(ValueError, match="pooling must be one of"):
        masked_pool(tf.constant(x), tf.constant(mask), "min")


def test_word_dropout_replaces_real_tokens_by_unk_in_training_only():
    from alphagan_tf.textnas.space.layers import Stem

    stem = Stem(40, 8, 8, word_dropout=0.5, seed=3)
    stem.build((None, None))
    ids = tf.constant(_ids())
    seen = {}
    original = stem.embedding.call

    def spy(x):
        seen["ids"] = x
        return original(x)

    stem.embedding.call = spy
    stem(ids, training=True)
    got = seen["ids"].numpy()
    real = _ids() != 0
    assert (got[~real] == 0).all()  # padding stays padding
    replaced = (got != _ids()) & real
    assert (got[replaced] == 1).all() and 0.3 < replaced.sum() / real.sum() < 0.7
    stem(ids, training=False)
    np.testing.assert_array_equal(seen["ids"].numpy(), _ids())
    assert Stem.from_config(stem.get_config()).word_dropout == 0.5
    with pytest.raises(ValueError, match="word_dropout must be in"):
        Stem(40, 8, 8, word_dropout=1.0)


def test_skip_cap_and_mean_gate_of_the_supernet():
    model = TextNASSupernet.create(NET, num_layers=5)
    rng = np.random.default_rng(3)
    logits = []
    for layer in model.search_layers[1:]:
        g = rng.normal(0.0, 2.0, layer.num_skips).astype(np.float32)
        layer.skip_gates.logits.assign(g)
        logits.append(g)
    gates = 1.0 / (1.0 + np.exp(-np.concatenate(logits)))
    np.testing.assert_allclose(float(model.mean_skip_gate()), gates.mean(), rtol=1e-6)
    for cap in (0, 1, 2):
        derived = model.architecture(max_skips=cap)
        for i, layer in enumerate(derived.layers):
            above = [j for j in range(i) if logits[i - 1][j] > 0] if i else []
            expected = sorted(sorted(above, key=lambda j: -logits[i - 1][j])[:cap]) if cap else above
            assert list(layer.skips) == expected


@pytest.mark.parametrize("kind", ["fixed", "supernet"])
def test_the_object_based_checkpoint_holds_every_variable_and_restores_dropout(kind, tmp_path):
    """make_checkpoint: every model and optimizer variable, the dropout seed states included
    (TF's object graph alone misses those: a Keras SeedGenerator is not a TF trackable)."""
    import keras

    from alphagan_tf.textnas.search.controller import ControllerConfig, TextNASController
    from alphagan_tf.textnas.search.reinforce import ReinforceTrainer
    from alphagan_tf.textnas.train.classification import make_checkpoint, seed_states

    net = dataclasses.replace(NET, embedding_dropout=0.3, output_dropout=0.3, word_dropout=0.2)
    model = (TextClassifier.from_architecture(random_architecture(4, 0), net) if kind == "fixed"
             else TextNASSupernet.create(net, 4))
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    trainer = ReinforceTrainer(TextNASController.create(4, 8, 0.4), ControllerConfig(units=8))
    step = tf.Variable(7, dtype=tf.int64)
    checkpoint = make_checkpoint(model, {"optimizer": optimizer}, step, **trainer.checkpoint_items())
    path = checkpoint.save(str(tmp_path / "ckpt"))
    saved = [n for n, _ in tf.train.list_variables(path)
             if "OBJECT_GRAPH" not in n and not n.startswith("save_counter")]
    expected = {id(v) for v in [*model.variables, *optimizer.variables, step,
                                *trainer.controller.variables, trainer.baseline, trainer.steps,
                                *trainer.optimizer.variables]}
    assert len(seed_states(model)) >= 2 and len(saved) == len(expected)
    before = [v.numpy().copy() for v in seed_states(model)]
    model(_ids(), training=True)  # dropout draws: the seed states move
    assert any((v.numpy() != b).any() for v, b in zip(seed_states(model), before))
    checkpoint.restore(path).assert_consumed()
    for v, b in zip(seed_states(model), before):
        np.testing.assert_array_equal(v.numpy(), b)

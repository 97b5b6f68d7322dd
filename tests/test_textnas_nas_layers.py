"""The generic NAS pieces TextNAS added: input choice, sigmoid gates, alternating steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.nas.arch_optimizer import ArchitectureOptimizer, ArchOptimizerConfig
from alphagan_tf.nas.bilevel import AlternatingSteps
from alphagan_tf.nas.gates import SigmoidGates, gated_choices
from alphagan_tf.nas.input_choice import InputChoice


def test_input_choice_is_softmax_weighted_sum():
    layer = InputChoice(3)
    xs = [np.full((2, 4), v, np.float32) for v in (1.0, 2.0, 4.0)]
    layer(xs)
    layer.alpha.assign([0.0, np.log(2.0), np.log(5.0)])  # softmax = [1, 2, 5] / 8
    np.testing.assert_allclose(layer(xs).numpy(), np.full((2, 4), (1 + 4 + 20) / 8), rtol=1e-6)
    assert layer.arch_variables == [layer.alpha]
    with pytest.raises(ValueError, match="expects 3 inputs. Received: 2"):
        layer(xs[:2])


def test_sigmoid_gates_are_independent():
    layer = SigmoidGates(2)
    xs = [np.ones((1, 3), np.float32), np.full((1, 3), 10.0, np.float32)]
    layer(xs)
    layer.logits.assign([0.0, 100.0])  # gates 0.5 and ~1: not a softmax
    np.testing.assert_allclose(layer(xs).numpy(), np.full((1, 3), 10.5), rtol=1e-6)
    assert gated_choices([0.0, 100.0]) == [1]
    assert gated_choices([0.1, -0.1, 2.0]) == [0, 2]
    assert gated_choices([-1.0, -2.0]) == []
    with pytest.raises(ValueError, match="threshold"):
        gated_choices([0.0], threshold=1.0)


def test_layers_config_round_trip():
    for layer in (InputChoice(4, alpha_stddev=0.1, name="c"), SigmoidGates(2, name="g")):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_alternating_steps_update_only_their_own_variables():
    keras.utils.set_random_seed(0)
    w = keras.Variable(np.array([1.0, -1.0], np.float32), name="w")
    a = keras.Variable(np.array([0.5], np.float32), name="a")

    def train_loss(x):
        return tf.reduce_sum((w * a - x) ** 2), {"wa": tf.reduce_sum(w * a)}

    def held_out_loss(x):
        return tf.reduce_sum((w * a - 2.0 * x) ** 2), {}

    steps = AlternatingSteps(train_loss, held_out_loss, [w], [a],
                             keras.optimizers.SGD(0.1), ArchitectureOptimizer(ArchOptimizerConfig(weight_decay=0.0)))
    with pytest.raises(RuntimeError, match="build"):
        steps.weight_step(tf.constant([1.0, 1.0]))
    steps.build()
    x = tf.constant([1.0, 1.0])
    a_before = a.numpy().copy()
    out = steps.weight_step(x)
    # d/dw sum((w a - x)^2) = 2 a (w a - x) = [2*0.5*(-0.5), 2*0.5*(-1.5)] = [-0.5, -1.5]
    np.testing.assert_allclose(w.numpy(), [1.05, -0.85], rtol=1e-6)
    np.testing.assert_array_equal(a.numpy(), a_before)
    assert float(out["loss"]) == pytest.approx(0.25 + 2.25)
    w_before = w.numpy().copy()
    steps.arch_step(x)
    np.testing.assert_array_equal(w.numpy(), w_before)
    # d/da = 2 sum((w a - 2x) w) = 2 (-1.475 * 1.05 + -2.425 * -0.85) = 1.025 > 0;
    # Adam's first step moves a by lr = 3e-4 against the gradient's sign.
    assert a.numpy()[0] == pytest.approx(0.5 - 3e-4, rel=1e-5)


def test_alternating_steps_reject_overlapping_lists():
    v = keras.Variable(1.0)
    with pytest.raises(ValueError, match="disjoint"):
        AlternatingSteps(None, None, [v], [v], None, None)

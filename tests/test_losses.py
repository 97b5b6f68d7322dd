import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.train import losses

REAL = tf.constant([[2.0], [-0.5]])
FAKE = tf.constant([[-2.0], [0.0]])


def test_hinge_discriminator_loss_by_hand():
    # real: relu(1-2)=0, relu(1+0.5)=1.5 -> 0.75 ; fake: relu(1-2)=0, relu(1+0)=1 -> 0.5
    assert float(losses.hinge_discriminator_loss(REAL, FAKE)) == pytest.approx(1.25)


def test_hinge_generator_loss_by_hand():
    assert float(losses.hinge_generator_loss(FAKE)) == pytest.approx(1.0)


def test_game_value_is_negative_discriminator_loss():
    assert float(losses.game_value(REAL, FAKE)) == pytest.approx(-1.25)


def test_duality_gap_formula():
    v_g_dworst = losses.game_value(tf.constant([0.5, 3.0]), tf.constant([-3.0, -0.2]))
    v_gworst_d = losses.game_value(tf.constant([0.1, 0.1]), tf.constant([0.4, 2.0]))
    # (-(0.25 + 0.4)) - (-(0.9 + 2.2)) = -0.65 + 3.1
    assert float(losses.duality_gap(v_g_dworst, v_gworst_d)) == pytest.approx(2.45)


def test_perfect_discriminator_has_zero_loss():
    real = tf.fill([4, 1], 5.0)
    fake = tf.fill([4, 1], -5.0)
    assert float(losses.hinge_discriminator_loss(real, fake)) == 0.0
    np.testing.assert_allclose(float(losses.hinge_generator_loss(fake)), 5.0)

"""GAN losses as pure functions (TF-GAN naming), and the game's value.

All functions take logits of the discriminator, float32 [batch] or [batch, 1],
and return float32 scalars.
"""

from __future__ import annotations

import tensorflow as tf


def hinge_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(
        tf.nn.relu(1.0 + fake_logits)
    )


def hinge_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """-E[D(G(z))]."""
    return -tf.reduce_mean(fake_logits)


def game_value(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """V(G, D) = -(hinge discriminator loss): D maximises it, G minimises it."""
    return -hinge_discriminator_loss(real_logits, fake_logits)


def duality_gap(value_g_vs_worst_d: tf.Tensor, value_worst_g_vs_d: tf.Tensor) -> tf.Tensor:
    """DG = V(G, D_worst) - V(G_worst, D); >= 0 when the worst cases are exact."""
    return value_g_vs_worst_d - value_worst_g_vs_d

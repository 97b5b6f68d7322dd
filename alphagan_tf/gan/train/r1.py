"""R1 regularization of the discriminator (Mescheder, Geiger and Nowozin, 2018).

    R1 = gamma / 2 * E_x~data |grad_x D(x)|^2

penalises the discriminator's gradient on real images, so D cannot sharpen
around the data faster than the generator follows. Not part of AlphaGAN (the
paper and its code train D with the plain hinge loss; `r1_gamma` 0, the
default, is exactly that): the embedded demo turns it on because the
supernet's inner game otherwise collapses to one template within its few
hundred generator steps (README, "The demo's collapse").

`discriminator_losses` is the one D loss of the search's inner level, the
random-WS trainer and the retraining, so the three D steps stay one rule.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from alphagan_tf.gan.train import losses


def r1_penalty(real_gradients: tf.Tensor, gamma: float) -> tf.Tensor:
    """gamma / 2 * the batch mean of |grad_x D(x)|^2 (per image: sum over H, W, C)."""
    squared = tf.reduce_sum(tf.square(real_gradients), axis=list(range(1, real_gradients.shape.rank)))
    return 0.5 * gamma * tf.reduce_mean(squared)


def discriminator_losses(
    logits: Callable[[tf.Tensor], tf.Tensor], real: tf.Tensor, fake: tf.Tensor, r1_gamma: float = 0.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """The hinge loss of D on a real and a fake batch, and what D descends.

    Call inside the caller's GradientTape (D's variables are differentiated
    through the penalty: a double backward). `logits(images)` runs D in
    training mode; it is called once on `real` and once on `fake`, with or
    without the penalty (so spectral norm's power iteration advances as without).

    Returns:
        (hinge, total): the hinge loss (what the logs show) and hinge + R1 (what
        D descends; the hinge itself when r1_gamma is 0).
    """
    if not r1_gamma:
        hinge = losses.hinge_discriminator_loss(logits(real), logits(fake))
        return hinge, hinge
    with tf.GradientTape() as tape:
        tape.watch(real)
        real_logits = logits(real)
        real_sum = tf.reduce_sum(real_logits)
    gradients = tf.cast(tape.gradient(real_sum, real), real_logits.dtype)
    hinge = losses.hinge_discriminator_loss(real_logits, logits(fake))
    return hinge, hinge + r1_penalty(gradients, r1_gamma)

"""R1 regularization of D (gan/train/r1.py): the penalty by hand, its gradient, and the D steps using it."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.search.config import SearchConfig
from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.space.genotypes import load_genotype
from alphagan_tf.gan.train import losses, r1
from alphagan_tf.gan.train.config import TrainConfig
from alphagan_tf.gan.train.config import TrainRunConfig
from alphagan_tf.gan.train.loop import build_trainer
from alphagan_tf.utils.typed_config import ConfigError


def _linear_d(weights):
    """D(x) = <w, x> per image: grad_x D = w for every image, so R1 = gamma/2 |w|^2."""
    d = keras.layers.Dense(1, use_bias=False)
    d.build((None, weights.size))
    d.kernel.assign(weights.reshape(-1, 1))
    return d, lambda images: d(tf.reshape(images, [tf.shape(images)[0], -1]))


def test_r1_penalty_by_hand():
    grads = tf.constant([[[[1.0, 2.0]]], [[[0.0, -3.0]]]])  # |g|^2 = 5 and 9
    assert float(r1.r1_penalty(grads, 10.0)) == pytest.approx(0.5 * 10.0 * (5 + 9) / 2)


def test_without_gamma_it_is_the_hinge_loss():
    rng = np.random.default_rng(0)
    _, logits = _linear_d(rng.normal(size=12).astype(np.float32))
    real, fake = (tf.constant(rng.normal(size=(3, 2, 2, 3)), tf.float32) for _ in range(2))
    hinge, total = r1.discriminator_losses(logits, real, fake, 0.0)
    assert float(hinge) == float(total) == pytest.approx(
        float(losses.hinge_discriminator_loss(logits(real), logits(fake))))


def test_penalty_and_its_weight_gradient_on_a_linear_d():
    rng = np.random.default_rng(1)
    w = rng.normal(size=12).astype(np.float32)
    d, logits = _linear_d(w)
    real, fake = (tf.constant(rng.normal(size=(4, 2, 2, 3)), tf.float32) for _ in range(2))
    gamma = 3.0
    with tf.GradientTape() as tape:
        hinge, total = r1.discriminator_losses(logits, real, fake, gamma)
    assert float(total - hinge) == pytest.approx(0.5 * gamma * float(w @ w), rel=1e-5)
    with tf.GradientTape() as tape_hinge:
        plain = losses.hinge_discriminator_loss(logits(real), logits(fake))
    # d/dw of gamma/2 |w|^2 is gamma * w: the double backward reaches D's weights.
    expected = tape_hinge.gradient(plain, d.kernel).numpy().ravel() + gamma * w
    np.testing.assert_allclose(tape.gradient(total, d.kernel).numpy().ravel(), expected, rtol=1e-5, atol=1e-6)


def _trainer(r1_gamma):
    config = TrainRunConfig(
        train=TrainConfig(g_iterations=1, n_critic=1, g_batch_size=4, d_batch_size=4, d_lr=1e-2,
                          r1_gamma=r1_gamma),
        genotype="alphaGAN_s", model=GeneratorConfig(gf=8, df=8, latent_dim=8, bottom_width=2), seed=0,
    )
    keras.utils.set_random_seed(0)
    return build_trainer(config, load_genotype("alphaGAN_s"))


def _r1_of(discriminator, real):
    with tf.GradientTape() as tape:
        tape.watch(real)
        out = tf.reduce_sum(discriminator(real, training=False))
    return float(r1.r1_penalty(tape.gradient(out, real), 1.0))


def test_the_retraining_d_step_descends_the_penalty():
    real = tf.random.stateless_uniform([4, 16, 16, 3], seed=[0, 1], minval=-1, maxval=1)
    plain, penalised = _trainer(0.0), _trainer(1e4)  # the same initial G and D (same seed)
    # Both return the hinge loss of the same D on the same batches (logs stay comparable) ...
    assert float(penalised.d_step(real)) == pytest.approx(float(plain.d_step(real)), rel=1e-5)
    for _ in range(2):
        plain.d_step(real), penalised.d_step(real)
    # ... but the penalised D moved to a smaller gradient at the real images. (Measured after
    # the same number of training-mode calls, so spectral norm's power iteration is alike.)
    after_plain, after_penalised = _r1_of(plain.discriminator, real), _r1_of(penalised.discriminator, real)
    print(f"|grad_x D(real)|^2 / 2 after 3 D steps: plain {after_plain:.4g}, penalised {after_penalised:.4g}")
    assert after_penalised < 0.8 * after_plain


def test_gamma_is_validated():
    with pytest.raises(ConfigError, match="r1_gamma"):
        TrainConfig(r1_gamma=-1.0)
    with pytest.raises(ConfigError, match="r1_gamma"):
        SearchConfig(r1_gamma=float("nan"))
    assert dataclasses.replace(SearchConfig(), r1_gamma=10.0).r1_gamma == 10.0

"""Retraining a derived (fixed) generator: the GAN game with an EMA of G.

The spec's protocol ("Retraining a derived generator"): hinge loss, Adam 2e-4
betas (0.0, 0.9) for both players, n_critic 5 discriminator steps per
generator step, G batch 128 and D batch 64, spectral norm on D only, and an
exponential moving average (0.999) of G's weights used for sampling and
evaluation. One *generator iteration* = n_critic D steps + one G step.

Distribution: the steps run under a `tf.distribute` strategy (default: the one
device), as the search's do (`utils/data_parallel.py`): each step draws the
global batch of latents in cross-replica context, every replica trains on its
slice of them and of the real batch with its share of the global-batch mean
loss, and the EMA is updated once per G step in cross-replica context. With the
generator's batch norms synchronized, N replicas compute what one device
computes on the same global batches (a test checks MirroredStrategy on two CPU
devices against one device, a resume included).
"""

from __future__ import annotations

from typing import Iterator

import keras
import tensorflow as tf

from alphagan_tf.gan.train import losses, lr_decay, r1
from alphagan_tf.gan.train.config import TrainConfig
from alphagan_tf.gan.train.ema import WeightEMA
from alphagan_tf.nas.adam import PyTorchAdam
from alphagan_tf.utils import precision, step_loop
from alphagan_tf.utils.data_parallel import DataParallel


class GANTrainer:
    """Owns G, D, the EMA generator, their optimizers and two compiled steps.

    Args:
        generator: the fixed Generator being trained.
        discriminator: the discriminator.
        ema_generator: a Generator of identical structure holding the EMA.
        image_shape: (H, W, 3) of real batches.
        config: the retraining hyperparameters.
        seed: seed of the latent generator.
        strategy: the `tf.distribute` strategy to run the steps under (default:
            the current one, i.e. one device). The generators must have been
            built under its scope; the discriminator and the optimizers are
            built here, under it.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        ema_generator: keras.Model,
        image_shape: tuple[int, int, int],
        config: TrainConfig = TrainConfig(),
        seed: int = 0,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.config = config
        self.parallel = DataParallel(strategy)
        self.parallel.check_batch(config.g_batch_size, "g_batch_size")
        self.parallel.check_batch(config.d_batch_size, "d_batch_size")
        self.generator = generator
        self.discriminator = discriminator
        self.ema_generator = ema_generator
        # Host-side state, outside the strategy: the latents of the global batch
        # are drawn in cross-replica context, exactly as on one device.
        self.latent_rng = tf.random.Generator.from_seed(seed)
        self.g_iterations_done = tf.Variable(0, dtype=tf.int64, trainable=False,
                                             name="g_iterations_done")
        with self.parallel.strategy.scope():
            self._build(image_shape)

        # No AutoGraph: the steps have no tensor-dependent Python control flow, and converting
        # every Keras layer call made tracing several times slower.
        self.d_step = tf.function(self._d_step, autograph=False, jit_compile=config.jit_compile)
        self.g_step = tf.function(self._g_step, autograph=False, jit_compile=config.jit_compile)
        # The loop holds the data iterator's get_next, which XLA cannot compile: a plain
        # tf.function calling the (possibly XLA-compiled) steps.
        self.iterations = tf.function(self._iterations, autograph=False)

    def _build(self, image_shape) -> None:
        """Every variable and optimizer slot, under the strategy's scope."""
        config, generator, ema_generator = self.config, self.generator, self.ema_generator
        discriminator = self.discriminator
        z = tf.zeros([2, generator.latent_dim])
        for g in (generator, ema_generator):
            fake = g(z, training=False)
            if tuple(fake.shape[1:]) != tuple(image_shape):
                raise ValueError(
                    f"The generator makes images of shape {tuple(fake.shape[1:])} but the data "
                    f"has {tuple(image_shape)}: bottom_width * 8 must equal the image size."
                )
        discriminator(tf.zeros([2, *image_shape]), training=False)
        self.parallel.check_built_in_scope("retraining", generator, discriminator, ema_generator)

        adam = dict(beta_1=config.beta_1, beta_2=config.beta_2)
        self.g_optimizer = precision.with_loss_scaling(
            PyTorchAdam(self._learning_rate(config.g_lr), name="g_adam", **adam),
            config.loss_scaling)
        self.d_optimizer = precision.with_loss_scaling(
            PyTorchAdam(self._learning_rate(config.d_lr), name="d_adam", **adam),
            config.loss_scaling)
        self.g_optimizer.build(generator.trainable_variables)
        self.d_optimizer.build(discriminator.trainable_variables)
        self.ema = WeightEMA(generator, ema_generator, config.ema_decay)
        self.ema.initialize()

    def _learning_rate(self, initial: float):
        """`initial`, or with `config.lr_decay` its decay over the G iterations done."""
        config = self.config
        if not config.lr_decay:
            return initial
        return lr_decay.linear_decay(initial, self.g_iterations_done, config.n_critic,
                                     config.lr_decay_start, config.g_iterations * config.n_critic)

    def checked_variables(self) -> list[tf.Variable]:
        """What the divergence guard checks before a checkpoint: G, D and the EMA G."""
        return [*self.generator.variables, *self.discriminator.variables,
                *self.ema_generator.variables]

    def _latents(self, batch_size: int) -> tf.Tensor:
        return self.latent_rng.normal([batch_size, self.generator.latent_dim])

    # Each step runs in cross-replica context: it draws the global latents and runs
    # its `_replica` part on every replica with its slice of the batches (`self.parallel`).

    def _d_step(self, real: tf.Tensor) -> tf.Tensor:
        return self.parallel.run(self._d_replica, real, self._latents(self.config.d_batch_size))

    def _d_replica(self, real, z):
        fake = self.generator(z, training=True)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            # Two training-mode calls, each one spectral-norm power iteration, as the reference.
            hinge, total = r1.discriminator_losses(
                lambda images: precision.to_float32(self.discriminator(images, training=True)),
                real, fake, self.config.r1_gamma,
            )
            loss, total = self.parallel.share(hinge), self.parallel.share(total)
            scaled = self.d_optimizer.scale_loss(total)
        self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss

    def _g_step(self) -> tf.Tensor:
        loss = self.parallel.run(self._g_replica, self._latents(self.config.g_batch_size))
        self.ema.update()  # once, on the all-reduced weights every replica now holds
        self.g_iterations_done.assign_add(1)
        return loss

    def _g_replica(self, z):
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            fake_logits = precision.to_float32(self.discriminator(fake, training=True))
            loss = self.parallel.share(losses.hinge_generator_loss(fake_logits))
            scaled = self.g_optimizer.scale_loss(loss)
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss

    def _iterations(self, real_batches, count):
        """`count` G iterations: n_critic D steps, then the G step (+ EMA); per-iteration losses."""
        n_critic = self.config.n_critic

        def iteration(i):
            d_losses = [tf.cast(self.d_step(real_batches.get_next()), tf.float64)
                        for _ in range(n_critic)]
            return {"d_loss": tf.add_n(d_losses) / n_critic,
                    "g_loss": tf.cast(self.g_step(), tf.float64)}

        return step_loop.repeat(count, iteration, ("d_loss", "g_loss"), tf.float64)

    def run_iterations(self, real_batches: Iterator[tf.Tensor], count: int) -> list[dict[str, float]]:
        """`count` G iterations in one compiled call; each iteration's mean D loss and G loss."""
        calls = self.iterations(step_loop.tf_iterator(real_batches), tf.constant(count))
        out = {k: v.numpy() for k, v in calls.items()}
        return [{"d_loss": float(d), "g_loss": float(g)} for d, g in zip(out["d_loss"], out["g_loss"])]

    def train_iteration(self, real_batches: Iterator[tf.Tensor]) -> dict[str, float]:
        """n_critic discriminator steps, then one generator step (+ EMA update)."""
        return self.run_iterations(real_batches, 1)[0]

    def learning_rates(self) -> dict:
        """{name: (optimizer, the config's rate)}: what a resumed run puts back in force."""
        return {"g_adam": (self.g_optimizer, self.config.g_lr),
                "d_adam": (self.d_optimizer, self.config.d_lr)}

    def checkpoint_items(self) -> dict:
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "ema_generator": self.ema_generator,
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
            "latent_rng": self.latent_rng,
            "g_iterations_done": self.g_iterations_done,
        }

"""The bi-level AlphaGAN search (weights by the GAN game, alpha by the duality gap) and its run.

One search epoch (spec "Search"):

1. Inner level: `inner_steps` discriminator steps on the weight half of the
   data, each followed by a generator step when the number of discriminator
   steps taken before it is a multiple of `n_critic` (so the first D step of a
   search is followed by a G step, as in the reference's `train_gan_parameter`;
   hinge loss; only network weights move, never alpha).
2. Worst-case players: the current G and D are *assigned* into two persistent
   copies (G_worst, D_worst), whose optimizers get fresh state; then
   `worst_steps` steps: D_worst maximises V(G, D_worst) (descends the hinge
   discriminator loss) against the current G, G_worst (weights only, its alphas
   frozen) descends the hinge generator loss -E[D(G_worst(z))] against the
   current D, as the reference's `find_worst` does.
3. Outer level: `outer_steps` architecture steps on the architecture half:
   minimise DG(alpha) = V(G_alpha, D_worst) - V(G_worst, D). Only the first term
   depends on alpha; the second is constant during the outer level (G_worst and
   D do not move), so it is measured once per epoch on one architecture batch
   (`worst_value_step`) and each alpha step measures the first term on its own
   batch. (Measuring V(G_worst, D) in every alpha step, as a per-step loss would,
   costs a G_worst forward each time and changes no alpha.)

V(G, D) = -(hinge discriminator loss), for every player (`losses.game_value`).
The inner level uses the weight half of the data; D_worst and the gap use the
architecture half, as the reference does (`find_worst` and the architect both
take its `valid_queue`). The worst-case players train at g_lr / d_lr up to epoch
`worst_lr_halving_epoch` (30) and at half of them after it, as in the
reference's `train_gan_alpha`. Every network runs in training mode throughout the
search, as every module of the reference does: generators use batch
statistics, and every discriminator forward pass (real and fake batches are
separate calls) advances its spectral-norm power iteration once, as a PyTorch
`spectral_norm` module in train() mode does. The optimizers are Adam with
PyTorch's update (`nas/adam.py`). A parity test runs one whole search iteration
of the authors' code beside this one (tests/test_parity_search.py).

Every step is a `tf.function` compiled once: all variables and optimizer slots
exist before the first trace, steps take fixed-shape batches and return
scalars, and the latent vectors come from a checkpointed `tf.random.Generator`.

Distribution: the steps run under a `tf.distribute` strategy (default: the one
device), as `utils/data_parallel.py` describes: each step draws the global batch
of latents in cross-replica context, as on one device, and hands every replica
its slice of the latents and of the real batch; each replica's loss is its share
of the global-batch mean. With the generator's batch norms synchronized
(`synchronized_bn`), N replicas compute what one device computes on the global
batch (a test checks MirroredStrategy on two CPU devices against one device).

The run, `run_search(config, workdir)` (what `python -m alphagan_tf.search` calls), writes
in `workdir`:

    search_config.json      the run's configuration (read by `train --init_from`)
    checkpoints/            tf.train.CheckpointManager: weights, alphas, every optimizer,
                            data iterators, latent RNG, epoch (one per epoch)
    genotype_history.json   the derived genotype and softmax(alpha) of every epoch
    tensorboard/            losses, duality gap, diversity ratio, alpha heatmaps,
                            genotype text, samples
    genotype.json           the final derived genotype (load with --genotype=PATH)
    alpha_history.png       how each edge's op weights moved
    samples.png             a grid from the final supernet
    search_summary.json     the final numbers

Every epoch the supernet draws the 64 fixed latents of samples.png (inference
mode) and their diversity ratio against 64 real images of the architecture half
(`metrics.diversity`: 1 = as spread as the data, 0 = one image) goes to the
epoch line, TensorBoard (`search/diversity_ratio`) and the history; below
`diversity.COLLAPSE_THRESHOLD` a warning says the generator may have collapsed.

Re-running with the same workdir resumes from the last checkpoint. Under
`strategy="multi_worker"` only the chief writes these files (the other workers
write to a temporary folder) and every worker resumes from the chief's
checkpoints. Files are written atomically (temporary file + rename), so a kill at
any moment leaves every earlier result intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from alphagan_tf.data.pipeline import search_datasets
from alphagan_tf.gan.run_devices import apply_device_choices
from alphagan_tf.gan.search.config import (
    SearchConfig, SearchResult, SearchRunConfig, build_adam, build_players,
)
from alphagan_tf.gan.space import depthwise
from alphagan_tf.gan.space.search_generator import SearchGenerator
from alphagan_tf.gan.train import losses, r1
from alphagan_tf.metrics import diversity
from alphagan_tf.nas.arch_optimizer import ArchitectureOptimizer
from alphagan_tf.nas.architecture import softmax
from alphagan_tf.utils import distribution, images, plots, precision, seeding, step_loop
from alphagan_tf.utils.data_parallel import DataParallel
from alphagan_tf.utils.progress import format_metrics
from alphagan_tf.utils.workdir import Workdir


class _FreshOptimizer:
    """An Adam whose state can be reset to 'just built' (worst-case players)."""

    def __init__(self, variables, learning_rate, beta1, beta2, name, loss_scaling=False):
        self.optimizer = build_adam(learning_rate, beta1, beta2, name, loss_scaling)
        self.optimizer.build(variables)
        self._initial = [v.numpy() for v in self.optimizer.variables]

    def reset(self, learning_rate: float | None = None) -> None:
        """Back to 'just built'; optionally with another learning rate."""
        for variable, value in zip(self.optimizer.variables, self._initial):
            variable.assign(value)
        if learning_rate is not None:
            self.optimizer.learning_rate.assign(learning_rate)


def _assign_all(source: keras.Model, target: keras.Model) -> None:
    """target's state := source's state (weights, alphas, BN statistics, SN vectors)."""
    src, dst = source.variables, target.variables
    if len(src) != len(dst):
        raise ValueError(
            f"Cannot copy {source.name} into {target.name}: different variable counts. "
            f"Received: {len(src)} vs {len(dst)}"
        )
    for s, d in zip(src, dst):
        if tuple(s.shape) != tuple(d.shape):
            raise ValueError(
                f"Cannot copy {s.path} into {d.path}. Received: shapes {s.shape} vs {d.shape}"
            )
        d.assign(s)


class BilevelSearcher:
    """Owns the four players, their optimizers and the compiled steps.

    Args:
        generator: a SearchGenerator (holds alpha; `arch_variables`,
            `weight_variables`).
        discriminator: the discriminator.
        worst_generator: a second SearchGenerator of identical structure.
        worst_discriminator: a second discriminator of identical structure.
        image_shape: (H, W, 3) of the real batches.
        config: the search hyperparameters.
        seed: seed of the latent-vector generator.
        strategy: the `tf.distribute` strategy to run the steps under (default:
            the current one, i.e. one device). The four players must have been
            built under its scope; the optimizers are built here, under it.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        worst_generator: keras.Model,
        worst_discriminator: keras.Model,
        image_shape: tuple[int, int, int],
        config: SearchConfig = SearchConfig(),
        seed: int = 0,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.config = config
        self.parallel = DataParallel(strategy)
        self.strategy, self.replicas = self.parallel.strategy, self.parallel.replicas
        self.parallel.check_batch(config.batch_size, "batch_size")
        self.generator = generator
        self.discriminator = discriminator
        self.worst_generator = worst_generator
        self.worst_discriminator = worst_discriminator
        # Host-side state, outside the strategy: the latents of the global batch
        # are drawn in cross-replica context, exactly as on one device.
        self.latent_rng = tf.random.Generator.from_seed(seed)
        self.d_steps_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="d_steps_done")
        with self.strategy.scope():
            self._build(image_shape)

        # No AutoGraph: the steps have no tensor-dependent Python control flow, and
        # converting every Keras layer call is ~15% of the (minute-long) tracing.
        compile_step = lambda fn: tf.function(  # noqa: E731
            fn, jit_compile=config.jit_compile, autograph=False
        )
        self.d_step = compile_step(self._d_step)
        self.g_step = compile_step(self._g_step)
        self.worst_d_step = compile_step(self._worst_d_step)
        self.worst_g_step = compile_step(self._worst_g_step)
        self.worst_value_step = compile_step(self._worst_value_step)
        self.arch_step = compile_step(self._arch_step)
        # The loops over steps hold the data iterators' get_next, which XLA cannot compile:
        # they are plain tf.functions calling the (possibly XLA-compiled) steps.
        loop = lambda fn: tf.function(fn, autograph=False)  # noqa: E731
        self.inner_steps = loop(self._inner_steps)
        self.worst_steps = loop(self._worst_steps)
        self.arch_steps = loop(self._arch_steps)

    def _build(self, image_shape) -> None:
        """Every player variable and optimizer slot, under the strategy's scope."""
        config = self.config
        generator, discriminator = self.generator, self.discriminator
        worst_generator, worst_discriminator = self.worst_generator, self.worst_discriminator

        # Build every variable before the first trace.
        z = tf.zeros([2, generator.latent_dim])
        images = tf.zeros([2, *image_shape])
        for g, d in ((generator, discriminator), (worst_generator, worst_discriminator)):
            fake = g(z, training=False)
            if tuple(fake.shape[1:]) != tuple(image_shape):
                raise ValueError(
                    f"The generator makes images of shape {tuple(fake.shape[1:])} but the data "
                    f"has {tuple(image_shape)}: bottom_width * 8 must equal the image size."
                )
            d(images, training=False)
        self.parallel.check_built_in_scope(
            "search", generator, discriminator, worst_generator, worst_discriminator)

        scaling = config.loss_scaling
        self.g_optimizer = build_adam(config.g_lr, config.beta_1, config.beta_2, "g_adam", scaling)
        self.d_optimizer = build_adam(config.d_lr, config.beta_1, config.beta_2, "d_adam", scaling)
        self.g_optimizer.build(generator.weight_variables)
        self.d_optimizer.build(discriminator.trainable_variables)
        self.worst_g_optimizer = _FreshOptimizer(
            worst_generator.weight_variables, config.g_lr, config.beta_1, config.beta_2, "g_worst_adam",
            scaling,
        )
        self.worst_d_optimizer = _FreshOptimizer(
            worst_discriminator.trainable_variables, config.d_lr, config.beta_1, config.beta_2,
            "d_worst_adam", scaling,
        )
        self.arch_optimizer = ArchitectureOptimizer(config.arch, loss_scaling=scaling)
        self.arch_optimizer.build(generator.arch_variables)

    # -- the six compiled steps ----------------------------------------------
    # Each `_x_step` runs in cross-replica context: it draws the global latents
    # and runs `_x_replica` on every replica with its slice of the batches
    # (`self.parallel`, utils/data_parallel.py).

    def _latents(self) -> tf.Tensor:
        return self.latent_rng.normal([self.config.batch_size, self.generator.latent_dim])

    @staticmethod
    def _generate(generator, z) -> tf.Tensor:
        """G(z) in training mode, as float32 (float16/bfloat16 compute) or float64."""
        return precision.to_float32(generator(z, training=True))

    @staticmethod
    def _logits(discriminator, images) -> tf.Tensor:
        """D(images) in training mode (one spectral-norm power iteration), float32 or float64."""
        return precision.to_float32(discriminator(images, training=True))

    def _d_step(self, real: tf.Tensor) -> tf.Tensor:
        loss = self.parallel.run(self._d_replica, real, self._latents())
        self.d_steps_done.assign_add(1)
        return loss

    def _d_replica(self, real, z):
        """Inner level: D descends the hinge loss against the current G."""
        fake = self._generate(self.generator, z)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            hinge, total = r1.discriminator_losses(
                lambda images: self._logits(self.discriminator, images), real, fake, self.config.r1_gamma
            )
            loss, total = self.parallel.share(hinge), self.parallel.share(total)
            scaled = self.d_optimizer.scale_loss(total)
        self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss

    def _g_step(self) -> tf.Tensor:
        return self.parallel.run(self._g_replica, self._latents())

    def _g_replica(self, z):
        """Inner level: G's network weights (not alpha) descend the hinge G loss."""
        variables = self.generator.weight_variables
        with tf.GradientTape() as tape:
            fake = self._generate(self.generator, z)
            logits = self._logits(self.discriminator, fake)
            loss = self.parallel.share(losses.hinge_generator_loss(logits))
            scaled = self.g_optimizer.scale_loss(loss)
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss

    def _worst_d_step(self, real: tf.Tensor) -> tf.Tensor:
        return self.parallel.run(self._worst_d_replica, real, self._latents())

    def _worst_d_replica(self, real, z):
        """D_worst maximises V(G, D_worst) against the current G. Returns V."""
        fake = self._generate(self.generator, z)
        variables = self.worst_discriminator.trainable_variables
        optimizer = self.worst_d_optimizer.optimizer
        with tf.GradientTape() as tape:
            real_logits = self._logits(self.worst_discriminator, real)
            fake_logits = self._logits(self.worst_discriminator, fake)
            value = self.parallel.share(losses.game_value(real_logits, fake_logits))
            scaled = optimizer.scale_loss(-value)
        optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return value

    def _worst_g_step(self) -> tf.Tensor:
        return self.parallel.run(self._worst_g_replica, self._latents())

    def _worst_g_replica(self, z):
        """G_worst's weights descend the hinge G loss against the current D. Returns the loss."""
        variables = self.worst_generator.weight_variables
        optimizer = self.worst_g_optimizer.optimizer
        with tf.GradientTape() as tape:
            fake = self._generate(self.worst_generator, z)
            logits = self._logits(self.discriminator, fake)
            loss = self.parallel.share(losses.hinge_generator_loss(logits))
            scaled = optimizer.scale_loss(loss)
        optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss

    def _worst_value_step(self, real: tf.Tensor) -> tf.Tensor:
        return self.parallel.run(self._worst_value_replica, real, self._latents())

    def _worst_value_replica(self, real, z):
        """V(G_worst, D): DG's second term, constant during the outer level."""
        return self.parallel.share(losses.game_value(
            self._logits(self.discriminator, real),
            self._logits(self.discriminator, self._generate(self.worst_generator, z)),
        ))

    def _arch_step(self, real: tf.Tensor, value_worst_g_vs_d: tf.Tensor) -> dict[str, tf.Tensor]:
        value_g_vs_worst_d = self.parallel.run(self._arch_replica, real, self._latents())
        return {
            "duality_gap": losses.duality_gap(value_g_vs_worst_d, value_worst_g_vs_d),
            "value_g_vs_worst_d": value_g_vs_worst_d,
            "value_worst_g_vs_d": tf.identity(value_worst_g_vs_d),
        }

    def _arch_replica(self, real, z):
        """Outer level: alpha descends DG = V(G_alpha, D_worst) - V(G_worst, D).

        Only the first term depends on alpha, so d DG / d alpha = d V(G_alpha, D_worst) / d alpha.
        """
        variables = self.generator.arch_variables
        real_logits_worst_d = self._logits(self.worst_discriminator, real)
        with tf.GradientTape() as tape:
            fake = self._generate(self.generator, z)
            value_g_vs_worst_d = self.parallel.share(
                losses.game_value(real_logits_worst_d, self._logits(self.worst_discriminator, fake))
            )
            scaled = self.arch_optimizer.scale_loss(value_g_vs_worst_d)
        with depthwise.without_kernel_gradient():  # d/d alpha only: no kernel gradient work
            gradients = tape.gradient(scaled, variables)
        self.arch_optimizer.apply(gradients, variables)
        return value_g_vs_worst_d

    # -- one epoch ---------------------------------------------------------------

    def worst_learning_rates(self, epoch: int | None) -> tuple[float, float]:
        """(G_worst, D_worst) learning rates of `epoch` (1-based): halved after the halving epoch."""
        c = self.config
        factor = 0.5 if epoch and c.worst_lr_halving_epoch and epoch > c.worst_lr_halving_epoch else 1.0
        return c.g_lr * factor, c.d_lr * factor

    def make_worst_players(self, epoch: int | None = None) -> None:
        """Assign the current G and D into the worst-case players; fresh optimizers.

        `epoch` (1-based) sets their learning rates (`worst_learning_rates`).
        """
        _assign_all(self.generator, self.worst_generator)
        _assign_all(self.discriminator, self.worst_discriminator)
        g_lr, d_lr = self.worst_learning_rates(epoch)
        self.worst_g_optimizer.reset(g_lr)
        self.worst_d_optimizer.reset(d_lr)

    @property
    def steps_per_epoch(self) -> int:
        c = self.config
        return c.inner_steps + c.worst_steps + c.outer_steps

    # -- loops of steps: `count` steps in one call, per-step values back once ------------

    def _loss_dtype(self):
        return precision.to_float32(tf.zeros([], self.generator.compute_dtype)).dtype

    def _inner_steps(self, weight_batches, count, n_critic):
        """`count` inner-level D steps, each followed by a G step when due (d steps % n_critic)."""
        first = tf.identity(self.d_steps_done)
        n_critic = tf.cast(n_critic, tf.int64)

        def step(i):
            g_due = tf.equal((first + tf.cast(i, tf.int64)) % n_critic, 0)
            d_loss = self.d_step(weight_batches.get_next())
            g_loss = tf.cond(g_due, self.g_step, lambda: tf.zeros_like(d_loss))
            return {"d_loss": d_loss, "g_loss": g_loss, "g_ran": tf.cast(g_due, d_loss.dtype)}

        return step_loop.repeat(count, step, ("d_loss", "g_loss", "g_ran"), self._loss_dtype())

    def _worst_steps(self, arch_batches, count):
        """`count` worst-case steps: D_worst on an architecture batch, then G_worst."""

        def step(i):
            return {"v_g_dworst": self.worst_d_step(arch_batches.get_next()),
                    "g_worst_loss": self.worst_g_step()}

        return step_loop.repeat(count, step, ("v_g_dworst", "g_worst_loss"), self._loss_dtype())

    def _arch_steps(self, arch_batches, value_worst_g_vs_d, count):
        """`count` architecture steps, each on its own architecture batch."""

        def step(i):
            return {"dg": self.arch_step(arch_batches.get_next(), value_worst_g_vs_d)["duality_gap"]}

        return step_loop.repeat(count, step, ("dg",), self._loss_dtype())

    def run_epoch(
        self,
        weight_batches: Iterator[tf.Tensor],
        arch_batches: Iterator[tf.Tensor],
        progbar: keras.utils.Progbar | None = None,
        epoch: int | None = None,
    ) -> dict[str, float]:
        """One search epoch (`epoch`, 1-based, sets the worst-case learning rates).

        The steps run `steps_per_call` at a time in compiled loops, whose per-step values
        come back to the host once per call. Returns the epoch's mean losses and duality
        gap; a value no step of this epoch produced (`g_loss` when `inner_steps` <
        `n_critic` left the epoch without a G step) is left out, not NaN.
        """
        c = self.config
        weight_batches = step_loop.tf_iterator(weight_batches)
        arch_batches = step_loop.tf_iterator(arch_batches)
        values: dict[str, list[np.ndarray]] = {}
        done = 0

        def record(out: dict) -> None:
            nonlocal done
            out = {k: np.asarray(v, np.float64) for k, v in out.items()}
            if "g_ran" in out:
                ran = out.pop("g_ran").astype(bool)
                out["g_loss"] = out["g_loss"][ran]
            for name, array in out.items():
                values.setdefault(name, []).append(array)
            done += len(next(iter(v for k, v in out.items() if k != "g_loss")))
            if progbar is not None:
                progbar.update(done, [(k, float(v[-1])) for k, v in out.items() if len(v)])

        for count in step_loop.chunks(c.inner_steps, c.steps_per_call):
            record(self.inner_steps(weight_batches, tf.constant(count), tf.constant(c.n_critic)))
        self.make_worst_players(epoch)
        for count in step_loop.chunks(c.worst_steps, c.steps_per_call):
            # As the reference's find_worst: D_worst trains on the architecture half.
            record(self.worst_steps(arch_batches, tf.constant(count)))
        # G_worst and D stay fixed during the outer level: DG's second term is measured
        # once, on one architecture batch, and each alpha step measures the first.
        value_worst_g_vs_d = self.worst_value_step(next(arch_batches))
        for count in step_loop.chunks(c.outer_steps, c.steps_per_call):
            record(self.arch_steps(arch_batches, value_worst_g_vs_d, tf.constant(count)))

        names = {"d_loss": "d_loss", "g_loss": "g_loss", "v_g_dworst": "worst_d_value",
                 "g_worst_loss": "worst_g_loss", "dg": "duality_gap"}
        means = {}
        for name, key in names.items():
            array = np.concatenate(values.get(name, [np.zeros(0)]))
            if array.size:
                means[key] = float(np.mean(array))
        return means

    def learning_rates(self) -> dict:
        """{name: (optimizer, the config's rate)}: what a resumed search puts back in force.
        (The worst-case players' optimizers are not checkpointed: `make_worst_players` sets
        their rates from the config every epoch.)"""
        c = self.config
        return {"g_adam": (self.g_optimizer, c.g_lr), "d_adam": (self.d_optimizer, c.d_lr),
                "arch_adam": (self.arch_optimizer.optimizer, c.arch.learning_rate)}

    def worst_optimizers(self) -> dict:
        """{name: optimizer} of the worst-case players (their rates go to TensorBoard too)."""
        return {"g_worst_adam": self.worst_g_optimizer.optimizer,
                "d_worst_adam": self.worst_d_optimizer.optimizer}

    def checkpoint_items(self) -> dict:
        """Everything a resumed search needs (worst players are rebuilt each epoch)."""
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
            "arch_optimizer": self.arch_optimizer.optimizer,
            "latent_rng": self.latent_rng,
            "d_steps_done": self.d_steps_done,
        }

    def checked_variables(self) -> list[tf.Variable]:
        """What the divergence guard checks before a checkpoint: G's weights and alphas, D."""
        return [*self.generator.variables, *self.discriminator.variables]

    def tracing_counts(self) -> dict[str, int]:
        """How often each compiled step has been traced (1 each after warm-up)."""
        return {
            name: getattr(self, name).experimental_get_tracing_count()
            for name in (
                "d_step", "g_step", "worst_d_step", "worst_g_step", "worst_value_step", "arch_step",
                "inner_steps", "worst_steps", "arch_steps",
            )
        }


def alpha_snapshot(generator: SearchGenerator) -> dict:
    """{edge: {"kind", "ops", "alpha", "softmax"}} of the current architecture weights."""
    snapshot = {}
    for edge, kind, op_names, alpha in generator.edge_alphas():
        values = np.asarray(alpha.numpy(), np.float64)
        snapshot[edge] = {
            "kind": kind,
            "ops": list(op_names),
            "alpha": values.round(6).tolist(),
            "softmax": softmax(values).round(6).tolist(),
        }
    return snapshot


def build_searcher(config: SearchRunConfig) -> BilevelSearcher:
    """The four players (current and worst-case G and D) and their steps.

    Under a multi-replica strategy the players are built in its scope with
    synchronized batch norms (global-batch statistics, as on one device).
    """
    strategy = distribution.strategy_from_config(config)
    search = config.search
    if precision.uses_loss_scaling(config.precision):
        search = dataclasses.replace(search, loss_scaling=True)
    synchronized_bn = strategy.num_replicas_in_sync > 1
    precision.warn_if_emulated(config.precision)
    with precision.dtype_policy(config.precision), strategy.scope():
        generator, discriminator = build_players(config, synchronized_bn)
        worst_generator, worst_discriminator = build_players(config, synchronized_bn)
    size = config.image_size
    return BilevelSearcher(
        generator, discriminator, worst_generator, worst_discriminator,
        image_shape=(size, size, 3), config=search, seed=config.seed, strategy=strategy,
    )


class _Summaries:
    """TensorBoard: scalars every epoch, alpha heatmaps, genotype text, samples."""

    def __init__(self, run: Workdir):
        self.run = run

    @property
    def writer(self):
        return self.run.writer

    def epoch(self, epoch: int, metrics: dict, snapshot: dict, genotype) -> None:
        with self.writer.as_default(step=epoch):
            for name, value in metrics.items():
                tf.summary.scalar(f"search/{name}", value)
            for kind in ("normal", "up"):
                edges = [e for e, s in snapshot.items() if s["kind"] == kind]
                if not edges:
                    continue
                png = plots.alpha_heatmap_png(
                    np.array([snapshot[e]["softmax"] for e in edges]),
                    edges, snapshot[edges[0]]["ops"], f"softmax(alpha), {kind} edges, epoch {epoch}",
                )
                tf.summary.image(f"alpha/{kind}", tf.io.decode_png(png, channels=3)[None])
            tf.summary.text("genotype", "```\n" + genotype.table() + "\n```")
        self.writer.flush()

    def samples(self, epoch: int, grid: np.ndarray) -> None:
        with self.writer.as_default(step=epoch):
            tf.summary.image("samples", grid[None])
        self.writer.flush()


def run_search(
    config: SearchRunConfig,
    workdir: str,
    verbose: int = 1,
    searcher: BilevelSearcher | None = None,
) -> SearchResult:
    """Search (or resume searching) an architecture; see the module docstring.

    Args:
        config: the run's configuration.
        workdir: where results and checkpoints go; resumes from its last checkpoint.
        verbose: 0 silent, 1 a progress bar per epoch and a summary line.
        searcher: players and compiled steps to use instead of building new ones
            from `config` (which must describe them): tracing the steps of the
            supernet takes about a minute, so tests reuse one searcher. Its state
            is overwritten by the checkpoint when resuming.
    """
    distribution.prepare_cpu(config.cpu_devices)  # before the first TensorFlow op
    chief = distribution.is_chief(config)  # starts a multi-worker strategy (before the first op)
    run = Workdir.open(workdir, config, "search_config.json",
                       resumable=SearchRunConfig.RESUMABLE, verbose=bool(verbose), chief=chief)
    seeding.seed_everything(config.seed)
    apply_device_choices(config, verbose)

    data = search_datasets(
        config.data.dataset,
        image_size=config.image_size,
        batch_size=config.search.batch_size,
        seed=config.seed,
        **config.data.loader_kwargs(),
    )
    if searcher is None:
        searcher = build_searcher(config)
    weight_batches, arch_batches = iter(data.weight), iter(data.arch)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(
        epoch=epoch, weight_batches=weight_batches, arch_batches=arch_batches,
        **searcher.checkpoint_items(),
    )
    manager, restored = run.checkpoints(checkpoint, max_to_keep=config.keep_checkpoints,
                                        learning_rates=searcher.learning_rates())
    history = []
    if restored:
        # Entries written after the last checkpoint (a kill in between) are redone.
        history = [h for h in run.read_json("genotype_history.json", [])
                   if h["epoch"] <= int(epoch.numpy())]
        logging.info("Resumed from %s at epoch %d.", restored, int(epoch.numpy()))
        if verbose:
            print(f"Resuming from {restored} (epoch {int(epoch.numpy())}).")

    summaries = _Summaries(run)
    fixed_latents = tf.random.stateless_normal(
        [64, config.model.latent_dim], seed=[config.seed, 1234]
    )
    # The diversity reference: 64 real images of the architecture half, from a fresh
    # iterator (the checkpointed data iterators do not move).
    real_reference = diversity.first_images(data.arch, 64)
    generator = searcher.generator
    metrics: dict = {}
    start_epoch = int(epoch.numpy())
    distribution.check_workers_agree(searcher.strategy, start_epoch, json.dumps(config.to_dict()))
    if verbose:
        print(
            f"Searching on {config.data.dataset} ({data.num_weight_examples} weight / "
            f"{data.num_arch_examples} architecture images, {config.image_size}x{config.image_size}), "
            f"epochs {start_epoch + 1}..{config.epochs}, "
            f"{searcher.steps_per_epoch} steps per epoch, "
            f"{searcher.replicas} replica(s)."
        )
    for e in range(start_epoch + 1, config.epochs + 1):
        started = time.time()
        progbar = (
            keras.utils.Progbar(searcher.steps_per_epoch, stateful_metrics=None, unit_name="step")
            if verbose else None
        )
        if verbose:
            print(f"Epoch {e}/{config.epochs}")
        metrics = searcher.run_epoch(weight_batches, arch_batches, progbar, epoch=e)
        fake = np.asarray(generator(fixed_latents, training=False), np.float32)
        metrics["diversity_ratio"] = diversity.check_and_warn(fake, real_reference, f"epoch {e}").ratio
        genotype = generator.genotype()
        snapshot = alpha_snapshot(generator)
        run.check(f"epoch {e}", metrics, searcher.checked_variables())
        history.append({"epoch": e, "genotype": genotype.to_dict(), "alphas": snapshot, **metrics})
        run.write_json("genotype_history.json", history)
        summaries.epoch(e, metrics, snapshot, genotype)
        run.write_learning_rates(e, searcher.worst_optimizers())
        if e % config.sample_every == 0 or e == config.epochs:
            summaries.samples(e, images.make_grid(fake))
        epoch.assign(e)
        run.save(manager, e)
        if verbose:
            print(
                f"epoch {e}: {format_metrics(metrics, ('d_loss', 'g_loss'))}  "
                f"DG {metrics['duality_gap']:.4f}  diversity {metrics['diversity_ratio']:.3f}  "
                f"({time.time() - started:.1f}s)  "
                f"ops: {' '.join(genotype.ops())}"
            )

    genotype = generator.genotype()
    run.write_text("genotype.json", genotype.to_json())
    if history:
        plots.plot_alpha_history(history, run.output("alpha_history.png"))
    images.save_grid(np.asarray(generator(fixed_latents, training=False), np.float32),
                     run.output("samples.png"))
    summary = {
        "epochs": config.epochs,
        "genotype": genotype.to_dict(),
        "final_metrics": history[-1] if history else {},
    }
    summary["final_metrics"] = {k: v for k, v in summary["final_metrics"].items() if k != "alphas"}
    run.write_json("search_summary.json", summary)
    run.close()
    if verbose:
        print(f"Search done: {os.path.join(workdir, 'genotype.json')}")
        print(genotype.table())
    return SearchResult(genotype=genotype, workdir=workdir,
                        epochs_run=config.epochs - start_epoch, last_metrics=metrics)

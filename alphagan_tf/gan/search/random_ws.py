"""Random search with weight sharing (random-WS), the authors' baseline of the AlphaGAN search.

    python -m alphagan_tf.search --algorithm=random_ws --flagfile=configs/demo.cfg --workdir=DIR

What the authors ship as `train_search_gan_d_with_g_random_search.py` (Li and
Talwalkar 2019 found random-WS matches DARTS on CIFAR-10), on this project's
supernet, data split and budget:

1. Supernet training. Each epoch takes `inner_steps` discriminator steps on the
   weight half of the data, each followed by a generator step when the number
   of discriminator steps before it is a multiple of `n_critic` (hinge loss,
   PyTorch's Adam; as the differentiable search's inner level, the same steps
   and epochs). Before every discriminator step ONE architecture is drawn
   uniformly (one op per edge, each op of the edge equally likely); the
   discriminator step and the generator step that may follow it use it, as
   the reference does. No worst-case players and no architecture steps: the
   alphas never move and are not used.
2. Derivation. `candidates` architectures are drawn uniformly and each is
   scored on the shared weights by the proxy: the FID of `eval_samples` images
   of the one-shot generator (that architecture's path through the supernet,
   inference mode, the same seeded latents for every candidate) against
   `eval_samples` real images of the architecture half, on the configured
   feature extractor (`--feature_extractor`, as `train` and `evaluate` use it).
   The lowest FID is the result (ties: the earlier candidate). The reference
   ranks its 200 candidates by Inception Score on 50k images; IS is recorded
   too when the extractor has logits.

Sampled path. A sampled architecture runs as a path through the supernet that
executes only the chosen op of every edge (`SearchGenerator(z,
architecture=...)`, `MixedOp`'s `choice`), not as a one-hot weighting of all
ops: the same function, ~1 op per edge instead of 3 or 6. The ops off the path
get zero gradients, as under the reference's one-hot alphas, and PyTorch's Adam
moves them only by their first moment (none at the search's beta_1 = 0); their
batch-norm statistics are not updated (the reference's one-hot weighting runs
every op, so it updates them all).

Every draw is a pure function of (seed, stream, index) (`nas/sampling.py`):
discriminator step s samples with (seed, TRAIN, s), candidate j with (seed,
CANDIDATE, j), the epoch-end sample with (seed, EPOCH_SAMPLE, epoch). With the
step counter, the weights, both optimizers, the latent generator and the data
iterator in the checkpoint, a resumed search takes the same steps as an
uninterrupted one. Rerunning a finished search derives again (no training),
e.g. with more candidates.

Workdir (besides search_config.json, checkpoints/ and tensorboard/ as the
differentiable search writes them)::

    random_ws_history.json   per epoch: losses, diversity ratio of an epoch sample
    candidate_scores.json    the proxy, every candidate's scores and genotype, the best
    genotype.json            the best candidate (the format of the differentiable search's)
    samples.png              64 images of the best candidate's path
    search_summary.json      the final numbers
"""

from __future__ import annotations

import os
import time
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.data.pipeline import search_datasets
from alphagan_tf.gan.run_devices import apply_device_choices
from alphagan_tf.gan.search.config import (
    RandomWSConfig, SearchConfig, SearchResult, SearchRunConfig, build_adam, build_players,
)
from alphagan_tf.gan.space.genotypes import EDGES, Genotype, candidates_for, genotype_from_ops
from alphagan_tf.gan.train import losses, r1
from alphagan_tf.metrics import diversity
from alphagan_tf.metrics.evaluation import compute_real_statistics
from alphagan_tf.metrics.generator_eval import evaluate_generator, feature_extractor_from_spec
from alphagan_tf.metrics.statistics import FeatureStatistics
from alphagan_tf.nas.sampling import stream_seed, uniform_choices
from alphagan_tf.utils import images, seeding
from alphagan_tf.utils.distribution import StrategyError
from alphagan_tf.utils.progress import format_metrics
from alphagan_tf.utils.workdir import Workdir

#: Seed streams: what a draw is for.
TRAIN, CANDIDATE, EPOCH_SAMPLE = range(3)

#: Candidate ops of every edge, in `genotypes.EDGE_NAMES` order.
EDGE_SIZES: tuple[int, ...] = tuple(len(candidates_for(kind)) for _, kind in EDGES)


def sample_architecture(seed: int, stream: int, index: int) -> np.ndarray:
    """int32 [18]: draw `index` of `stream`, one op index per edge, uniform per edge."""
    return uniform_choices(stream_seed(seed, stream, index), EDGE_SIZES)


def architecture_genotype(indices) -> Genotype:
    """The genotype of one op index per edge (`EDGE_NAMES` order)."""
    return genotype_from_ops([candidates_for(kind)[int(i)] for (_, kind), i in zip(EDGES, indices)])


class WeightSharingTrainer:
    """The supernet's G and D trained one sampled architecture per step.

    Args:
        generator: a `SearchGenerator` (its `weight_variables` train; alphas unused).
        discriminator: the discriminator.
        image_shape: (H, W, 3) of the real batches.
        config: the inner level's hyperparameters (`inner_steps`, `n_critic`,
            `batch_size`, learning rates, betas); the latent size is the generator's.
        seed: seed of the latent-vector generator.

    The architectures come from the caller (`run_epoch`'s `seed`).
    `d_step(real, architecture)`, `g_step(architecture)` and
    `predict(z, architecture)` are compiled once for every architecture
    (int32 [18]).
    """

    def __init__(self, generator, discriminator, image_shape, config: SearchConfig, seed: int = 0):
        self.generator, self.discriminator = generator, discriminator
        self.config = config
        self.latent_rng = tf.random.Generator.from_seed(seed)
        self.d_steps_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="d_steps_done")
        discriminator(tf.zeros([2, *image_shape]), training=False)
        self.g_optimizer = build_adam(config.g_lr, config.beta_1, config.beta_2, "g_adam", False)
        self.d_optimizer = build_adam(config.d_lr, config.beta_1, config.beta_2, "d_adam", False)
        self.g_optimizer.build(generator.weight_variables)
        self.d_optimizer.build(discriminator.trainable_variables)
        arch = tf.TensorSpec([len(EDGES)], tf.int32, name="architecture")
        compile_step = lambda fn, *signature: tf.function(  # noqa: E731
            fn, input_signature=signature, jit_compile=config.jit_compile, autograph=False
        )
        self.d_step = compile_step(self._d_step, tf.TensorSpec([None, *image_shape], tf.float32), arch)
        self.g_step = compile_step(self._g_step, arch)
        self.predict = compile_step(
            self._predict, tf.TensorSpec([None, generator.latent_dim], tf.float32), arch
        )

    def _latents(self):
        return self.latent_rng.normal([self.config.batch_size, self.generator.latent_dim])

    def _d_step(self, real, architecture):
        fake = self.generator(self._latents(), training=True, architecture=architecture)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            loss, total = r1.discriminator_losses(
                lambda images: self.discriminator(images, training=True), real, fake, self.config.r1_gamma
            )
        self.d_optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        self.d_steps_done.assign_add(1)
        return loss

    def _g_step(self, architecture):
        variables = self.generator.weight_variables
        with tf.GradientTape() as tape:
            fake = self.generator(self._latents(), training=True, architecture=architecture)
            loss = losses.hinge_generator_loss(self.discriminator(fake, training=True))
        self.g_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def _predict(self, z, architecture):
        return self.generator(z, training=False, architecture=architecture)

    def run_epoch(
        self, weight_batches: Iterator[tf.Tensor], seed: int,
        progbar: keras.utils.Progbar | None = None,
    ) -> dict[str, float]:
        """`inner_steps` D steps (a G step after every n_critic-th), each on a fresh architecture.

        D step s (counted over the whole search) runs `sample_architecture(seed, TRAIN, s)`.
        """
        d_losses, g_losses = [], []
        for done in range(1, self.config.inner_steps + 1):
            step = int(self.d_steps_done.numpy())
            architecture = tf.constant(sample_architecture(seed, TRAIN, step))
            d_losses.append(float(self.d_step(next(weight_batches), architecture)))
            values = [("d_loss", d_losses[-1])]
            if step % self.config.n_critic == 0:
                g_losses.append(float(self.g_step(architecture)))
                values.append(("g_loss", g_losses[-1]))
            if progbar is not None:
                progbar.update(done, values)
        metrics = {"d_loss": float(np.mean(d_losses))}
        if g_losses:  # an epoch of fewer D steps than n_critic may hold no G step
            metrics["g_loss"] = float(np.mean(g_losses))
        return metrics

    def generate(self, architecture: np.ndarray):
        """latents -> images of `architecture`'s path (inference mode)."""
        architecture = tf.constant(np.asarray(architecture, np.int32))
        return lambda z: self.predict(tf.convert_to_tensor(z, tf.float32), architecture)

    def learning_rates(self) -> dict:
        """{name: (optimizer, the config's rate)}: what a resumed search puts back in force."""
        return {"g_adam": (self.g_optimizer, self.config.g_lr),
                "d_adam": (self.d_optimizer, self.config.d_lr)}

    def checkpoint_items(self) -> dict:
        """Everything a resumed search needs (the keys of the differentiable search's, less alpha's)."""
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
            "latent_rng": self.latent_rng,
            "d_steps_done": self.d_steps_done,
        }


def score_candidates(trainer: WeightSharingTrainer, feature_fn, real_stats, config: RandomWSConfig,
                     seed: int, verbose: int = 1) -> tuple[int, list[dict]]:
    """Every candidate's proxy scores; the index of the best (lowest FID, then earliest).

    Candidate j is `sample_architecture(seed, CANDIDATE, j)`; every candidate
    draws the same latents (`seed`).

    Returns:
        (best index, [{"candidate", "fid", ("inception_score_mean"), "genotype"}, ...]).
    """

    scores = []
    progbar = keras.utils.Progbar(config.candidates, verbose=verbose, unit_name="candidate")
    for j in range(config.candidates):
        architecture = sample_architecture(seed, CANDIDATE, j)
        result = evaluate_generator(
            trainer.generate(architecture), feature_fn, real_stats,
            num_samples=config.eval_samples, batch_size=config.eval_batch_size,
            latent_dim=trainer.generator.latent_dim, seed=seed, verbose=0,
        )
        entry = {"candidate": j, "fid": float(result["fid"])}
        if "inception_score_mean" in result:
            entry["inception_score_mean"] = float(result["inception_score_mean"])
        entry["genotype"] = architecture_genotype(architecture).to_dict()
        scores.append(entry)
        progbar.update(j + 1, [("fid", entry["fid"])])
    best = min(range(len(scores)), key=lambda j: (scores[j]["fid"], j))
    return best, scores


def build_trainer(config) -> WeightSharingTrainer:
    """The players of a `SearchRunConfig` and their random-WS steps (one device)."""

    if config.strategy != "default" or config.cpu_devices > 1 or config.precision != "float32":
        raise StrategyError(
            "--algorithm=random_ws runs on one device in float32: leave --strategy, "
            "--cpu_devices and --precision at their defaults."
        )
    generator, discriminator = build_players(config)
    return WeightSharingTrainer(generator, discriminator, config.model.image_shape, config.search,
                                seed=config.seed)


def run_random_ws_search(config, workdir: str, verbose: int = 1,
                         trainer: WeightSharingTrainer | None = None, feature_fn=None):
    """Runs (or resumes, or re-derives) a random-WS search; see the module docstring.

    Args:
        config: a `config.SearchRunConfig` (its `random_ws` says how to derive).
        workdir: output folder; resumes from its last checkpoint.
        verbose: 0 silent, 1 progress bars and summaries.
        trainer: a `WeightSharingTrainer` to use instead of building one (tests
            reuse one: tracing the steps takes tens of seconds); its state is
            overwritten when resuming.
        feature_fn: the feature extractor of the proxy instead of
            `config.random_ws.feature_extractor` (tests).

    Returns:
        A `config.SearchResult` with the best candidate's genotype.
    """

    run = Workdir.open(workdir, config, "search_config.json",
                       resumable=SearchRunConfig.RESUMABLE + ("random_ws",), verbose=bool(verbose))
    seeding.seed_everything(config.seed)
    apply_device_choices(config, verbose)
    data = search_datasets(
        config.data.dataset, image_size=config.image_size, batch_size=config.search.batch_size,
        seed=config.seed, **config.data.loader_kwargs(),
    )
    if feature_fn is None:  # fail before training when the extractor is missing

        feature_fn = feature_extractor_from_spec(config.random_ws.feature_extractor,
                                                 config.random_ws.inception_path)
        if feature_fn is None:
            raise ValueError("--algorithm=random_ws scores candidates by FID: it needs a "
                             "--feature_extractor (inception or classifier:DIR), not 'none'.")
    if trainer is None:
        trainer = build_trainer(config)
    weight_batches = iter(data.weight)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(epoch=epoch, weight_batches=weight_batches,
                                     **trainer.checkpoint_items())
    manager, restored = run.checkpoints(checkpoint, config.keep_checkpoints,
                                        learning_rates=trainer.learning_rates())
    history = []
    if restored:
        history = [h for h in run.read_json("random_ws_history.json", [])
                   if h["epoch"] <= int(epoch.numpy())]
        if verbose:
            print(f"Resuming from {restored} (epoch {int(epoch.numpy())}).")

    latent_dim = config.model.latent_dim
    fixed_latents = tf.random.stateless_normal([64, latent_dim], seed=[config.seed, 1234])
    real_reference = diversity.first_images(data.arch, 64)
    start_epoch = int(epoch.numpy())
    if verbose:
        print(f"Random-WS search on {config.data.dataset} ({data.num_weight_examples} weight / "
              f"{data.num_arch_examples} architecture images), epochs {start_epoch + 1}.."
              f"{config.epochs}, {config.search.inner_steps} D steps per epoch, one uniformly "
              "sampled architecture per D step.")
    for e in range(start_epoch + 1, config.epochs + 1):
        started = time.time()
        progbar = keras.utils.Progbar(config.search.inner_steps, unit_name="step") if verbose else None
        metrics = trainer.run_epoch(weight_batches, config.seed, progbar)
        sampled = sample_architecture(config.seed, EPOCH_SAMPLE, e)
        fake = np.asarray(trainer.generate(sampled)(fixed_latents), np.float32)
        metrics["diversity_ratio"] = diversity.check_and_warn(
            fake, real_reference, f"epoch {e} (a sampled architecture)").ratio
        run.check(f"epoch {e}", metrics, [*trainer.generator.variables,
                                          *trainer.discriminator.variables])
        history.append({"epoch": e, **metrics, "sampled_ops": list(architecture_genotype(sampled).ops())})
        run.write_json("random_ws_history.json", history)
        with run.writer.as_default(step=e):
            for name, value in metrics.items():
                tf.summary.scalar(f"random_ws/{name}", value)
        run.write_learning_rates(e)
        epoch.assign(e)
        run.save(manager, e)
        if verbose:
            print(f"epoch {e}: {format_metrics(metrics, ('d_loss', 'g_loss'))}  "
                  f"diversity {metrics['diversity_ratio']:.3f}  ({time.time() - started:.1f}s)")
    run.writer.flush()

    derive = config.random_ws
    real_count = min(derive.eval_samples, data.num_arch_examples)
    real_stats = _arch_half_statistics(data.arch, feature_fn, real_count, derive.eval_batch_size,
                                       run.output(f"real_stats_arch_half_{real_count}_"
                                                  f"{feature_fn.name}.npz"), verbose)
    if verbose:
        print(f"Scoring {derive.candidates} sampled architectures on the shared weights: FID of "
              f"{derive.eval_samples} generated vs {real_count} architecture-half images "
              f"({feature_fn.name}).")
    best, scores = score_candidates(trainer, feature_fn, real_stats, derive, config.seed, verbose)
    genotype = Genotype.from_dict(scores[best]["genotype"])
    proxy = (f"FID of {derive.eval_samples} images of the candidate's path through the shared "
             f"supernet (inference mode, the same latents for every candidate) vs {real_count} "
             f"real images of the architecture half; features {feature_fn.name}; lower is better")
    run.write_json("candidate_scores.json", {"proxy": proxy, "best": best, "candidates": scores})
    run.write_text("genotype.json", genotype.to_json())
    best_architecture = sample_architecture(config.seed, CANDIDATE, best)
    images.save_grid(np.asarray(trainer.generate(best_architecture)(fixed_latents), np.float32),
                     run.output("samples.png"))
    fids = np.array([s["fid"] for s in scores])
    summary = {"algorithm": "random_ws", "epochs": config.epochs, "genotype": genotype.to_dict(),
               "best_candidate": best, "best_fid": float(fids[best]),
               "candidate_fid_mean": float(fids.mean()), "candidate_fid_sd": float(fids.std()),
               "final_metrics": history[-1] if history else {}}
    run.write_json("search_summary.json", summary)
    if verbose:
        print(f"Candidate FID mean {fids.mean():.2f} sd {fids.std():.2f}; best: candidate {best}, "
              f"FID {fids[best]:.2f}\n{genotype.table()}\n"
              f"Search done: {run.file('genotype.json')}")
    return SearchResult(genotype=genotype, workdir=workdir, epochs_run=config.epochs - start_epoch,
                        last_metrics=history[-1] if history else {})


def _arch_half_statistics(arch_batches, feature_fn, count: int, batch_size: int, cache_path: str,
                          verbose: int):
    """Feature statistics of the first `count` images of the architecture half (cached)."""

    if os.path.exists(cache_path):  # its name holds the extractor and the count
        return FeatureStatistics.load(cache_path)
    stats = compute_real_statistics(arch_batches, feature_fn, num_examples=count,
                                    batch_size=batch_size, dataset_name="architecture half",
                                    kid_max_samples=0, verbose=verbose)
    stats.save(cache_path)
    return stats

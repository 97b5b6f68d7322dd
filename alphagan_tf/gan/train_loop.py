"""Running a whole retraining: data, G/D/EMA, checkpoints, evaluation, TensorBoard.

`run_training(config, workdir, evaluate_fn)` is what `python -m alphagan_tf.train`
calls. What it writes in `workdir`:

    train_config.json    the run's configuration (read by evaluate/export)
    genotype.json        the genotype being trained
    checkpoints/         tf.train.CheckpointManager: G, D, EMA G, optimizers, data iterator,
                         latent RNG, iteration; every `checkpoint_every` G iterations
    best/                the checkpoint with the best FID so far (when evaluating)
    eval_history.json    every periodic evaluation (FID, IS, KID, iteration)
    tensorboard/         losses, sample grids, diversity ratio, metrics
    samples.png          a grid from the EMA generator at the end

Every `sample_every` G iterations and at the end, the EMA generator's 64
fixed-latent samples (inference mode, what samples.png shows) are compared with
64 real images (`metrics.diversity`: 1 = as spread as the data, 0 = one image):
the ratio goes to TensorBoard (`train/diversity_ratio`), a printed line and
train_summary.json; below `diversity.COLLAPSE_THRESHOLD` a warning says the
generator may have collapsed.

Re-running the same command resumes exactly where the last checkpoint was.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from alphagan_tf.gan.discriminator import Discriminator
from alphagan_tf.gan.generator import Generator
from alphagan_tf.gan.genotypes import Genotype, load_genotype
from alphagan_tf.gan.trainer import GANTrainer, TrainConfig
from alphagan_tf.metrics import diversity
from alphagan_tf.utils import files, images, seeding
from alphagan_tf.utils import precision as precision_lib
from alphagan_tf.utils.typed_config import TypedConfig

EvaluateFn = Callable[[keras.Model], dict]


@dataclasses.dataclass(frozen=True)
class TrainRunConfig(TypedConfig):
    """Everything one retraining run needs (built from flags by alphagan_tf.train)."""

    train: TrainConfig = TrainConfig()
    genotype: str = "alphaGAN_l"
    dataset: str = "demo"
    data_dir: str | None = None
    manual_dir: str | None = None
    download: bool = False
    gf: int = 256
    df: int = 128
    bottom_width: int = 4
    seed: int = 0
    deterministic: bool = True
    init_from: str | None = None
    checkpoint_every: int = 500
    sample_every: int = 500
    eval_every: int = 5000
    keep_checkpoints: int = 3
    # float32, bfloat16 or float16 compute of G, D and the EMA G (utils/precision.py: what
    # stays float32); float16 with dynamic loss scaling. Checkpoints hold float32 either way.
    precision: str = "float32"

    def __post_init__(self):
        precision_lib.validate(self.precision)

    @property
    def image_size(self) -> int:
        return 8 * self.bottom_width


def build_generator(genotype: Genotype, config: TrainRunConfig) -> Generator:
    return Generator.from_genotype(
        genotype, gf=config.gf, latent_dim=config.train.latent_dim,
        bottom_width=config.bottom_width,
    )


def build_trainer(config: TrainRunConfig, genotype: Genotype) -> GANTrainer:
    size = config.image_size
    train = dataclasses.replace(
        config.train, loss_scaling=precision_lib.uses_loss_scaling(config.precision))
    precision_lib.warn_if_emulated(config.precision)
    with precision_lib.dtype_policy(config.precision):
        generator, discriminator = build_generator(genotype, config), Discriminator(df=config.df)
        ema_generator = build_generator(genotype, config)
    return GANTrainer(
        generator, discriminator, ema_generator, image_shape=(size, size, 3), config=train,
        seed=config.seed,
    )


def read_train_config(workdir: str) -> TrainRunConfig:
    """The typed TrainRunConfig a retraining (or `convert`) wrote to WORKDIR/train_config.json.

    Raises:
        FileNotFoundError: no train_config.json (not a training workdir).
        ConfigError: a key this version does not know, named with the file.
    """
    return TrainRunConfig.read(
        os.path.join(workdir, "train_config.json"),
        missing=f"{workdir} is not a training workdir: train_config.json is missing "
        "(train one with python -m alphagan_tf.train).",
    )


def initialize_from_search(generator: Generator, search_workdir: str) -> None:
    """Start retraining from a search's supernet weights (shared-weights transfer)."""
    from alphagan_tf.gan.generator import transfer_search_weights
    from alphagan_tf.gan.search_generator import SearchGenerator

    from alphagan_tf.gan.search_loop import read_search_config

    try:
        search_config = read_search_config(search_workdir)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--init_from: {error}") from None
    latest = tf.train.latest_checkpoint(os.path.join(search_workdir, "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"--init_from={search_workdir} holds no search checkpoint.")
    latent_dim = search_config.search.latent_dim
    supernet = SearchGenerator(
        gf=search_config.gf, latent_dim=latent_dim, bottom_width=search_config.bottom_width
    )
    supernet(tf.zeros([1, latent_dim]), training=False)
    tf.train.Checkpoint(generator=supernet).restore(latest).expect_partial()
    transfer_search_weights(supernet, generator)


def _has_data_iterator(checkpoint_path: str) -> bool:
    """Whether a training checkpoint holds the data iterator (a converted one does not)."""
    return any(name.startswith("real_batches/") for name, _ in tf.train.list_variables(checkpoint_path))


def run_training(
    config: TrainRunConfig,
    workdir: str,
    evaluate_fn: EvaluateFn | None = None,
    verbose: int = 1,
) -> dict:
    """Train (or resume training) a fixed generator; see the module docstring.

    Args:
        config: the run configuration.
        workdir: output directory.
        evaluate_fn: called with the EMA generator every `eval_every` iterations and at the
            end; returns metrics, and "fid" (lower is better) selects the best checkpoint.
        verbose: 1 for a progress bar and summary lines.

    Returns:
        {"iterations": ..., "final": last metrics, "best_fid": ...}.
    """
    from alphagan_tf.data.pipeline import training_dataset

    genotype = load_genotype(config.genotype)
    os.makedirs(workdir, exist_ok=True)
    config_path = os.path.join(workdir, "train_config.json")
    if not os.path.exists(config_path):
        files.write_json_atomic(config_path, dataclasses.asdict(config))
        files.write_text_atomic(os.path.join(workdir, "genotype.json"), genotype.to_json())
    seeding.seed_everything(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    data = training_dataset(
        config.dataset, image_size=config.image_size, batch_size=config.train.d_batch_size,
        seed=config.seed, data_dir=config.data_dir, manual_dir=config.manual_dir,
        download=config.download,
    )
    trainer = build_trainer(config, genotype)
    real_batches = iter(data.dataset)
    best_fid = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_fid")
    checkpoint = tf.train.Checkpoint(real_batches=real_batches, best_fid=best_fid,
                                     **trainer.checkpoint_items())
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    best_manager = tf.train.CheckpointManager(checkpoint, os.path.join(workdir, "best"),
                                              max_to_keep=1)
    if manager.latest_checkpoint:
        status = checkpoint.restore(manager.latest_checkpoint)
        if _has_data_iterator(manager.latest_checkpoint):
            status.assert_existing_objects_matched()
        else:  # converted from the authors' PyTorch checkpoint (alphagan_tf.convert): new data order
            status.expect_partial()
        if verbose:
            print(f"Resuming from {manager.latest_checkpoint}.")
    elif config.init_from:
        initialize_from_search(trainer.generator, config.init_from)
        trainer.ema.initialize()
        if verbose:
            print(f"Initialised the generator from the search in {config.init_from}.")

    eval_path = os.path.join(workdir, "eval_history.json")
    done = int(trainer.g_iterations_done.numpy())
    eval_history = [h for h in files.read_json(eval_path, []) if h["iteration"] <= done]
    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
    fixed_latents = tf.random.stateless_normal([64, config.train.latent_dim],
                                               seed=[config.seed, 4321])
    total = config.train.g_iterations
    if verbose and done >= total:
        print(f"Already trained {done} G iterations (g_iterations={total}): nothing to do.")
    elif verbose:
        print(f"Training {config.genotype} on {config.dataset} "
              f"({config.image_size}x{config.image_size}), G iterations {done + 1}..{total}.")
    progbar = keras.utils.Progbar(total, unit_name="G iter") if verbose else None
    if progbar is not None and done:
        progbar.update(min(done, total))
    metrics = {}
    samples, diversity_ratio = None, None
    # 64 real images from a fresh iterator (the checkpointed one does not move).
    real_reference = diversity.first_images(data.dataset, 64)
    started = time.time()

    def sample(iteration: int) -> None:
        """The EMA generator's fixed-latent samples: diversity check, TensorBoard, a line."""
        nonlocal samples, diversity_ratio
        samples = np.asarray(trainer.ema_generator(fixed_latents, training=False), np.float32)
        diversity_ratio = diversity.check_and_warn(
            samples, real_reference, f"iteration {iteration}").ratio
        with writer.as_default(step=iteration):
            tf.summary.scalar("train/diversity_ratio", diversity_ratio)
            tf.summary.image("samples_ema", images.make_grid(samples)[None])
        if verbose:
            print(f"\niteration {iteration}: diversity ratio {diversity_ratio:.3f}")

    def evaluate(iteration: int) -> None:
        result = {k: float(v) for k, v in evaluate_fn(trainer.ema_generator).items()}
        eval_history.append({"iteration": iteration, **result})
        files.write_json_atomic(eval_path, eval_history)
        with writer.as_default(step=iteration):
            for name, value in result.items():
                tf.summary.scalar(f"eval/{name}", value)
        if "fid" in result and result["fid"] < float(best_fid.numpy()):
            best_fid.assign(result["fid"])
            best_manager.save(checkpoint_number=iteration)
        if verbose:
            print("\n" + f"iteration {iteration}: " + "  ".join(
                f"{k} {v:.4f}" for k, v in result.items()))

    if evaluate_fn is not None and done == 0 and not eval_history:
        evaluate(0)
    for iteration in range(done + 1, total + 1):
        metrics = trainer.train_iteration(real_batches)
        if progbar is not None:
            progbar.update(iteration, list(metrics.items()))
        if iteration % 50 == 0 or iteration == total:
            with writer.as_default(step=iteration):
                for name, value in metrics.items():
                    tf.summary.scalar(f"train/{name}", value)
        if iteration % config.sample_every == 0 or iteration == total:
            sample(iteration)
        if evaluate_fn is not None and (iteration % config.eval_every == 0 or iteration == total):
            evaluate(iteration)
        if iteration % config.checkpoint_every == 0 or iteration == total:
            manager.save(checkpoint_number=iteration)
    if samples is None:  # nothing left to train (a re-run): the samples of the last checkpoint
        sample(max(total, done))
    writer.flush()

    images.save_grid(samples, os.path.join(workdir, "samples.png"))
    summary_path = os.path.join(workdir, "train_summary.json")
    summary = {
        "iterations": max(total, done),
        # A re-run with nothing left to train keeps the losses of the run that trained.
        "final_losses": metrics or files.read_json(summary_path, {}).get("final_losses", {}),
        "evaluations": eval_history,
        "best_fid": float(best_fid.numpy()) if np.isfinite(best_fid.numpy()) else None,
        "diversity_ratio": diversity_ratio,
        "seconds": time.time() - started,
    }
    files.write_json_atomic(summary_path, summary)
    logging.info("Training done: %s", summary)
    return summary


def load_trained_generator(workdir: str, which: str = "latest") -> Generator:
    """The EMA generator of a training workdir, ready for sampling or export.

    Args:
        workdir: a `python -m alphagan_tf.train` workdir (train_config.json, genotype.json,
            checkpoints/ and, when evaluated, best/).
        which: "latest" (last checkpoint) or "best" (best FID; falls back to latest).

    Returns:
        A built Generator holding the EMA weights (no alpha, no discriminator).
    """
    config = read_train_config(workdir)
    genotype = Genotype.load(os.path.join(workdir, "genotype.json"))
    checkpoint_path = None
    if which == "best":
        checkpoint_path = tf.train.latest_checkpoint(os.path.join(workdir, "best"))
    if checkpoint_path is None:
        checkpoint_path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if checkpoint_path is None:
        raise FileNotFoundError(f"{workdir} holds no checkpoint yet.")
    latent_dim = config.train.latent_dim
    generator = Generator.from_genotype(
        genotype, gf=config.gf, latent_dim=latent_dim, bottom_width=config.bottom_width
    )
    generator(tf.zeros([1, latent_dim]), training=False)
    tf.train.Checkpoint(ema_generator=generator).restore(checkpoint_path).expect_partial()
    return generator

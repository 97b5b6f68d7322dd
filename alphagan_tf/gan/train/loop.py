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

Under `strategy="multi_worker"` every worker runs this with the same config; only
the chief writes the files above and evaluates, the others write to a temporary
folder (utils/workdir.py) and all resume from the chief's checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from alphagan_tf.data.pipeline import training_dataset
from alphagan_tf.gan.run_devices import apply_device_choices
from alphagan_tf.gan.search.config import read_search_config
from alphagan_tf.gan.space.discriminator import Discriminator
from alphagan_tf.gan.space.generator import Generator, transfer_search_weights
from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.space.genotypes import Genotype, load_genotype
from alphagan_tf.gan.space.search_generator import SearchGenerator
from alphagan_tf.gan.train.config import TrainRunConfig, read_train_config
from alphagan_tf.gan.train.step import GANTrainer
from alphagan_tf.metrics import diversity
from alphagan_tf.utils import distribution, files, guards, images, seeding
from alphagan_tf.utils import precision as precision_lib
from alphagan_tf.utils.workdir import Workdir, restore_newest_readable

EvaluateFn = Callable[[keras.Model], dict]


def build_generator(
    genotype: Genotype, model: GeneratorConfig, synchronized_bn: bool = False
) -> Generator:
    return Generator.from_genotype(
        genotype, gf=model.gf, latent_dim=model.latent_dim, bottom_width=model.bottom_width,
        synchronized_bn=synchronized_bn,
    )


def build_trainer(config: TrainRunConfig, genotype: Genotype) -> GANTrainer:
    """G, D, the EMA G and their steps, under the run's strategy.

    Under a multi-replica strategy the generators are built in its scope with
    synchronized batch norms (global-batch statistics, as on one device).
    """
    strategy = distribution.strategy_from_config(config)
    synchronized_bn = strategy.num_replicas_in_sync > 1
    train = dataclasses.replace(
        config.train, loss_scaling=precision_lib.uses_loss_scaling(config.precision))
    precision_lib.warn_if_emulated(config.precision)
    with precision_lib.dtype_policy(config.precision), strategy.scope():
        generator = build_generator(genotype, config.model, synchronized_bn)
        discriminator = Discriminator(df=config.model.df)
        ema_generator = build_generator(genotype, config.model, synchronized_bn)
    return GANTrainer(
        generator, discriminator, ema_generator, image_shape=config.model.image_shape,
        config=train, seed=config.seed, strategy=strategy,
    )


def initialize_from_search(generator: Generator, search_workdir: str) -> None:
    """Start retraining from a search's supernet weights (shared-weights transfer)."""
    try:
        search_config = read_search_config(search_workdir)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--init_from: {error}") from None
    model = search_config.model
    latent_dim = model.latent_dim
    supernet = SearchGenerator(gf=model.gf, latent_dim=latent_dim, bottom_width=model.bottom_width)
    supernet(tf.zeros([1, latent_dim]), training=False)
    restored, _ = restore_newest_readable(
        tf.train.Checkpoint(generator=supernet), os.path.join(search_workdir, "checkpoints"),
        verify=lambda status, path: status.expect_partial())
    if restored is None:
        raise FileNotFoundError(f"--init_from={search_workdir} holds no readable search checkpoint.")
    transfer_search_weights(supernet, generator)


def open_workdir(config: TrainRunConfig, workdir: str, verbose: int = 1,
                 chief: bool = True) -> Workdir:
    """The retraining's workdir, checked against `config` (utils/workdir.py); writes nothing.

    `chief` False: a multi-worker run's other worker, which reads the workdir and writes
    to a temporary folder.

    Raises:
        WorkdirError: `workdir` cannot hold this run (a file, or another run's checkpoint).
        GenotypeError: `config.genotype` cannot be loaded.
    """
    genotype = load_genotype(config.genotype)
    return Workdir.open(workdir, config, "train_config.json", resumable=TrainRunConfig.RESUMABLE,
                        pinned={"genotype.json": genotype.to_json()}, verbose=bool(verbose),
                        chief=chief)


def _has_data_iterator(checkpoint_path: str) -> bool:
    """Whether a training checkpoint holds the data iterator (a converted one does not)."""
    return any(name.startswith("real_batches/") for name, _ in tf.train.list_variables(checkpoint_path))


def run_training(
    config: TrainRunConfig,
    workdir: str,
    evaluate_fn: EvaluateFn | None = None,
    verbose: int = 1,
    trainer: GANTrainer | None = None,
) -> dict:
    """Train (or resume training) a fixed generator; see the module docstring.

    Args:
        config: the run configuration.
        workdir: output directory.
        evaluate_fn: called with the EMA generator every `eval_every` iterations and at the
            end; returns metrics, and "fid" (lower is better) selects the best checkpoint.
        verbose: 1 for a progress bar and summary lines.
        trainer: networks and compiled steps to use instead of building new ones from
            `config` (which must describe them), as `run_search`'s `searcher`: tests
            reuse the steps they traced. Its state is overwritten by the checkpoint
            when resuming.

    Returns:
        {"iterations": ..., "final": last metrics, "best_fid": ...}.
    """
    distribution.prepare_cpu(config.cpu_devices)  # before the first TensorFlow op
    chief = distribution.is_chief(config)  # starts a multi-worker strategy (before the first op)
    genotype = load_genotype(config.genotype)
    run = open_workdir(config, workdir, verbose, chief)
    if not chief:  # only the chief of a multi-worker run evaluates (and keeps best/)
        evaluate_fn = None
    seeding.seed_everything(config.seed)
    apply_device_choices(config, verbose)

    data = training_dataset(
        config.data.dataset, image_size=config.image_size, batch_size=config.train.d_batch_size,
        seed=config.seed, **config.data.loader_kwargs(),
    )
    if trainer is None:
        trainer = build_trainer(config, genotype)
    real_batches = iter(data.dataset)
    best_fid = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_fid")
    checkpoint = tf.train.Checkpoint(real_batches=real_batches, best_fid=best_fid,
                                     **trainer.checkpoint_items())

    def verify(status, path: str) -> None:
        if _has_data_iterator(path):
            status.assert_existing_objects_matched()
        else:  # converted from the authors' PyTorch checkpoint (alphagan_tf.convert): new data order
            status.expect_partial()

    manager, restored = run.checkpoints(checkpoint, config.keep_checkpoints, verify,
                                        learning_rates=trainer.learning_rates())
    best_manager = tf.train.CheckpointManager(checkpoint, run.written("best"), max_to_keep=1)
    if restored:
        if verbose:
            print(f"Resuming from {restored}.")
    elif config.init_from:
        initialize_from_search(trainer.generator, config.init_from)
        trainer.ema.initialize()
        if verbose:
            print(f"Initialised the generator from the search in {config.init_from}.")

    done = int(trainer.g_iterations_done.numpy())
    distribution.check_workers_agree(trainer.parallel.strategy, done, json.dumps(config.to_dict()))
    eval_history = [h for h in run.read_json("eval_history.json", []) if h["iteration"] <= done]
    fixed_latents = tf.random.stateless_normal([64, config.model.latent_dim],
                                               seed=[config.seed, 4321])
    total = config.train.g_iterations
    if verbose and done >= total:
        print(f"Already trained {done} G iterations (g_iterations={total}): nothing to do.")
    elif verbose:
        print(f"Training {config.genotype} on {config.data.dataset} "
              f"({config.image_size}x{config.image_size}), G iterations {done + 1}..{total}, "
              f"{trainer.parallel.replicas} replica(s).")
    progbar = keras.utils.Progbar(total, unit_name="G iter") if verbose else None
    if progbar is not None and done:
        progbar.update(min(done, total))
    metrics = {}
    samples, diversity_ratio = None, None
    # 64 real images from a fresh iterator (the checkpointed one does not move).
    real_reference = diversity.first_images(data.dataset, 64)
    pinned_d_loss = guards.PinnedLossMonitor("d_loss", patience=50)
    started = time.time()

    def sample(iteration: int) -> None:
        """The EMA generator's fixed-latent samples: diversity check, TensorBoard, a line."""
        nonlocal samples, diversity_ratio
        samples = np.asarray(trainer.ema_generator(fixed_latents, training=False), np.float32)
        diversity_ratio = diversity.check_and_warn(
            samples, real_reference, f"iteration {iteration}").ratio
        with run.writer.as_default(step=iteration):
            tf.summary.scalar("train/diversity_ratio", diversity_ratio)
            tf.summary.image("samples_ema", images.make_grid(samples)[None])
        if verbose:
            print(f"\niteration {iteration}: diversity ratio {diversity_ratio:.3f}")

    def evaluate(iteration: int) -> None:
        result = {k: float(v) for k, v in evaluate_fn(trainer.ema_generator).items()}
        eval_history.append({"iteration": iteration, **result})
        run.write_json("eval_history.json", eval_history)
        with run.writer.as_default(step=iteration):
            for name, value in result.items():
                tf.summary.scalar(f"eval/{name}", value)
        if "fid" in result and result["fid"] < float(best_fid.numpy()):
            best_fid.assign(result["fid"])
            run.save(best_manager, iteration)
        if verbose:
            print("\n" + f"iteration {iteration}: " + "  ".join(
                f"{k} {v:.4f}" for k, v in result.items()))

    if evaluate_fn is not None and done == 0 and not eval_history:
        evaluate(0)
    # Iterations run `steps_per_call` at a time, each call ending at the next iteration that
    # samples, evaluates or checkpoints, so those happen where they would one by one.
    periods = [config.sample_every, config.checkpoint_every] + (
        [config.eval_every] if evaluate_fn is not None else [])
    iterations = _per_iteration(trainer, real_batches, done, total, config.train.steps_per_call,
                                periods)
    for iteration, metrics in iterations:
        run.check(f"G iteration {iteration}", metrics)
        collapse = pinned_d_loss.update(f"G iteration {iteration}", metrics["d_loss"])
        if collapse:
            logging.warning(collapse)
            with run.writer.as_default(step=iteration):
                tf.summary.text("warnings", collapse)
            if verbose:
                print(f"\nwarning: {collapse}")
        if progbar is not None:
            progbar.update(iteration, list(metrics.items()))
        if iteration % 50 == 0 or iteration == total:
            with run.writer.as_default(step=iteration):
                for name, value in metrics.items():
                    tf.summary.scalar(f"train/{name}", value)
            run.write_learning_rates(iteration)
        if iteration % config.sample_every == 0 or iteration == total:
            sample(iteration)
        if evaluate_fn is not None and (iteration % config.eval_every == 0 or iteration == total):
            evaluate(iteration)
        if iteration % config.checkpoint_every == 0 or iteration == total:
            run.save(manager, iteration, f"G iteration {iteration}", metrics,
                     trainer.checked_variables())
    if samples is None:  # nothing left to train (a re-run): the samples of the last checkpoint
        sample(max(total, done))
    run.writer.flush()

    images.save_grid(samples, run.output("samples.png"))
    summary_path = run.file("train_summary.json")
    summary = {
        "iterations": max(total, done),
        # A re-run with nothing left to train keeps the losses of the run that trained.
        "final_losses": metrics or files.read_json(summary_path, {}).get("final_losses", {}),
        "evaluations": eval_history,
        "best_fid": float(best_fid.numpy()) if np.isfinite(best_fid.numpy()) else None,
        "diversity_ratio": diversity_ratio,
        "seconds": time.time() - started,
    }
    run.write_json("train_summary.json", summary)
    run.close()
    logging.info("Training done: %s", summary)
    return summary


def _per_iteration(trainer: GANTrainer, real_batches, done: int, total: int, steps_per_call: int,
                   periods: list[int]):
    """(iteration, losses) of iterations done+1..total, run in calls of at most `steps_per_call`
    that end at every multiple of each of `periods`."""
    iteration = done
    while iteration < total:
        stop = min([total] + [(iteration // p + 1) * p for p in periods])
        for metrics in trainer.run_iterations(real_batches, min(steps_per_call, stop - iteration)):
            iteration += 1
            yield iteration, metrics


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
    generator = build_generator(genotype, config.model)
    generator(tf.zeros([1, config.model.latent_dim]), training=False)
    checkpoint = tf.train.Checkpoint(ema_generator=generator)
    folders = (["best"] if which == "best" else []) + ["checkpoints"]
    for folder in folders:  # the newest readable checkpoint (a damaged one falls back, as in train)
        restored, _ = restore_newest_readable(checkpoint, os.path.join(workdir, folder),
                                              verify=lambda status, path: status.expect_partial())
        if restored is not None:
            return generator
    raise FileNotFoundError(f"{workdir} holds no readable checkpoint yet.")

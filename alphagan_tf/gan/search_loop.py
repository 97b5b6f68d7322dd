"""Running a whole search: data, players, checkpoints, history, TensorBoard, results.

`run_search(config, workdir)` is what `python -m alphagan_tf.search` calls. What
it writes in `workdir`:

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

import numpy as np
import tensorflow as tf
import keras
from absl import logging

from alphagan_tf.data.config import DataConfig
from alphagan_tf.gan.discriminator import Discriminator
from alphagan_tf.gan.generator_config import GeneratorConfig, upgrade_run_layout
from alphagan_tf.gan.random_ws import RandomWSConfig
from alphagan_tf.gan.search_generator import SearchGenerator
from alphagan_tf.gan.searcher import BilevelSearcher, SearchConfig
from alphagan_tf.gan.run_devices import apply_device_choices, validate_device_fields
from alphagan_tf.metrics import diversity
from alphagan_tf.nas.architecture import softmax
from alphagan_tf.utils import distribution, images, plots, precision, seeding
from alphagan_tf.utils.progress import format_metrics
from alphagan_tf.utils.typed_config import TypedConfig, require, require_positive
from alphagan_tf.utils.workdir import Workdir


#: The search algorithms (`SearchRunConfig.algorithm`, `--algorithm`).
ALGORITHMS = ("alphagan", "random_ws")


@dataclasses.dataclass(frozen=True)
class SearchRunConfig(TypedConfig):
    """Everything one search run needs (built from flags by alphagan_tf.search)."""

    search: SearchConfig = SearchConfig()
    model: GeneratorConfig = GeneratorConfig()
    data: DataConfig = DataConfig()
    epochs: int = 100
    seed: int = 0
    sample_every: int = 5
    keep_checkpoints: int = 3
    # Op determinism: None (default) on when no GPU is visible, off on GPUs (gan/run_devices.py).
    deterministic: bool | None = None
    # The depthwise kernel gradient: auto (by device), fast (the CPU form) or tf (gan/depthwise.py).
    depthwise_gradient: str = "auto"
    fuse_convs: bool = True  # normal edges' plain convs as one conv (same function, less work)
    # float32, bfloat16 or float16 compute for the four players (utils/precision.py: what
    # stays float32); float16 with dynamic loss scaling.
    precision: str = "float32"
    # tf.distribute (utils/distribution.py): "default" (one device), "mirrored" or
    # "one_device" over `devices`, or "multi_worker" (several hosts, TF_CONFIG);
    # `cpu_devices` > 1 first splits the CPU into that many logical devices (to run a
    # MirroredStrategy on a machine without GPUs).
    strategy: str = "default"
    devices: tuple[str, ...] = ()
    cpu_devices: int = 0
    # "alphagan": the bi-level differentiable search; "random_ws": random search with weight
    # sharing (gan/random_ws.py: the same inner level, uniformly sampled architectures).
    algorithm: str = "alphagan"
    random_ws: RandomWSConfig = RandomWSConfig()

    # What a rerun in the same workdir may change: the schedule and the optimizers' settings.
    # The sizes, the data and its batch (the checkpointed iterators), the seed and how the
    # players are built (fuse_convs, precision, strategy) must match the checkpoint.
    RESUMABLE = ("epochs", "sample_every", "keep_checkpoints", "search.inner_steps",
                 "search.worst_steps", "search.outer_steps", "search.n_critic", "search.g_lr",
                 "search.d_lr", "search.beta_1", "search.beta_2", "search.worst_lr_halving_epoch",
                 "search.arch.learning_rate", "search.arch.beta_1", "search.arch.beta_2",
                 "search.arch.weight_decay", "search.r1_gamma", "search.steps_per_call",
                 "search.jit_compile", "deterministic", "depthwise_gradient")

    def __post_init__(self):
        require_positive(self, "epochs", "sample_every", "keep_checkpoints")
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed,
                "must be an integer >= 0")
        require(self.algorithm in ALGORITHMS, "algorithm", self.algorithm,
                f"must be one of {ALGORITHMS}")
        precision.validate(self.precision)
        distribution.validate_fields(self, distribution.GAN_STRATEGIES)
        validate_device_fields(self)

    @classmethod
    def upgrade(cls, data: dict) -> dict:
        """Older layouts: flat sizes and data (issue 18), `mixed_precision` (issue 13)."""
        return precision.upgrade_legacy_keys(upgrade_run_layout(data, "search"))

    @property
    def image_size(self) -> int:
        return self.model.image_size


def read_search_config(workdir: str) -> SearchRunConfig:
    """The typed SearchRunConfig a search wrote to WORKDIR/search_config.json.

    Raises:
        FileNotFoundError: no search_config.json (not a search workdir).
        ConfigError: a key this version does not know, named with the file.
    """
    return SearchRunConfig.read(
        os.path.join(workdir, "search_config.json"),
        missing=f"{workdir} is not a search workdir: search_config.json is missing.",
    )


@dataclasses.dataclass
class SearchResult:
    genotype: object
    workdir: str
    epochs_run: int
    last_metrics: dict


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


def build_players(
    config: SearchRunConfig, synchronized_bn: bool = False
) -> tuple[SearchGenerator, Discriminator]:
    model = config.model
    generator = SearchGenerator(
        gf=model.gf, latent_dim=model.latent_dim, bottom_width=model.bottom_width,
        fuse_convs=config.fuse_convs, synchronized_bn=synchronized_bn,
    )
    return generator, Discriminator(df=model.df)


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

    `config.algorithm` "random_ws" runs `random_ws.run_random_ws_search` instead.

    Args:
        config: the run's configuration.
        workdir: where results and checkpoints go; resumes from its last checkpoint.
        verbose: 0 silent, 1 a progress bar per epoch and a summary line.
        searcher: players and compiled steps to use instead of building new ones
            from `config` (which must describe them): tracing the steps of the
            supernet takes about a minute, so tests reuse one searcher. Its state
            is overwritten by the checkpoint when resuming.
    """
    from alphagan_tf.data.pipeline import search_datasets

    if config.algorithm == "random_ws":
        from alphagan_tf.gan.random_ws import run_random_ws_search

        return run_random_ws_search(config, workdir, verbose)
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

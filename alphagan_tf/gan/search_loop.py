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

Re-running with the same workdir resumes from the last checkpoint. Files are
written atomically (temporary file + rename), so a kill at any moment leaves
every earlier result intact.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf
import keras
from absl import logging

from alphagan_tf.gan.discriminator import Discriminator
from alphagan_tf.gan.search_generator import SearchGenerator
from alphagan_tf.gan.searcher import BilevelSearcher, SearchConfig
from alphagan_tf.metrics import diversity
from alphagan_tf.nas.architecture import softmax
from alphagan_tf.utils import distribution, files, images, plots, precision, seeding
from alphagan_tf.utils.typed_config import TypedConfig


@dataclasses.dataclass(frozen=True)
class SearchRunConfig(TypedConfig):
    """Everything one search run needs (built from flags by alphagan_tf.search)."""

    search: SearchConfig = SearchConfig()
    dataset: str = "demo"
    data_dir: str | None = None
    manual_dir: str | None = None
    download: bool = False
    gf: int = 256
    df: int = 128
    bottom_width: int = 4
    epochs: int = 100
    seed: int = 0
    sample_every: int = 5
    keep_checkpoints: int = 3
    deterministic: bool = True
    fuse_convs: bool = True  # normal edges' plain convs as one conv (same function, less work)
    # float32, bfloat16 or float16 compute for the four players (utils/precision.py: what
    # stays float32); float16 with dynamic loss scaling.
    precision: str = "float32"
    # tf.distribute: "default" (one device), "mirrored" or "one_device" over `devices`
    # (utils/distribution.py); `cpu_devices` > 1 first splits the CPU into that many
    # logical devices (to run a MirroredStrategy on a machine without GPUs).
    strategy: str = "default"
    devices: tuple[str, ...] = ()
    cpu_devices: int = 0

    def __post_init__(self):
        precision.validate(self.precision)

    @classmethod
    def from_dict(cls, data, where: str = ""):
        return super().from_dict(precision.upgrade_legacy_keys(data), where)  # mixed_precision

    @property
    def image_size(self) -> int:
        return 8 * self.bottom_width


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
    generator = SearchGenerator(
        gf=config.gf, latent_dim=config.search.latent_dim, bottom_width=config.bottom_width,
        fuse_convs=config.fuse_convs, synchronized_bn=synchronized_bn,
    )
    return generator, Discriminator(df=config.df)


def make_search_strategy(config: SearchRunConfig) -> tf.distribute.Strategy:
    """The run's `tf.distribute` strategy (splitting the CPU first if asked)."""
    if config.cpu_devices > 1:
        distribution.split_cpu(config.cpu_devices)
    return distribution.make_strategy(config.strategy, config.devices)


def build_searcher(config: SearchRunConfig) -> BilevelSearcher:
    """The four players (current and worst-case G and D) and their steps.

    Under a multi-replica strategy the players are built in its scope with
    synchronized batch norms (global-batch statistics, as on one device).
    """
    strategy = make_search_strategy(config)
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

    def __init__(self, logdir: str):
        self.writer = tf.summary.create_file_writer(logdir)

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
    from alphagan_tf.data.pipeline import search_datasets

    if config.cpu_devices > 1:  # before the first TensorFlow op
        distribution.split_cpu(config.cpu_devices)
    os.makedirs(workdir, exist_ok=True)
    config_path = os.path.join(workdir, "search_config.json")
    if not os.path.exists(config_path):
        files.write_json_atomic(config_path, dataclasses.asdict(config))
    seeding.seed_everything(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    data = search_datasets(
        config.dataset,
        image_size=config.image_size,
        batch_size=config.search.batch_size,
        seed=config.seed,
        data_dir=config.data_dir,
        manual_dir=config.manual_dir,
        download=config.download,
    )
    if searcher is None:
        searcher = build_searcher(config)
    weight_batches, arch_batches = iter(data.weight), iter(data.arch)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(
        epoch=epoch, weight_batches=weight_batches, arch_batches=arch_batches,
        **searcher.checkpoint_items(),
    )
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    history_path = os.path.join(workdir, "genotype_history.json")
    history = []
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        # Entries written after the last checkpoint (a kill in between) are redone.
        history = [h for h in files.read_json(history_path, []) if h["epoch"] <= int(epoch.numpy())]
        logging.info("Resumed from %s at epoch %d.", manager.latest_checkpoint, int(epoch.numpy()))
        if verbose:
            print(f"Resuming from {manager.latest_checkpoint} (epoch {int(epoch.numpy())}).")

    summaries = _Summaries(os.path.join(workdir, "tensorboard"))
    fixed_latents = tf.random.stateless_normal(
        [64, config.search.latent_dim], seed=[config.seed, 1234]
    )
    # The diversity reference: 64 real images of the architecture half, from a fresh
    # iterator (the checkpointed data iterators do not move).
    real_reference = diversity.first_images(data.arch, 64)
    generator = searcher.generator
    metrics: dict = {}
    start_epoch = int(epoch.numpy())
    if verbose:
        print(
            f"Searching on {config.dataset} ({data.num_weight_examples} weight / "
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
        history.append({"epoch": e, "genotype": genotype.to_dict(), "alphas": snapshot, **metrics})
        files.write_json_atomic(history_path, history)
        summaries.epoch(e, metrics, snapshot, genotype)
        if e % config.sample_every == 0 or e == config.epochs:
            summaries.samples(e, images.make_grid(fake))
        epoch.assign(e)
        manager.save(checkpoint_number=e)
        if verbose:
            print(
                f"epoch {e}: d_loss {metrics['d_loss']:.4f}  g_loss {metrics['g_loss']:.4f}  "
                f"DG {metrics['duality_gap']:.4f}  diversity {metrics['diversity_ratio']:.3f}  "
                f"({time.time() - started:.1f}s)  "
                f"ops: {' '.join(genotype.ops())}"
            )

    genotype = generator.genotype()
    files.write_text_atomic(os.path.join(workdir, "genotype.json"), genotype.to_json())
    if history:
        plots.plot_alpha_history(history, os.path.join(workdir, "alpha_history.png"))
    images.save_grid(np.asarray(generator(fixed_latents, training=False), np.float32),
                     os.path.join(workdir, "samples.png"))
    summary = {
        "epochs": config.epochs,
        "genotype": genotype.to_dict(),
        "final_metrics": history[-1] if history else {},
    }
    summary["final_metrics"] = {k: v for k, v in summary["final_metrics"].items() if k != "alphas"}
    files.write_json_atomic(os.path.join(workdir, "search_summary.json"), summary)
    if verbose:
        print(f"Search done: {os.path.join(workdir, 'genotype.json')}")
        print(genotype.table())
    return SearchResult(genotype=genotype, workdir=workdir,
                        epochs_run=config.epochs - start_epoch, last_metrics=metrics)

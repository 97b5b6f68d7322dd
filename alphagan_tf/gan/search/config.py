"""A search's configuration, its result and its players: what both algorithms build on."""

from __future__ import annotations

import dataclasses
import os

from alphagan_tf.data.config import DataConfig
from alphagan_tf.gan.run_devices import validate_device_fields
from alphagan_tf.gan.space import memory
from alphagan_tf.gan.space.discriminator import Discriminator
from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.space.search_generator import SearchGenerator
from alphagan_tf.nas.adam import PyTorchAdam
from alphagan_tf.nas.arch_optimizer import ArchOptimizerConfig
from alphagan_tf.utils import distribution, precision
from alphagan_tf.utils.typed_config import (
    TypedConfig, require, require_finite_positive, require_fraction, require_non_negative,
    require_positive,
)


@dataclasses.dataclass(frozen=True)
class SearchConfig(TypedConfig):
    """Hyperparameters of one search (defaults: the paper's alphaGAN(s))."""

    inner_steps: int = 20
    worst_steps: int = 20
    outer_steps: int = 20
    n_critic: int = 5
    batch_size: int = 64
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta_1: float = 0.0
    beta_2: float = 0.9
    # The reference's train_gan_alpha: the worst-case players train at g_lr / d_lr up to
    # this epoch and at half of them after it (0: never halve).
    worst_lr_halving_epoch: int = 30
    arch: ArchOptimizerConfig = ArchOptimizerConfig()
    jit_compile: bool = False  # XLA-compile the compiled steps (for GPUs; measured on CPU in the README)
    # Steps of the schedule run in one call of a compiled loop (`run_epoch`); losses and counters
    # come back to the host once per call. 1: one call per step.
    steps_per_call: int = 1
    # Players built for --precision=float16 (alphagan.build_searcher) need loss scaling:
    # every optimizer, the architecture one included, is a dynamic LossScaleOptimizer.
    loss_scaling: bool = False
    # R1 penalty weight on the inner D's gradient at real images (gan/train/r1.py); 0: the paper.
    r1_gamma: float = 0.0

    def __post_init__(self):
        require_positive(self, "inner_steps", "worst_steps", "outer_steps", "n_critic", "batch_size",
                         "steps_per_call")
        memory.require_batches_fit(self, "batch_size")
        require_finite_positive(self, "g_lr", "d_lr")
        require_non_negative(self, "r1_gamma")
        require_fraction(self, "beta_1", "beta_2", closed=False)
        require(isinstance(self.worst_lr_halving_epoch, int) and self.worst_lr_halving_epoch >= 0,
                "worst_lr_halving_epoch", self.worst_lr_halving_epoch, "must be an integer >= 0")


@dataclasses.dataclass(frozen=True)
class RandomWSConfig(TypedConfig):
    """The derivation of a random-WS search (its training is the `SearchConfig`'s inner level)."""

    candidates: int = 100  # architectures scored at the end (the reference: 200)
    eval_samples: int = 1000  # generated images per candidate, and real images of the arch half
    eval_batch_size: int = 100
    feature_extractor: str = "inception"  # as --feature_extractor: inception | classifier:DIR
    inception_path: str | None = None  # None: TF-Hub's handle

    def __post_init__(self):
        for name in ("candidates", "eval_samples"):  # named as their flags
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"random_ws_{name}", value,
                    "must be an integer >= 1")
        require(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size,
                "must be an integer >= 1")


#: The search algorithms (`SearchRunConfig.algorithm`, `--algorithm`).
ALGORITHMS = ("alphagan", "random_ws")


@dataclasses.dataclass(frozen=True)
class SearchRunConfig(TypedConfig):
    """Everything one search run needs (built from flags by alphagan_tf/cli/search.py)."""

    search: SearchConfig = SearchConfig()
    model: GeneratorConfig = GeneratorConfig()
    data: DataConfig = DataConfig()
    epochs: int = 100
    seed: int = 0
    sample_every: int = 5
    keep_checkpoints: int = 3
    # Op determinism: None (default) on when no GPU is visible, off on GPUs (gan/run_devices.py).
    deterministic: bool | None = None
    # The depthwise kernel gradient: auto (by device), fast (the CPU form) or tf (gan/space/depthwise.py).
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
    # "alphagan": the bi-level differentiable search (alphagan.py); "random_ws": random search
    # with weight sharing (random_ws.py: the same inner level, uniformly sampled architectures).
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


def build_players(
    config: SearchRunConfig, synchronized_bn: bool = False
) -> tuple[SearchGenerator, Discriminator]:
    model = config.model
    generator = SearchGenerator(
        gf=model.gf, latent_dim=model.latent_dim, bottom_width=model.bottom_width,
        fuse_convs=config.fuse_convs, synchronized_bn=synchronized_bn,
    )
    return generator, Discriminator(df=model.df)


def build_adam(learning_rate, beta1, beta2, name, loss_scaling):
    """A PyTorch-update Adam of a player (a LossScaleOptimizer under float16's loss scaling)."""
    adam = PyTorchAdam(learning_rate, beta_1=beta1, beta_2=beta2, name=name)
    return precision.with_loss_scaling(adam, loss_scaling)

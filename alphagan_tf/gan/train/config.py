"""A retraining's configuration: the step's hyperparameters and the whole run's."""

from __future__ import annotations

import dataclasses
import os

from alphagan_tf.data.config import DataConfig
from alphagan_tf.gan.run_devices import validate_device_fields
from alphagan_tf.gan.space import memory
from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.utils import distribution
from alphagan_tf.utils import precision as precision_lib
from alphagan_tf.utils.typed_config import (
    TypedConfig, require, require_finite_positive, require_fraction,
    require_non_negative, require_positive,
)


@dataclasses.dataclass(frozen=True)
class TrainConfig(TypedConfig):
    """Retraining hyperparameters (defaults: the paper's CIFAR-10 protocol)."""

    g_iterations: int = 50_000
    n_critic: int = 5
    g_batch_size: int = 128
    d_batch_size: int = 64
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta_1: float = 0.0
    beta_2: float = 0.9
    ema_decay: float = 0.999
    # Networks built for --precision=float16 (loop.build_trainer) need loss scaling:
    # both optimizers are then dynamic LossScaleOptimizers.
    loss_scaling: bool = False
    # R1 penalty weight on D's gradient at real images (gan/train/r1.py); 0: the paper.
    r1_gamma: float = 0.0
    # The reference's --lr_decay (gan/train/lr_decay.py; off in its published commands): both rates
    # decay linearly to 1% from D step lr_decay_start (its 260 epochs of CIFAR-10 at D batch
    # 64: 260 x 782) to g_iterations x n_critic.
    lr_decay: bool = False
    lr_decay_start: int = 260 * 782
    # G iterations run in one call of a compiled loop (`run_iterations`); losses come back to
    # the host once per call. 1: one call per iteration.
    steps_per_call: int = 1
    # XLA-compile the D and G steps (fixed batch shapes: the pipelines drop the remainder, so
    # XLA compiles each step once).
    jit_compile: bool = False

    def __post_init__(self):
        require_positive(self, "g_iterations", "n_critic", "g_batch_size", "d_batch_size",
                         "steps_per_call")
        memory.require_batches_fit(self, "g_batch_size", "d_batch_size")
        require_finite_positive(self, "g_lr", "d_lr")
        require_non_negative(self, "r1_gamma", "lr_decay_start")
        require(not self.lr_decay or self.lr_decay_start < self.g_iterations * self.n_critic,
                "lr_decay_start", self.lr_decay_start,
                f"must be below g_iterations x n_critic = {self.g_iterations * self.n_critic} "
                "D steps (where the decay ends) when lr_decay is on")
        require_fraction(self, "beta_1", "beta_2", closed=False)
        require_fraction(self, "ema_decay")


@dataclasses.dataclass(frozen=True)
class TrainRunConfig(TypedConfig):
    """Everything one retraining run needs (built from flags by alphagan_tf.train)."""

    train: TrainConfig = TrainConfig()
    genotype: str = "alphaGAN_l"
    model: GeneratorConfig = GeneratorConfig()
    data: DataConfig = DataConfig()
    seed: int = 0
    # Op determinism: None (default) on when no GPU is visible, off on GPUs (gan/run_devices.py).
    deterministic: bool | None = None
    # The depthwise kernel gradient: auto (by device), fast (the CPU form) or tf (gan/space/depthwise.py).
    depthwise_gradient: str = "auto"
    init_from: str | None = None
    checkpoint_every: int = 500
    sample_every: int = 500
    eval_every: int = 5000
    keep_checkpoints: int = 3
    # float32, bfloat16 or float16 compute of G, D and the EMA G (utils/precision.py: what
    # stays float32); float16 with dynamic loss scaling. Checkpoints hold float32 either way.
    precision: str = "float32"
    # tf.distribute, as in SearchRunConfig: "default" (one device), "mirrored" or "one_device"
    # over `devices`, or "multi_worker" (several hosts, TF_CONFIG); `cpu_devices` > 1 first
    # splits the CPU into that many logical devices.
    strategy: str = "default"
    devices: tuple[str, ...] = ()
    cpu_devices: int = 0

    # What a rerun in the same workdir may change: the schedule, the optimizers' settings and
    # the devices (a checkpoint written under MirroredStrategy restores on one device to the
    # values one device trains: tests/test_distribution.py). The sizes, the genotype's text,
    # the data and its batch (the checkpointed iterator) and the seed must match the checkpoint.
    RESUMABLE = ("train.g_iterations", "train.n_critic", "train.g_batch_size", "train.g_lr",
                 "train.d_lr", "train.beta_1", "train.beta_2", "train.ema_decay", "train.r1_gamma",
                 "checkpoint_every", "sample_every", "eval_every", "keep_checkpoints",
                 "init_from", "genotype", "strategy", "devices", "cpu_devices",
                 "train.steps_per_call", "train.jit_compile", "deterministic", "depthwise_gradient")

    def __post_init__(self):
        require_positive(self, "checkpoint_every", "sample_every", "eval_every", "keep_checkpoints")
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed,
                "must be an integer >= 0")
        precision_lib.validate(self.precision)
        distribution.validate_fields(self, distribution.GAN_STRATEGIES)
        validate_device_fields(self)


    @property
    def image_size(self) -> int:
        return self.model.image_size


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

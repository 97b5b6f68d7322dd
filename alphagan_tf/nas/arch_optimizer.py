"""The architecture optimizer of the outer level.

The papers use Adam(lr 3e-4, betas (0.5, 0.999), weight_decay 1e-3) in PyTorch,
where weight decay is *coupled* L2: the gradient becomes g + wd * alpha before
the Adam moments see it. Keras' `weight_decay` is decoupled (AdamW), so we add
the L2 term to the gradients ourselves and keep the paper's semantics; the Adam
is PyTorch's update (`nas/adam.py`: epsilon 1e-8 after the bias correction).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import tensorflow as tf

from alphagan_tf.nas.adam import PyTorchAdam
from alphagan_tf.utils import precision
from alphagan_tf.utils.typed_config import TypedConfig, require


@dataclasses.dataclass(frozen=True)
class ArchOptimizerConfig(TypedConfig):
    learning_rate: float = 3e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    weight_decay: float = 1e-3

    def __post_init__(self):
        # Named as the flags that set them (--arch_learning_rate, ...), in every command.
        lr, decay = self.learning_rate, self.weight_decay
        require(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
                "arch_learning_rate", lr, "must be a finite number > 0")
        for name in ("beta_1", "beta_2"):
            value = getattr(self, name)
            require(isinstance(value, (int, float)) and 0 <= value < 1, f"arch_{name}", value,
                    "must be in [0, 1)")
        require(isinstance(decay, (int, float)) and math.isfinite(decay) and decay >= 0,
                "arch_weight_decay", decay, "must be a finite number >= 0")


class ArchitectureOptimizer:
    """Adam with coupled L2 weight decay, for architecture weights only.

    Build it (`build(arch_variables)`) before the first traced step so that all
    its slots exist outside `tf.function`.
    """

    def __init__(self, config: ArchOptimizerConfig = ArchOptimizerConfig(),
                 loss_scaling: bool = False):
        self.config = config
        self.adam = PyTorchAdam(
            learning_rate=config.learning_rate,
            beta_1=config.beta_1,
            beta_2=config.beta_2,
            name="arch_adam",
        )
        # Mixed precision: a dynamic loss scale; `scale_loss` before the gradient,
        # `apply` unscales (and skips a step whose gradients are not finite).
        self.optimizer = precision.with_loss_scaling(self.adam, loss_scaling, name="arch_loss_scale")

    def scale_loss(self, loss):
        """The loss to differentiate (scaled under mixed precision)."""
        return self.optimizer.scale_loss(loss)

    def build(self, arch_variables: Sequence) -> None:
        self.optimizer.build(list(arch_variables))

    def apply(self, gradients: Sequence, arch_variables: Sequence) -> None:
        """One step: alpha <- Adam(grad + weight_decay * alpha).

        `gradients` are of `scale_loss(loss)`: under loss scaling the decay term is
        scaled alike, so that the optimizer's unscaling gives grad + wd * alpha.
        Called on each replica of a `tf.distribute` strategy, the optimizer sums
        the replicas' gradients, so each replica adds its 1/N share of the decay.
        """
        wd = self.config.weight_decay
        scale = self.optimizer.scale_loss(1.0) if self.optimizer is not self.adam else 1.0
        replica_context = tf.distribute.get_replica_context()
        if replica_context is not None and replica_context.num_replicas_in_sync > 1:
            scale = scale / replica_context.num_replicas_in_sync
        decayed = [
            g + wd * scale * v.value if wd else g for g, v in zip(gradients, arch_variables)
        ]
        self.optimizer.apply_gradients(zip(decayed, arch_variables))

    @property
    def variables(self) -> list:
        return self.optimizer.variables

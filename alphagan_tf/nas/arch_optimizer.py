"""The architecture optimizer of the outer level.

The papers use Adam(lr 3e-4, betas (0.5, 0.999), weight_decay 1e-3) in PyTorch,
where weight decay is *coupled* L2: the gradient becomes g + wd * alpha before
the Adam moments see it. Keras' `weight_decay` is decoupled (AdamW), so we add
the L2 term to the gradients ourselves and keep the paper's semantics.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import keras


@dataclasses.dataclass(frozen=True)
class ArchOptimizerConfig:
    learning_rate: float = 3e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    weight_decay: float = 1e-3


class ArchitectureOptimizer:
    """Adam with coupled L2 weight decay, for architecture weights only.

    Build it (`build(arch_variables)`) before the first traced step so that all
    its slots exist outside `tf.function`.
    """

    def __init__(self, config: ArchOptimizerConfig = ArchOptimizerConfig()):
        self.config = config
        self.adam = keras.optimizers.Adam(
            learning_rate=config.learning_rate,
            beta_1=config.beta_1,
            beta_2=config.beta_2,
            name="arch_adam",
        )

    def build(self, arch_variables: Sequence) -> None:
        self.adam.build(list(arch_variables))

    def apply(self, gradients: Sequence, arch_variables: Sequence) -> None:
        """One step: alpha <- Adam(grad + weight_decay * alpha)."""
        wd = self.config.weight_decay
        decayed = [
            g + wd * v.value if wd else g for g, v in zip(gradients, arch_variables)
        ]
        self.adam.apply_gradients(zip(decayed, arch_variables))

    @property
    def variables(self) -> list:
        return self.adam.variables

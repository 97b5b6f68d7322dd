"""Divergence guards: a training loop stops at the first non-finite loss, weight or alpha.

A diverged run (a NaN learning rate, an exploding loss) must not exit 0 with a
NaN checkpoint that `export` then serves as black images: every loop checks its
step's losses and, before each checkpoint, its variables, and stops with a
`DivergenceError` naming the step, what went non-finite and the last good
checkpoint to resume from.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import tensorflow as tf


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, weight or alpha."""


def nonfinite_values(values: Mapping[str, float]) -> list[str]:
    """Names of the non-finite entries of {name: scalar}."""
    return [name for name, value in values.items() if not math.isfinite(float(value))]


def nonfinite_variables(variables: Iterable[tf.Variable]) -> list[str]:
    """Paths (names) of the floating-point variables holding a NaN or an infinity."""
    bad = []
    for variable in variables:
        if tf.as_dtype(variable.dtype).is_floating and not np.isfinite(np.asarray(variable.numpy())).all():
            bad.append(getattr(variable, "path", variable.name))
    return bad


def check_finite(where: str, values: Mapping[str, float] = None,
                 variables: Iterable[tf.Variable] = (), last_good: str | None = None) -> None:
    """Raises DivergenceError when a value or variable is not finite.

    Args:
        where: the step, e.g. "epoch 3" or "G iteration 120" (named in the error).
        values: {name: scalar}, e.g. the step's losses.
        variables: weights, alphas, EMA weights to check.
        last_good: the newest checkpoint saved before (named in the error).
    """
    bad = nonfinite_values(values or {})
    bad_variables = nonfinite_variables(variables)
    if bad_variables:
        shown = ", ".join(bad_variables[:3]) + (f" and {len(bad_variables) - 3} more"
                                               if len(bad_variables) > 3 else "")
        bad.append(f"{len(bad_variables)} variable(s) ({shown})")
    if bad:
        resume = (f"the last good checkpoint is {last_good}; lower the learning rates and rerun "
                  "to resume from it" if last_good else "no checkpoint was saved")
        raise DivergenceError(f"training diverged at {where}: non-finite {', '.join(bad)}; "
                              f"nothing was saved ({resume}).")


class PinnedLossMonitor:
    """Warns once when a loss sits at one value for `patience` consecutive checks.

    The hinge discriminator loss is 0 when D separates every real and fake image by the
    margin (G gets no signal) and 2 when D outputs 0 for everything (a dead D: e.g. after
    a learning rate that blew its weights up); held there, training has collapsed even
    though every number is finite.

    Args:
        name: the loss's name, for the message.
        pinned_values: the values that mean collapse.
        patience: consecutive checks at one of them before the warning.
        tolerance: how close counts as "at".
    """

    def __init__(self, name: str = "d_loss", pinned_values=(0.0, 2.0), patience: int = 50,
                 tolerance: float = 1e-3):
        self.name, self.pinned_values = name, tuple(pinned_values)
        self.patience, self.tolerance = patience, tolerance
        self.run, self.value, self.warned = 0, None, False

    def update(self, where: str, value: float) -> str | None:
        """Records `value`; returns the warning the first time the loss has been pinned."""
        value = float(value)
        at = next((v for v in self.pinned_values if abs(value - v) <= self.tolerance), None)
        self.run = self.run + 1 if at is not None and at == self.value else (1 if at is not None else 0)
        self.value = at
        if self.run >= self.patience and not self.warned:
            self.warned = True
            return (f"{where}: {self.name} has stayed at {at:g} for {self.run} consecutive "
                    "checks: the game has collapsed (a saturated or dead discriminator). "
                    "Look at the samples; lower the learning rates or restart from an earlier "
                    "checkpoint.")
        return None

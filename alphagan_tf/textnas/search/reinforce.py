"""REINFORCE for a sampling controller: moving-average baseline, entropy bonus, skip penalty.

The controller step of ENAS (Pham et al., 2018) as NNI's `EnasTrainer` runs it
for TextNAS:

    sample a ~ pi(controller), score = reward_fn(a)        (no gradient)
    reward   = score + entropy_weight * H(pi, a)
    baseline = decay * baseline + (1 - decay) * reward      (updated first)
    loss     = -log pi(a) * (reward - baseline) + skip_weight * KL(skips || target)

One deviation, ours: the baseline starts at the first reward instead of 0.
With a few hundred controller steps (a CPU budget), a zero start would give
every early sample a positive advantage for the first ~100 steps and so
reinforce whatever came first.

`ReinforceTrainer` runs the step: sample, reward (any callable), update.
"""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from alphagan_tf.textnas.search.child import architecture_signature
from alphagan_tf.textnas.search.controller import ControllerConfig

#: The stateless-random seed of one controller step.
SEED_SIGNATURE = tf.TensorSpec([2], tf.int64, name="seed")


def moving_average(average, value, decay: float):
    """decay * average + (1 - decay) * value."""
    return decay * average + (1.0 - decay) * value


def reinforce_loss(log_prob, advantage):
    """-log_prob * advantage, the advantage held constant (its gradient is REINFORCE's)."""
    return -log_prob * tf.stop_gradient(advantage)


class ReinforceTrainer:
    """REINFORCE steps of a `TextNASController`.

    One `step(seed, reward_fn)`: a compiled `sample(seed)`, then
    `reward_fn((ops, inputs, skips)) -> float` outside the controller's graph
    (e.g. the accuracy of the sampled child on a held-out batch, through the
    child's own compiled inference), then a compiled `update` that replays the
    sample through the controller under a tape (`controller.log_prob`: the
    same log-probability, entropy and skip KL) and applies Adam. Keeping the
    reward out of the controller's graph keeps that graph small and lets the
    reward come from anywhere.

    Args:
        controller: a built `TextNASController`.
        config: learning rate, entropy weight, baseline decay, skip penalty, clip.

    `step` returns {"reward", "baseline", "entropy", "log_prob", "skip_kl",
    "skips", "loss"} as floats ("reward" is `reward_fn`'s score, before the
    entropy bonus).
    """

    def __init__(self, controller, config: ControllerConfig):
        self.controller = controller
        self.config = config
        self.optimizer = keras.optimizers.Adam(
            config.learning_rate, global_clipnorm=config.clipnorm or None, name="controller_adam")
        self.optimizer.build(controller.trainable_variables)
        self.baseline = tf.Variable(0.0, trainable=False, name="reward_baseline")
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="controller_steps")
        self.sample = tf.function(controller.sample, input_signature=[SEED_SIGNATURE])
        self.update = tf.function(self._update, input_signature=(
            *architecture_signature(controller.num_layers), tf.TensorSpec([], tf.float32, name="score")))

    def checkpoint_items(self) -> dict:
        """The same state for an object-based checkpoint (`training.make_checkpoint`)."""
        return {"controller": self.controller, "reward_baseline": self.baseline,
                "controller_steps": self.steps, "controller_optimizer": self.optimizer}

    def step(self, seed, reward_fn: Callable) -> dict[str, float]:
        sample = self.sample(tf.constant(seed, tf.int64))
        score = float(reward_fn(sample.architecture))
        out = self.update(*sample.architecture, tf.constant(score, tf.float32))
        return {name: float(value) for name, value in out.items()}

    def _update(self, ops, inputs, skips, score):
        config = self.config
        variables = self.controller.trainable_variables
        with tf.GradientTape() as tape:
            replay = self.controller.log_prob(ops, inputs, skips)
            reward = score + config.entropy_weight * tf.stop_gradient(replay.entropy)
            baseline = tf.where(self.steps == 0, reward,
                                moving_average(self.baseline, reward, config.baseline_decay))
            loss = reinforce_loss(replay.log_prob, reward - baseline)
            if config.skip_weight:
                loss += config.skip_weight * replay.skip_kl
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.baseline.assign(baseline)
        self.steps.assign_add(1)
        return {"reward": score, "baseline": baseline, "entropy": replay.entropy,
                "log_prob": replay.log_prob, "skip_kl": replay.skip_kl,
                "skips": tf.cast(tf.reduce_sum(skips), tf.float32), "loss": loss}

"""ENAS, TextNAS's own search: an LSTM controller trained by REINFORCE samples the architectures.

The reward of a sampled architecture is the accuracy of the child (inference mode, the shared
weights as they are) on a held-out batch; the shared loop and the derivation: sampling.py.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from alphagan_tf.nas.sampling import stream_seed
from alphagan_tf.textnas import data as sst
from alphagan_tf.textnas.search.child import ChildSteps
from alphagan_tf.textnas.search.config import SearchResult
from alphagan_tf.textnas.search.controller import TextNASController
from alphagan_tf.textnas.search.reinforce import ReinforceTrainer
from alphagan_tf.textnas.search.sampling import CONTROLLER, Sampler, run_sampling_search
from alphagan_tf.textnas.space.encoding import EncodedArchitecture


class ControllerSampler(Sampler):
    """Architectures drawn from the controller's compiled `sample(seed)` (no gradient); after
    warm-up, every `controller_every` child steps, `controller_steps` REINFORCE steps."""

    name = "controller"

    def __init__(self, config):
        controller = TextNASController.create(config.num_layers, config.controller.units,
                                              config.controller.skip_target)
        self.trainer = ReinforceTrainer(controller, config.controller)

    def __call__(self, seed: np.ndarray) -> EncodedArchitecture:
        return EncodedArchitecture(*(a.numpy() for a in self.trainer.sample(tf.constant(seed)).architecture))

    def checkpoint_items(self) -> dict:
        return self.trainer.checkpoint_items()

    def learning_rates(self, config) -> dict:
        return {"controller_adam": (self.trainer.optimizer, config.controller.learning_rate)}

    def describe(self, config) -> str:
        return f", {config.controller_steps} controller steps every {config.controller_every}"

    def epoch_note(self, epoch: int, config) -> str:
        return " (controller not trained: warm-up)" if epoch < config.warmup_epochs else ""

    def after_child_step(self, step: int, warmup_steps: int, child: ChildSteps,
                         arch_batches: sst.BucketBatcher, config) -> dict[str, float]:
        if step > warmup_steps and (step - warmup_steps) % config.controller_every == 0:
            return controller_phase(self.trainer, child, arch_batches, config)
        return {}


def run_enas_search(config, workdir: str, verbose: bool = True) -> SearchResult:
    """Runs (or resumes) an ENAS search of `config` (a `config.SearchConfig`) in `workdir`."""
    return run_sampling_search(config, workdir, ControllerSampler, verbose)


def controller_phase(trainer: ReinforceTrainer, child: ChildSteps,
                      arch_batches: sst.BucketBatcher, config) -> dict:
    """`config.controller_steps` controller steps; the mean of each statistic.

    Reward of step k: the accuracy of the sampled child (inference mode) on
    held-out batch k.
    """
    totals: dict[str, float] = {}
    for _ in range(config.controller_steps):
        k = int(trainer.steps.numpy())
        ids, labels = arch_batches.batch_at(k)

        def reward_fn(architecture):
            logits = child.predict(ids, *architecture).numpy()
            return float((logits.argmax(-1) == labels).mean())

        out = trainer.step(stream_seed(config.seed, CONTROLLER, k), reward_fn)
        for name, value in out.items():
            totals[name] = totals.get(name, 0.0) + value
    return {name: total / config.controller_steps for name, total in totals.items()}

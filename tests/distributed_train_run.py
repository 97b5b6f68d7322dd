"""Retraining on one device and under MirroredStrategy on two logical CPUs, in one process.

Run by tests/test_distribution.py in a subprocess (the CPU must be split into
logical devices before TensorFlow initialises, which the test process has
already done; the split happens only when this file runs as a script, so
tests/test_multi_worker.py imports its genotype and helpers). A tiny generator
is retrained for 4 G iterations on one device; a copy of its workdir as it stood at iteration 2 is resumed by a new trainer
under MirroredStrategy, with the same seed and global batches, for iterations 3
and 4. (Tracing the steps for two replicas is what this costs, ~11 CPU-seconds,
so the one-device run is also the mirrored run's first half.) Prints one JSON
object on the last line of stdout:

    replicas, synchronized_bn   of the two trainers (one device, mirrored)
    losses                      {"one", "two"}: d_loss and g_loss of G iterations 3 and 4
    one, two                    the last checkpoint of each run, restored into a new
                                one-device trainer: {part: {variable path: values}} of
                                G, D, EMA G, both optimizers and the counters
    halfway                     the same of the one-device trainer at iteration 2
"""

import json
import os
import shutil
import sys

import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.space.genotypes import load_genotype
from alphagan_tf.gan.train import config as train_config
from alphagan_tf.gan.train import loop as train_loop
from alphagan_tf.gan.train.config import TrainConfig
from alphagan_tf.utils import distribution

# A small genotype (tracing under MirroredStrategy is what the test costs): one sep conv (two
# batch norms, synchronized under the strategy, as the head's) and one deconv; cheap ops elsewhere.
GENOTYPE = {
    "version": 1,
    "cells": [
        {"normal": ["conv_1x1", "sep_conv_3x3", "conv_1x1"], "up": ["nearest", "deconv"]},
        {"normal": ["conv_1x1", "conv_1x1", "conv_1x1"], "up": ["nearest", "nearest"]},
        {"normal": ["conv_1x1", "conv_1x1", "conv_1x1"], "up": ["nearest", "nearest"]},
    ],
    "skip_2": ["nearest"],
    "skip_3": ["nearest", "nearest"],
}
MIRRORED = dict(strategy="mirrored", devices=("/cpu:0", "/cpu:1"), cpu_devices=2)


def run_config(g_iterations, genotype, **overrides):
    return train_config.TrainRunConfig(
        train=TrainConfig(g_iterations=g_iterations, n_critic=2, g_batch_size=4,
                          d_batch_size=4, g_lr=1e-3, d_lr=1e-3, ema_decay=0.5),
        genotype=genotype, model=GeneratorConfig(gf=4, df=4, latent_dim=8, bottom_width=1),
        seed=3, deterministic=True, checkpoint_every=2, sample_every=2, keep_checkpoints=3,
        **overrides,
    )


def recording_losses(trainer, into: list):
    """`trainer`, appending each G iteration's losses to `into`."""
    run_iterations = trainer.run_iterations

    def recorded(real_batches, count):
        losses = run_iterations(real_batches, count)
        into.extend(losses)
        return losses

    trainer.run_iterations = recorded
    return trainer


def state(trainer):
    """{part: {variable path: values}}: G, D, EMA G, both optimizers, the counters."""
    parts = {
        "generator": trainer.generator.variables,
        "discriminator": trainer.discriminator.variables,
        "ema_generator": trainer.ema_generator.variables,
        "g_optimizer": trainer.g_optimizer.variables,
        "d_optimizer": trainer.d_optimizer.variables,
    }
    values = {part: {v.path: v.numpy() for v in variables} for part, variables in parts.items()}
    values["counters"] = {"g_iterations_done": trainer.g_iterations_done.numpy(),
                          "latent_rng": trainer.latent_rng.state.numpy()}
    return {part: {path: np.asarray(v).ravel().tolist() for path, v in part_values.items()}
            for part, part_values in values.items()}


def restored(workdir, config, genotype, number=None):
    """The state of the last checkpoint in `workdir` (or ckpt-`number`), restored into a new
    one-device trainer."""
    trainer = train_loop.build_trainer(config, load_genotype(genotype))
    path = (tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")) if number is None
            else os.path.join(workdir, "checkpoints", f"ckpt-{number}"))
    tf.train.Checkpoint(**trainer.checkpoint_items()).restore(path).expect_partial() \
        .assert_existing_objects_matched()
    return state(trainer)


def main(workdir):
    os.makedirs(workdir, exist_ok=True)
    genotype = os.path.join(workdir, "genotype.json")
    with open(genotype, "w") as f:
        json.dump(GENOTYPE, f)
    one_device, mirrored = run_config(4, genotype), run_config(4, genotype, **MIRRORED)
    losses = {"one": [], "two": []}
    # The trainers are built here, before run_training would seed them: seed first.
    keras.utils.set_random_seed(3)
    tf.config.experimental.enable_op_determinism()
    one = recording_losses(train_loop.build_trainer(one_device, load_genotype(genotype)),
                           losses["one"])
    train_loop.run_training(run_config(2, genotype), f"{workdir}/one", verbose=0, trainer=one)
    result = {"halfway": state(one)}
    shutil.copytree(f"{workdir}/one", f"{workdir}/two")  # the run as it stood at iteration 2
    train_loop.run_training(one_device, f"{workdir}/one", verbose=0, trainer=one)
    # The copy resumed under MirroredStrategy by a new trainer (what rerunning the command
    # with --strategy=mirrored does).
    two = recording_losses(train_loop.build_trainer(mirrored, load_genotype(genotype)),
                           losses["two"])
    train_loop.run_training(mirrored, f"{workdir}/two", verbose=0, trainer=two)

    result["replicas"] = [t.parallel.replicas for t in (one, two)]
    result["synchronized_bn"] = [t.generator.synchronized_bn for t in (one, two)]
    result["losses"] = {"one": losses["one"][2:], "two": losses["two"]}
    result["one"] = restored(f"{workdir}/one", one_device, genotype)
    result["two"] = restored(f"{workdir}/two", one_device, genotype)
    print(json.dumps(result))


if __name__ == "__main__":
    distribution.split_cpu(2)  # before the first TensorFlow op
    main(sys.argv[1])

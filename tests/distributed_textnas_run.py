"""TextNAS retraining on one device and under MirroredStrategy on two logical CPUs, in one process.

Run by tests/test_textnas_distribution.py in a subprocess (the CPU must be split into
logical devices before TensorFlow initialises). A tiny network with one layer of
every op (8 layers, width 8) is retrained on 3 SST-2 trees (43 phrases in batches of 6:
seven full ones and one of 1, which the two replicas share as one real row and one
empty row), with clipping that acts (clipnorm 0.05), no dropout, the same seed:

1. on one device for 10 steps (the first epoch is steps 1-8, checkpointed at 8 and 10);
2. under --strategy=mirrored for the first epoch (8 steps, checkpointed at 8);
3. run 2's workdir resumed on one device for steps 9 and 10.

Prints one JSON object on the last line of stdout:

    replicas                 of runs 1 and 2, from their start lines
    batch_sizes              the first epoch's batch sizes
    losses, accuracies       {"one", "two", "resumed"}: train loss / accuracy of every step
                             of each run (TensorBoard), by step
    dev                      {"one", "two"}: the dev evaluation at the end of epoch 1
    checkpoints              {"one_8", "two_8", "one_10", "resumed_10"}: {key: values}
    names                    the model's trainable variables in checkpoint order
                             (optimizer/_trainable_variables/<i> is names[i])
    learning_rate, steps     of the runs
"""

import contextlib
import glob
import io
import json
import os
import sys

from alphagan_tf.utils import distribution

distribution.split_cpu(2)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from alphagan_tf.textnas import data as sst  # noqa: E402
from alphagan_tf.textnas.space.architecture import OPS, chain_architecture  # noqa: E402
from alphagan_tf.textnas.space.model import NetworkConfig, TextClassifier  # noqa: E402
from alphagan_tf.textnas.train.config import TrainConfig  # noqa: E402
from alphagan_tf.textnas.train.loop import run_training

ARCHITECTURE = chain_architecture(OPS)
LEARNING_RATE, SEED = 2e-3, 5
MIRRORED = dict(strategy="mirrored", devices=("/cpu:0", "/cpu:1"), cpu_devices=2)


def config(sst_dir, **overrides):
    fields = dict(
        sst_dir=sst_dir, task="sst2", max_train_trees=3, units=8, embedding_dim=8,
        embedding_dropout=0.0, output_dropout=0.0, batch_size=6, epochs=2, max_steps=8,
        learning_rate=LEARNING_RATE, clipnorm=0.05, log_every=1, checkpoint_every=100,
        seed=SEED)
    return TrainConfig(**{**fields, **overrides})


def scalars(workdir, tag):
    """{step: value} of TensorBoard scalar `tag`."""
    values = {}
    for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "**", "events.*"),
                                 recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def checkpoint(workdir, step):
    """{key: values} of `workdir`'s checkpoint of `step` (model, optimizer, step)."""
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", f"ckpt-{step}"))
    return {key: np.asarray(reader.get_tensor(key)).ravel().tolist()
            for key in sorted(reader.get_variable_to_shape_map())
            if not key.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def train(cfg, workdir):
    """run_training, quiet; returns the replica count its start line names."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_training(cfg, ARCHITECTURE, workdir, verbose=True)
    return int(out.getvalue().split(" replica(s)")[0].rsplit(", ", 1)[-1])


def main(workdir, sst_dir):
    one, two = os.path.join(workdir, "one"), os.path.join(workdir, "two")
    out = {"replicas": [train(config(sst_dir, max_steps=10), one),
                        train(config(sst_dir, **MIRRORED), two)]}
    losses = {"one": scalars(one, "train/loss"), "two": scalars(two, "train/loss")}
    accuracies = {"one": scalars(one, "train/accuracy"), "two": scalars(two, "train/accuracy")}
    out["dev"] = {name: json.load(open(os.path.join(path, "history.json")))[0]
                  for name, path in (("one", one), ("two", two))}
    out["checkpoints"] = {"one_8": checkpoint(one, 8), "two_8": checkpoint(two, 8),
                          "one_10": checkpoint(one, 10)}
    train(config(sst_dir, max_steps=10), two)  # resumed on one device: steps 9 and 10
    out["checkpoints"]["resumed_10"] = checkpoint(two, 10)
    losses["resumed"] = {s: v for s, v in scalars(two, "train/loss").items() if s > 8}
    accuracies["resumed"] = {s: v for s, v in scalars(two, "train/accuracy").items() if s > 8}
    out["losses"], out["accuracies"] = losses, accuracies
    dataset = sst.load_sst(sst_dir, "sst2", 64, True, 3)
    out["batch_sizes"] = [len(b) for b in
                          sst.BucketBatcher(dataset.train_phrases, 6, SEED).epoch_indices(0)]
    model = TextClassifier.from_architecture(ARCHITECTURE, NetworkConfig(
        vocab_size=len(dataset.vocab), num_classes=2, units=8, embedding_dim=8))
    out["names"] = [v.path.split("/", 1)[1] for v in model.trainable_variables]
    out["learning_rate"], out["steps"] = LEARNING_RATE, 10
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

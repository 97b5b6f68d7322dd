"""The loop of the sampling searches on shared weights: ENAS (enas.py) and random-WS (random_ws.py).

Both train the supernet's weights one sampled architecture per step (`child.py`)
on the weight part of the train trees and derive the same way; they differ
only in where the architectures come from:

- `enas`: the LSTM controller (`controller.py`), trained by REINFORCE
  (`reinforce.py`) with reward = accuracy of the sampled child on a held-out
  batch (inference mode, the shared weights as they are);
- `random_ws`: uniform over the space (`architecture.random_architecture`:
  every op, input and skip subset equally likely), never trained.

Schedule (epochs over the weight phrases, like the differentiable search):

    for each weight batch:   child step on a sampled architecture
    after warm-up, every `controller_every` child steps (enas only):
                             `controller_steps` controller steps on held-out batches
    at each epoch end:       held-out sentence accuracy of `EPOCH_SAMPLES` samples (logged)

Derivation (ENAS's): sample `derive_samples` architectures, evaluate each on
the held-out sentences with the shared weights, keep the most accurate (ties:
lower loss, then the earlier sample). Rerunning a finished search derives
again (no training), e.g. with another `derive_samples`.

Every random draw is a pure function of (seed, purpose, counter) (`nas/sampling.py`): child step s
samples with seed (seed, CHILD, s), controller step k with (seed, CONTROLLER, k),
derive sample j with (seed, DERIVE, j). With the batch order (a function of
seed and epoch) and a checkpoint of child weights, child optimizer, controller,
its optimizer, baseline and step counters, a resumed run takes the same steps
as an uninterrupted one.

Workdir layout::

    checkpoints/          tf.train.CheckpointManager
    tensorboard/          scalars (child loss/accuracy, reward, baseline, entropy, skips)
    derive_scores.json    every derive sample: held-out accuracy, loss, architecture
    architecture.json     the result
    search_config.json    the config of the run (of its latest session)
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.nas.sampling import stream_seed
from alphagan_tf.textnas import data as sst
from alphagan_tf.textnas.search.child import ChildSteps, SampledPathAdam
from alphagan_tf.textnas.search.config import SearchResult, prepare_search
from alphagan_tf.textnas.space.encoding import decode
from alphagan_tf.textnas.train.classification import make_checkpoint
from alphagan_tf.utils import precision


#: Seed streams: what a stateless draw is for.
CHILD, CONTROLLER, DERIVE, EPOCH_EVAL = range(4)

#: Architectures evaluated on the held-out sentences at each epoch end (for the logs).
EPOCH_SAMPLES = 4


class Sampler:
    """Where a sampling search's architectures come from (enas.py, random_ws.py).

    `sampler(seed)` draws an `EncodedArchitecture`; the hooks below let it train
    (ENAS's controller) and are no-ops for a sampler that never learns.
    """

    name = "sampler"

    def __call__(self, seed: np.ndarray):
        raise NotImplementedError

    def checkpoint_items(self) -> dict:
        return {}

    def learning_rates(self, config) -> dict:
        return {}

    def describe(self, config) -> str:
        return ""

    def epoch_note(self, epoch: int, config) -> str:
        return ""

    def after_child_step(self, step: int, warmup_steps: int, child: ChildSteps,
                         arch_batches: sst.BucketBatcher, config) -> dict[str, float]:
        """What it trained after child step `step` (metrics for the logs), or {}."""
        return {}


def derive_by_sampling(sampler, child: ChildSteps, batches, seed: int, num_samples: int):
    """The best of `num_samples` sampled architectures on `batches`, and every score.

    Returns:
        (the most accurate `TextArchitecture` (ties: lower loss, then the earlier
        sample), a list of {"sample", "accuracy", "loss", "architecture"} per sample).
    """
    architectures, scores = [], []
    for j in range(num_samples):
        encoded = sampler(stream_seed(seed, DERIVE, j))
        architecture = decode(*encoded.as_tuple())
        architectures.append(architecture)
        scores.append({"sample": j, **child.evaluate(encoded, batches),
                       "architecture": architecture.to_dict()})
    best = min(range(num_samples), key=lambda j: (-scores[j]["accuracy"], scores[j]["loss"], j))
    return architectures[best], scores


def run_sampling_search(config, workdir: str, make_sampler: Callable[[Any], Sampler],
                        verbose: bool = True) -> SearchResult:
    """Runs (or resumes) a search whose architectures a sampler draws; returns a `SearchResult`.

    Args:
        config: a `config.SearchConfig`.
        workdir: output folder (created); an existing checkpoint there is resumed.
        make_sampler: config -> ENAS's controller (enas.py) or the uniform sampler
            (random_ws.py); called after the seeding and the child, so its weights are
            the same in every session.
        verbose: progress bar and epoch summaries on stdout.
    """
    run, split, model = prepare_search(config, workdir, verbose)
    child = ChildSteps(model, precision.with_loss_scaling(
        SampledPathAdam(config.learning_rate, global_clipnorm=config.clipnorm or None,
                        name="weight_adam"),
        precision.uses_loss_scaling(config.precision)))
    sampler = make_sampler(config)

    global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    checkpoint = make_checkpoint(model, {"weight_optimizer": child.optimizer}, global_step,
                                 **sampler.checkpoint_items())
    rates = {"weight_adam": (child.optimizer, config.learning_rate), **sampler.learning_rates(config)}
    manager, restored = run.checkpoints(
        checkpoint, 2, verify=lambda status, path: status.assert_consumed(), learning_rates=rates)
    if restored and verbose:
        print(f"resumed from {restored} (step {int(global_step.numpy())})")

    weight_batches = sst.BucketBatcher(split.weight_phrases, config.batch_size, config.seed)
    arch_batches = sst.BucketBatcher(split.arch_phrases, config.batch_size, config.seed + 1)
    held_out_eval = sst.eval_batches(split.arch_sentences, 256)
    steps_per_epoch = len(weight_batches)
    warmup_steps = config.warmup_epochs * steps_per_epoch
    writer = run.writer
    if verbose:
        print(f"search {config.task} ({config.algorithm}): {len(split.weight_phrases)} weight phrases, "
              f"{len(split.arch_phrases)} held-out phrases ({len(split.arch_sentences)} sentences), "
              f"vocab {len(split.vocab)}, {steps_per_epoch} child steps/epoch"
              + sampler.describe(config))

    step = int(global_step.numpy())
    held_out_accuracy = None
    for epoch in range(step // steps_per_epoch, config.epochs):
        offset = step - epoch * steps_per_epoch
        progbar = keras.utils.Progbar(steps_per_epoch, verbose=1 if verbose else 0,
                                      stateful_metrics=["reward", "entropy", "baseline"])
        if verbose:
            print(f"epoch {epoch + 1}/{config.epochs}" + sampler.epoch_note(epoch, config))
        for index, (ids, labels) in enumerate(weight_batches.epoch(epoch, offset), offset):
            encoded = sampler(stream_seed(config.seed, CHILD, step))
            w = child.train_step(ids, labels, *encoded.as_tuple())
            step += 1
            global_step.assign(step)
            values = [("loss", float(w["loss"])), ("acc", float(w["accuracy"]))]
            run.check(f"step {step}", dict(values[:1]))
            trained = sampler.after_child_step(step, warmup_steps, child, arch_batches, config)
            if trained:
                values += [(k, trained[k]) for k in ("reward", "entropy", "baseline")]
                with writer.as_default(step=step):
                    for name, value in trained.items():
                        tf.summary.scalar(f"{sampler.name}/{name}", value)
            progbar.update(index + 1, values=values)
            if step % config.log_every == 0:
                with writer.as_default(step=step):
                    tf.summary.scalar("child/loss", w["loss"])
                    tf.summary.scalar("child/accuracy", w["accuracy"])
                run.write_learning_rates(step)
            if step % config.checkpoint_every == 0:
                run.save(manager, step, f"step {step}", variables=model.variables)
            if config.max_steps is not None and step >= config.max_steps:
                break

        if step < (epoch + 1) * steps_per_epoch:  # stopped mid-epoch
            run.save(manager, step, f"step {step}", variables=model.variables)
            writer.flush()
            if verbose:
                print(f"\nstopped at step {step} (max_steps); rerun to resume.")
            return SearchResult(None, step, held_out_accuracy)
        accuracies = [child.evaluate(sampler(stream_seed(config.seed, EPOCH_EVAL,
                                                         epoch * EPOCH_SAMPLES + j)),
                                     held_out_eval)["accuracy"] for j in range(EPOCH_SAMPLES)]
        held_out_accuracy = float(np.mean(accuracies))
        with writer.as_default(step=step):
            tf.summary.scalar("held_out/sampled_sentence_accuracy_mean", held_out_accuracy)
            tf.summary.scalar("held_out/sampled_sentence_accuracy_max", max(accuracies))
        writer.flush()
        run.save(manager, step, f"step {step}", variables=model.variables)
        if verbose:
            print(f"held-out sentences, {EPOCH_SAMPLES} sampled architectures: accuracy "
                  + " ".join(f"{a:.4f}" for a in accuracies))
        if config.max_steps is not None and step >= config.max_steps and epoch + 1 < config.epochs:
            if verbose:
                print(f"stopped at step {step} (max_steps); rerun to resume.")
            return SearchResult(None, step, held_out_accuracy)

    architecture, scores = derive_by_sampling(sampler, child, held_out_eval, config.seed,
                                              config.derive_samples)
    run.write_json("derive_scores.json", scores)
    best = max(s["accuracy"] for s in scores)
    architecture.save(run.output("architecture.json"))
    if verbose:
        accuracies = np.array([s["accuracy"] for s in scores])
        print(f"derive: {len(scores)} sampled architectures, held-out sentence accuracy "
              f"mean {accuracies.mean():.4f} sd {accuracies.std():.4f} max {best:.4f}\n"
              f"{architecture.describe()}\nwrote {run.file('architecture.json')}")
    return SearchResult(architecture, step, best)

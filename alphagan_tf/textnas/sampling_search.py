"""Sampling searches on shared weights: ENAS (TextNAS's own search) and its random control.

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


import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.nas.sampling import seed_state, stream_seed
from alphagan_tf.textnas import data as sst
from alphagan_tf.textnas.architecture import random_architecture
from alphagan_tf.textnas.child import ChildSteps, SampledPathAdam
from alphagan_tf.textnas.controller import TextNASController
from alphagan_tf.textnas.encoding import EncodedArchitecture, decode, encode
from alphagan_tf.textnas.reinforce import ReinforceTrainer
from alphagan_tf.textnas.training import make_checkpoint
from alphagan_tf.utils import precision

#: Seed streams: what a stateless draw is for.
CHILD, CONTROLLER, DERIVE, EPOCH_EVAL = range(4)

#: Architectures evaluated on the held-out sentences at each epoch end (for the logs).
EPOCH_SAMPLES = 4


class UniformSampler:
    """Architectures uniform over the space of `num_layers` layers (random_ws)."""

    def __init__(self, num_layers: int):
        self.num_layers = num_layers

    def __call__(self, seed: np.ndarray) -> EncodedArchitecture:
        return encode(random_architecture(self.num_layers, seed_state(seed)))


class ControllerSampler:
    """Architectures drawn from a controller's compiled `sample(seed)` (no gradient)."""

    def __init__(self, sample_fn):
        self._sample = sample_fn

    def __call__(self, seed: np.ndarray) -> EncodedArchitecture:
        return EncodedArchitecture(*(a.numpy() for a in self._sample(tf.constant(seed)).architecture))


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


def run_sampling_search(config, workdir: str, verbose: bool = True):
    """Runs (or resumes) an `enas` or `random_ws` search; returns a `searcher.SearchResult`.

    Args:
        config: a `searcher.SearchConfig` with algorithm "enas" or "random_ws".
        workdir: output folder (created); an existing checkpoint there is resumed.
        verbose: progress bar and epoch summaries on stdout.
    """
    from alphagan_tf.textnas.searcher import SearchResult, prepare_search

    if config.algorithm not in ("enas", "random_ws"):
        raise ValueError(f"run_sampling_search runs enas or random_ws. Received: {config.algorithm!r}")
    run, split, model = prepare_search(config, workdir, verbose)
    child = ChildSteps(model, precision.with_loss_scaling(
        SampledPathAdam(config.learning_rate, global_clipnorm=config.clipnorm or None,
                        name="weight_adam"),
        precision.uses_loss_scaling(config.precision)))

    enas = config.algorithm == "enas"
    more_state = {}
    trainer = None
    if enas:
        controller = TextNASController.create(config.num_layers, config.controller.units,
                                              config.controller.skip_target)
        trainer = ReinforceTrainer(controller, config.controller)
        sampler = ControllerSampler(trainer.sample)
        more_state = trainer.checkpoint_items()
    else:
        sampler = UniformSampler(config.num_layers)

    global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    checkpoint = make_checkpoint(model, {"weight_optimizer": child.optimizer}, global_step,
                                 **more_state)
    rates = {"weight_adam": (child.optimizer, config.learning_rate)}
    if enas:
        rates["controller_adam"] = (trainer.optimizer, config.controller.learning_rate)
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
              + (f", {config.controller_steps} controller steps every {config.controller_every}"
                 if enas else ""))

    step = int(global_step.numpy())
    held_out_accuracy = None
    controller_means: dict[str, float] = {}
    for epoch in range(step // steps_per_epoch, config.epochs):
        offset = step - epoch * steps_per_epoch
        progbar = keras.utils.Progbar(steps_per_epoch, verbose=1 if verbose else 0,
                                      stateful_metrics=["reward", "entropy", "baseline"])
        if verbose:
            print(f"epoch {epoch + 1}/{config.epochs}"
                  + (" (controller not trained: warm-up)" if enas and epoch < config.warmup_epochs else ""))
        for index, (ids, labels) in enumerate(weight_batches.epoch(epoch, offset), offset):
            encoded = sampler(stream_seed(config.seed, CHILD, step))
            w = child.train_step(ids, labels, *encoded.as_tuple())
            step += 1
            global_step.assign(step)
            values = [("loss", float(w["loss"])), ("acc", float(w["accuracy"]))]
            run.check(f"step {step}", dict(values[:1]))
            if enas and step > warmup_steps and (step - warmup_steps) % config.controller_every == 0:
                controller_means = _controller_phase(trainer, child, arch_batches, config)
                values += [(k, controller_means[k]) for k in ("reward", "entropy", "baseline")]
                with writer.as_default(step=step):
                    for name, value in controller_means.items():
                        tf.summary.scalar(f"controller/{name}", value)
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


def _controller_phase(trainer: ReinforceTrainer, child: ChildSteps,
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

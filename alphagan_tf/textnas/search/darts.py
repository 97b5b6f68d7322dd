"""The differentiable TextNAS search on SST (darts: first-order, alternating).

ENAS and random-WS, the sampling searches on shared weights, are enas.py and random_ws.py.

The train trees are split (seeded) into a weight part and a held-out
architecture part (`data.load_search_split`; dev and test are never touched).
Every step: a weight step on a batch of weight-part phrases, then (after
`warmup_epochs`) an architecture step on a batch of held-out phrases, both from
`nas.bilevel.AlternatingSteps`. At the end the derived architecture (argmax op,
argmax input, skip gates > 0.5, at most `max_skips` per layer) is written to
`workdir/architecture.json`. Rerunning a finished search derives again
(no training), e.g. with another `op_selection` or `max_skips`.

Against the collapse seen on SST (almost every skip gate drifting above 0.5,
so the derived network sums nearly all earlier layers into every layer), two
options of our own design, both off by default: `skip_penalty` adds
`skip_penalty * mean(sigmoid(skip gate logits))` to the architecture loss, so
a skip stays only if it lowers the held-out loss by more than it costs; and
`max_skips` caps the derived skips per layer at the largest gates.

Exact resume: the batch order is a pure function of (seed, epoch), and the
checkpoint holds every model variable (dropout seed states included), both
optimizers and the global step, so a resumed run takes the same steps as an
uninterrupted one.

Workdir layout::

    checkpoints/                 tf.train.CheckpointManager
    tensorboard/                 scalars (losses, accuracies, alpha entropies)
    architecture_epoch_<e>.json  derived architecture after each epoch
    probabilities.json           softmax / gate values at the end
    op_removal_scores.json       with op_selection="removal": held-out loss increase per (layer, op)
    architecture.json            the result
    search_config.json           the config of the run (of its latest session)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.nas.arch_optimizer import ArchitectureOptimizer
from alphagan_tf.nas.bilevel import AlternatingSteps
from alphagan_tf.textnas import data as sst
from alphagan_tf.textnas.search.config import SearchConfig, SearchResult, prepare_search
from alphagan_tf.textnas.search.selection import op_removal_scores, select_by_removal
from alphagan_tf.textnas.space.architecture import OPS
from alphagan_tf.textnas.space.supernet import TextNASSupernet
from alphagan_tf.textnas.train.classification import (
    BATCH_SIGNATURE, classification_loss_fn, evaluate, make_checkpoint, make_predict_fn,
)
from alphagan_tf.utils import precision as precision_lib


def _entropy(p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0)
    return float(-(p * np.log(p)).sum())


def skip_penalised_loss_fn(model: TextNASSupernet, loss_fn, skip_penalty: float):
    """The architecture step's loss: `loss_fn` + skip_penalty * mean skip gate.

    With skip_penalty = 0 it is `loss_fn` itself. Otherwise the metrics also
    hold "skip_gate" (the mean gate) and "cross_entropy" (the loss before the
    penalty).
    """
    if not skip_penalty:
        return loss_fn

    def penalised(ids, labels):
        loss, metrics = loss_fn(ids, labels)
        gate = model.mean_skip_gate()
        return loss + skip_penalty * gate, {**metrics, "skip_gate": gate, "cross_entropy": loss}

    return penalised


def run_search(config: SearchConfig, workdir: str, verbose: bool = True) -> SearchResult:
    """Runs (or resumes) a search of `config.algorithm`; returns the derived architecture.

    Args:
        config: the run's settings.
        workdir: output folder (created); an existing checkpoint there is resumed.
        verbose: progress bar and epoch summaries on stdout.
    """
    run, split, model = prepare_search(config, workdir, verbose)

    loss_scaling = precision_lib.uses_loss_scaling(config.precision)
    weight_optimizer = precision_lib.with_loss_scaling(keras.optimizers.Adam(
        config.learning_rate, global_clipnorm=config.clipnorm or None, name="weight_adam"
    ), loss_scaling)
    arch_optimizer = ArchitectureOptimizer(config.arch, loss_scaling=loss_scaling)
    loss_fn = classification_loss_fn(model)
    steps = AlternatingSteps(
        loss_fn, skip_penalised_loss_fn(model, loss_fn, config.skip_penalty),
        model.weight_variables, model.arch_variables,
        weight_optimizer, arch_optimizer, input_signature=BATCH_SIGNATURE,
    )
    steps.build()
    predict_fn = make_predict_fn(model)

    global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    checkpoint = make_checkpoint(
        model, {"weight_optimizer": weight_optimizer, "arch_optimizer": arch_optimizer.optimizer},
        global_step
    )
    manager, restored = run.checkpoints(
        checkpoint, 2, verify=lambda status, path: status.assert_consumed(),
        learning_rates={"weight_adam": (weight_optimizer, config.learning_rate),
                        "arch_adam": (arch_optimizer.optimizer, config.arch.learning_rate)})
    if restored and verbose:
        print(f"resumed from {restored} (step {int(global_step.numpy())})")

    weight_batches = sst.BucketBatcher(split.weight_phrases, config.batch_size, config.seed)
    arch_batches = sst.BucketBatcher(split.arch_phrases, config.batch_size, config.seed + 1)
    held_out_eval = sst.eval_batches(split.arch_sentences, 256)
    steps_per_epoch = len(weight_batches)
    warmup_steps = config.warmup_epochs * steps_per_epoch
    writer = run.writer
    if verbose:
        print(f"search {config.task}: {len(split.weight_phrases)} weight phrases, "
              f"{len(split.arch_phrases)} held-out phrases ({len(split.arch_sentences)} sentences), "
              f"vocab {len(split.vocab)}, {len(model.arch_variables)} architecture tensors, "
              f"{steps_per_epoch} steps/epoch")

    step = int(global_step.numpy())
    held_out_accuracy = None
    start_epoch = step // steps_per_epoch
    for epoch in range(start_epoch, config.epochs):
        offset = step - epoch * steps_per_epoch
        stopped = False
        progbar = keras.utils.Progbar(steps_per_epoch, verbose=1 if verbose else 0,
                                      stateful_metrics=["arch_loss", "arch_acc"])
        if verbose:
            print(f"epoch {epoch + 1}/{config.epochs}"
                  + (" (weights only: warm-up)" if epoch < config.warmup_epochs else ""))
        for index, (ids, labels) in enumerate(weight_batches.epoch(epoch, offset), offset):
            w = steps.weight_step(ids, labels)
            values = [("loss", float(w["loss"])), ("acc", float(w["accuracy"]))]
            run.check(f"step {step + 1}", dict(values[:1]))
            a = None
            if step >= warmup_steps:
                arch_ids, arch_labels = arch_batches.batch_at(step - warmup_steps)
                a = steps.arch_step(arch_ids, arch_labels)
                values += [("arch_loss", float(a["loss"])), ("arch_acc", float(a["accuracy"]))]
            step += 1
            global_step.assign(step)
            progbar.update(index + 1, values=values)
            if step % config.log_every == 0:
                with writer.as_default(step=step):
                    tf.summary.scalar("weight/loss", w["loss"])
                    tf.summary.scalar("weight/accuracy", w["accuracy"])
                    if a is not None:
                        tf.summary.scalar("arch/loss", a["loss"])
                        tf.summary.scalar("arch/accuracy", a["accuracy"])
                        if "skip_gate" in a:
                            tf.summary.scalar("arch/mean_skip_gate", a["skip_gate"])
                run.write_learning_rates(step)
            if step % config.checkpoint_every == 0:
                run.save(manager, step, f"step {step}", variables=model.variables)
            if config.max_steps is not None and step >= config.max_steps:
                stopped = True
                break

        if step < (epoch + 1) * steps_per_epoch:  # stopped mid-epoch
            run.save(manager, step, f"step {step}", variables=model.variables)
            writer.flush()
            if verbose:
                print(f"\nstopped at step {step} (max_steps); rerun to resume.")
            return SearchResult(None, step, held_out_accuracy)
        held_out = evaluate(predict_fn, held_out_eval)
        held_out_accuracy = held_out["accuracy"]
        architecture = model.architecture(config.max_skips)
        probabilities = model.probabilities()
        with writer.as_default(step=step):
            tf.summary.scalar("held_out/sentence_accuracy", held_out["accuracy"])
            tf.summary.scalar("held_out/sentence_loss", held_out["loss"])
            tf.summary.scalar("alpha/mean_op_entropy",
                              np.mean([_entropy(list(p["op"].values())) for p in probabilities]))
            tf.summary.scalar("alpha/mean_input_entropy",
                              np.mean([_entropy(list(p["input"].values())) for p in probabilities]))
            tf.summary.scalar("alpha/skips_kept",
                              sum(len(layer.skips) for layer in architecture.layers))
            for name in sorted(set(architecture.ops)):
                tf.summary.scalar(f"derived_ops/{name}", architecture.ops.count(name))
        writer.flush()
        architecture.save(run.output(f"architecture_epoch_{epoch + 1}.json"))
        run.save(manager, step, f"step {step}", variables=model.variables)
        if verbose:
            print(f"held-out sentences: accuracy {held_out['accuracy']:.4f} "
                  f"loss {held_out['loss']:.4f}\n{architecture.describe()}")
        if stopped and epoch + 1 < config.epochs:
            if verbose:
                print(f"stopped at step {step} (max_steps); rerun to resume.")
            return SearchResult(None, step, held_out_accuracy)

    architecture = model.architecture(config.max_skips)
    run.write_json("probabilities.json", model.probabilities())
    if config.op_selection == "removal":
        scores = op_removal_scores(model, predict_fn, held_out_eval)
        run.write_json("op_removal_scores.json", {"ops": list(OPS), "scores": scores.tolist()})
        architecture = select_by_removal(architecture, scores)
    architecture.save(run.output("architecture.json"))
    if verbose:
        print(f"{architecture.describe()}\nwrote {run.file('architecture.json')}")
    return SearchResult(architecture, step, held_out_accuracy)

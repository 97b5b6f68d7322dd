"""Retraining a derived TextNAS architecture from scratch on SST.

Protocol: train on all (deduplicated) phrases of the train trees, evaluate the
dev sentences after every epoch (and every `eval_every` steps), keep the
weights of the best dev evaluation, and evaluate the test sentences once, at
the end, with those weights. With `patience` > 0 the run stops early after
that many dev evaluations in a row without a new best (our addition: on SST
from scratch the best dev point comes within the first one or two epochs).

Workdir layout::

    checkpoints/        tf.train.CheckpointManager (exact resume, like the search)
    tensorboard/        scalars
    history.json        dev accuracy/loss per evaluation (epoch, step)
    best.weights.h5     weights of the best dev evaluation so far
    model_config.json   architecture + network sizes + max_length (for export)
    vocab.txt           the vocabulary, one token a line (id = line number)
    results.json        the final figures (test accuracy appears only here)
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.textnas import data as sst
from alphagan_tf.textnas.space.architecture import TextArchitecture
from alphagan_tf.textnas.space.model import NetworkConfig, TextClassifier
from alphagan_tf.textnas.train.classification import (
    WEIGHTED_BATCH_SIGNATURE,
    classification_loss_fn,
    evaluate,
    make_checkpoint,
    make_predict_fn,
    replica_batch,
)
from alphagan_tf.textnas.train.config import TrainConfig
from alphagan_tf.utils import distribution
from alphagan_tf.utils import precision as precision_lib
from alphagan_tf.utils import seeding
from alphagan_tf.utils.data_parallel import DataParallel
from alphagan_tf.utils.workdir import Workdir


def _make_optimizer(config: TrainConfig, total_steps: int,
                    clips: bool = True) -> keras.optimizers.Optimizer:
    """Adam / AdamW with the cosine schedule; `clips`=False leaves the clipping to the step."""
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, max(total_steps, 1))
    clip = (config.clipnorm or None) if clips else None
    if config.weight_decay:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay,
                                           global_clipnorm=clip, name="adamw")
    else:
        optimizer = keras.optimizers.Adam(schedule, global_clipnorm=clip, name="adam")
    return precision_lib.with_loss_scaling(optimizer, precision_lib.uses_loss_scaling(config.precision))


def patience_exhausted(history: list[dict[str, Any]], patience: int) -> bool:
    """True when the last `patience` (> 0) dev evaluations brought no new best.

    Ties with the best so far do not count as a new best.
    """
    if patience <= 0 or not history:
        return False
    accuracies = [h["dev_accuracy"] for h in history]
    best_index = int(np.argmax(accuracies))  # the first occurrence of the maximum
    return len(accuracies) - 1 - best_index >= patience


def run_training(config: TrainConfig, architecture: TextArchitecture, workdir: str,
                 architecture_source: str = "", verbose: bool = True) -> dict[str, Any] | None:
    """Trains (or resumes) the fixed network; returns the results dict.

    Args:
        config: the run's settings.
        architecture: the layers to build.
        workdir: output folder (created); an existing checkpoint there is resumed.
        architecture_source: how the architecture was given (recorded in results).
        verbose: progress bar and epoch summaries on stdout.

    Returns:
        the contents of results.json, or None when stopped early by max_steps.
    """
    strategy = distribution.strategy_from_config(config)  # splits the CPU before any op
    parallel = DataParallel(strategy)
    parallel.check_batch(config.batch_size, "train_batch_size")
    run = Workdir.open(workdir, config, "train_config.json", resumable=TrainConfig.RESUMABLE,
                       pinned={"architecture.json": architecture.to_json()}, verbose=verbose)
    seeding.seed_everything(config.seed)
    dataset = sst.load_sst(config.sst_dir, config.task, config.max_length,
                           config.dedup_phrases, config.max_train_trees)
    network = NetworkConfig(
        vocab_size=len(dataset.vocab), num_classes=dataset.num_classes, units=config.units,
        embedding_dim=config.embedding_dim, embedding_dropout=config.embedding_dropout,
        output_dropout=config.output_dropout, pooling=config.pooling,
        word_dropout=config.word_dropout,
    )
    precision_lib.warn_if_emulated(config.precision)
    with precision_lib.dtype_policy(config.precision), strategy.scope():
        model = TextClassifier.from_architecture(architecture, network)
    if config.embeddings_path:
        matrix, found = sst.load_glove(config.embeddings_path, dataset.vocab,
                                       config.embedding_dim, seed=config.seed)
        model.stem.set_embeddings(matrix)
        if verbose:
            print(f"embeddings: {found}/{len(dataset.vocab) - 2} words found")

    batches = sst.BucketBatcher(dataset.train_phrases, config.batch_size, config.seed)
    steps_per_epoch = len(batches)
    with strategy.scope():
        optimizer = _make_optimizer(config, config.epochs * steps_per_epoch,
                                    clips=parallel.replicas == 1)
        optimizer.build(model.trainable_variables)
    loss_fn = classification_loss_fn(model, config.label_smoothing)
    variables = model.trainable_variables

    def replica_step(ids, labels, weights):
        # This replica's slice; `weights` make its loss its share of the batch mean.
        with tf.GradientTape() as tape:
            loss, metrics = loss_fn(ids, labels, weights=weights)
            scaled = optimizer.scale_loss(loss)  # float16: the loss scale; else the loss
        # Dense: Keras' Adam squares an embedding's IndexedSlices slice by slice (a word that
        # occurs twice in the batch counted twice in its second moment), which no sum over
        # replicas reproduces; dense, it sees the batch's gradient, on any number of replicas.
        grads = [None if g is None else tf.convert_to_tensor(g)
                 for g in tape.gradient(scaled, variables)]
        grads = parallel.clipped_gradients(grads, config.clipnorm)
        optimizer.apply(grads, variables)
        return {"loss": loss, **metrics}

    @tf.function(input_signature=WEIGHTED_BATCH_SIGNATURE)
    def train_step(ids, labels, weights):
        return parallel.run(replica_step, ids, labels, weights)

    predict_fn = make_predict_fn(model)
    dev_batches = sst.eval_batches(dataset.dev_sentences, 256)

    global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    checkpoint = make_checkpoint(model, {"optimizer": optimizer}, global_step)
    # A schedule (cosine decay from `learning_rate`): rebuilt from the config, recorded only.
    manager, restored = run.checkpoints(
        checkpoint, 2, verify=lambda status, path: status.assert_consumed(),
        learning_rates={"adam": (optimizer, config.learning_rate)})
    history: list[dict[str, float]] = []
    if restored:
        restored_step = int(global_step.numpy())
        # Evaluations after the restored checkpoint are taken again.
        history = [h for h in run.read_json("history.json", []) if h.get("step", 0) <= restored_step]
        if verbose:
            print(f"resumed from {restored} (step {restored_step})")
    dataset.vocab.save(run.output("vocab.txt"))
    run.write_json("model_config.json", {
        "architecture": architecture.to_dict(),
        "network": network.to_dict(),
        "max_length": config.max_length,
        "task": config.task,
    })
    num_parameters = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    if verbose:
        print(f"train {config.task}: {len(dataset.train_phrases)} phrases, "
              f"{len(dataset.dev_sentences)} dev / {len(dataset.test_sentences)} test sentences, "
              f"vocab {len(dataset.vocab)}, {num_parameters} parameters, "
              f"{steps_per_epoch} steps/epoch, {parallel.replicas} replica(s)\n"
              f"{architecture.describe()}")

    writer = run.writer

    def dev_evaluation(epoch: int, step: int) -> bool:
        """Evaluates dev, keeps the best weights, checkpoints; True when patience runs out."""
        dev = evaluate(predict_fn, dev_batches)
        best_before = max((h["dev_accuracy"] for h in history), default=-1.0)
        history.append({"epoch": epoch + 1, "step": step,
                        "dev_accuracy": dev["accuracy"], "dev_loss": dev["loss"]})
        run.check(f"step {step}", {"dev_loss": dev["loss"]}, model.variables)
        if dev["accuracy"] > best_before:
            model.save_weights(run.output("best.weights.h5"))
        run.write_json("history.json", history)
        with writer.as_default(step=step):
            tf.summary.scalar("dev/sentence_accuracy", dev["accuracy"])
            tf.summary.scalar("dev/sentence_loss", dev["loss"])
        writer.flush()
        run.save(manager, step)
        if verbose:
            mark = " (best)" if dev["accuracy"] > best_before else ""
            print(f"\nstep {step} (epoch {epoch + 1}) dev sentences: accuracy {dev['accuracy']:.4f} "
                  f"loss {dev['loss']:.4f}{mark}")
        return patience_exhausted(history, config.patience)

    step = int(global_step.numpy())
    total_steps = config.epochs * steps_per_epoch
    started = time.time()
    stop = patience_exhausted(history, config.patience)
    for epoch in range(step // steps_per_epoch, config.epochs):
        if stop:
            break
        offset = step - epoch * steps_per_epoch
        if verbose:
            print(f"epoch {epoch + 1}/{config.epochs}")
        progbar = keras.utils.Progbar(steps_per_epoch, verbose=1 if verbose else 0)
        for index, (ids, labels) in enumerate(batches.epoch(epoch, offset), offset):
            out = train_step(*replica_batch(ids, labels, parallel.replicas))
            step += 1
            global_step.assign(step)
            loss = float(out["loss"])
            run.check(f"step {step}", {"loss": loss})
            progbar.update(index + 1, values=[("loss", loss), ("acc", float(out["accuracy"]))])
            if step % config.log_every == 0:
                with writer.as_default(step=step):
                    tf.summary.scalar("train/loss", out["loss"])
                    tf.summary.scalar("train/accuracy", out["accuracy"])
                run.write_learning_rates(step)
            if index + 1 == steps_per_epoch or (config.eval_every and step % config.eval_every == 0):
                stop = dev_evaluation(epoch, step)
                if stop:
                    break
            elif step % config.checkpoint_every == 0:
                run.save(manager, step, f"step {step}", variables=model.variables)
            if config.max_steps is not None and step >= config.max_steps:
                break
        if not stop and config.max_steps is not None and config.max_steps <= step < total_steps:
            run.save(manager, step, f"step {step}", variables=model.variables)
            writer.flush()
            if verbose:
                print(f"\nstopped at step {step} (max_steps); rerun to resume.")
            return None
    if stop and verbose:
        print(f"stopped early at step {step}: {config.patience} dev evaluations without a new best")

    best = max(history, key=lambda h: h["dev_accuracy"])
    model.load_weights(run.file("best.weights.h5"))
    test = evaluate(predict_fn, sst.eval_batches(dataset.test_sentences, 256))
    results = {
        "task": config.task,
        "architecture": architecture_source or "given",
        "best_epoch": best["epoch"],
        "best_step": best.get("step"),
        "steps": step,
        "stopped_early": bool(stop),
        "dev_accuracy": best["dev_accuracy"],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "num_parameters": num_parameters,
        "history": history,
        "train_seconds_this_session": round(time.time() - started, 1),
        "config": config.to_dict(),
        "ops": list(architecture.ops),
    }
    run.write_json("results.json", results)
    if verbose:
        print(f"best dev: epoch {best['epoch']} step {best.get('step')}: dev {best['dev_accuracy']:.4f}; "
              f"test {test['accuracy']:.4f} (evaluated once)")
    return results

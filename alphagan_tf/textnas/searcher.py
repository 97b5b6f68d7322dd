"""TextNAS search on SST: the config, the dispatch, and the differentiable search (darts).

`run_search` runs `config.algorithm`: "darts" (below, our relaxation) or the
sampling searches on shared weights, "enas" (TextNAS's own) and "random_ws"
(its uniform control), in `sampling_search.py`.

The differentiable search (first-order, alternating):

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

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.nas.arch_optimizer import ArchitectureOptimizer, ArchOptimizerConfig
from alphagan_tf.nas.bilevel import AlternatingSteps
from alphagan_tf.textnas import data as sst
from alphagan_tf.textnas.architecture import OPS, TextArchitecture
from alphagan_tf.textnas.controller import ControllerConfig
from alphagan_tf.textnas.model import NetworkConfig
from alphagan_tf.textnas.selection import op_removal_scores, select_by_removal
from alphagan_tf.textnas.supernet import TextNASSupernet
from alphagan_tf.utils import precision as precision_lib
from alphagan_tf.utils import seeding
from alphagan_tf.utils.typed_config import (
    TypedConfig,
    require,
    require_non_negative,
    require_positive,
)
from alphagan_tf.utils.workdir import Workdir
from alphagan_tf.textnas.training import (
    BATCH_SIGNATURE,
    check_run_fields,
    classification_loss_fn,
    evaluate,
    make_checkpoint,
    make_predict_fn,
)


#: How the final op of each layer is read from the trained supernet.
OP_SELECTIONS = ("argmax", "removal")

#: How the space is searched: the differentiable relaxation (ours), ENAS (the
#: paper's), uniform sampling on shared weights (ENAS's control).
ALGORITHMS = ("darts", "enas", "random_ws")


@dataclasses.dataclass(frozen=True)
class SearchConfig(TypedConfig):
    """Everything a search run needs.

    Attributes:
        sst_dir: folder with train.txt (dev/test are not read by the search).
        algorithm: one of `ALGORITHMS`.
        task: "sst2" or "sst5".
        max_length: tokens kept per phrase.
        held_out_fraction: share of train trees held out for the architecture step.
        dedup_phrases: keep each distinct phrase once.
        max_train_trees: use only the first N train trees (tests, demos).
        num_layers: L of the search network.
        units: width H during the search.
        embedding_dim: embedding width.
        embedding_dropout: dropout on the embeddings.
        output_dropout: dropout before the classifier.
        pooling: the head's pooling over tokens: mean (TextNAS), max or mean_max.
        word_dropout: share of real tokens replaced by the unknown word in training.
        embeddings_path: optional GloVe-format text file (dim = embedding_dim).
        batch_size: phrases per weight step and per architecture step.
        epochs: passes over the weight-part phrases.
        warmup_epochs: first epochs with weight steps only.
        learning_rate: Adam learning rate of the network weights.
        clipnorm: global gradient-norm clip of the weight steps (0 = none).
        arch: the architecture optimizer's settings.
        skip_penalty: weight of the mean skip gate added to the architecture
            loss (0 = none; our design).
        max_skips: at most this many derived skips per layer (0 = no cap).
        op_selection: "argmax" (largest op alpha) or "removal" (the op whose
            removal raises the held-out loss most; `selection.py`, our
            adaptation of perturbation-based selection).
        controller: enas: the controller and its REINFORCE settings.
        controller_every: enas: child steps between controller phases (after warm-up).
        controller_steps: enas: controller steps per phase.
        derive_samples: enas, random_ws: architectures sampled and scored on
            the held-out sentences at the end; the best is the result.
        seed: initialisation, split, batch order and sampling.
        log_every: steps between TensorBoard scalar writes.
        checkpoint_every: steps between checkpoints (also at every epoch end).
        max_steps: stop (resumably) after this many global steps; None = run out.
        precision: float32, bfloat16 or float16 compute of the supernet
            (`utils.precision`: alphas, gates, losses, optimizer state stay
            float32; float16 with dynamic loss scaling). The controller is float32.
    """

    sst_dir: str
    algorithm: str = "darts"
    task: str = "sst2"
    max_length: int = 64
    held_out_fraction: float = 0.1
    dedup_phrases: bool = True
    max_train_trees: int | None = None
    num_layers: int = 24
    units: int = 32
    embedding_dim: int = 128
    embedding_dropout: float = 0.3
    output_dropout: float = 0.3
    pooling: str = "mean"
    word_dropout: float = 0.0
    embeddings_path: str | None = None
    batch_size: int = 128
    epochs: int = 3
    warmup_epochs: int = 1
    learning_rate: float = 1e-3
    clipnorm: float = 5.0
    arch: ArchOptimizerConfig = ArchOptimizerConfig()
    skip_penalty: float = 0.0
    max_skips: int = 0
    op_selection: str = "argmax"
    controller: ControllerConfig = ControllerConfig()
    controller_every: int = 50
    controller_steps: int = 10
    derive_samples: int = 50
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    max_steps: int | None = None
    precision: str = "float32"

    # What a rerun in the same workdir may change (the rest must match its checkpoint): the
    # schedule, and what the steps still to come or the derivation use (e.g. the skip penalty
    # after a weights-only warm-up), and where the SST folder is (the same trees under another
    # path: a moved folder, a relative path given as absolute; the trees are not compared).
    RESUMABLE = ("epochs", "max_steps", "log_every", "checkpoint_every", "skip_penalty",
                 "max_skips", "op_selection", "derive_samples", "sst_dir", "learning_rate",
                 "arch.learning_rate", "controller.learning_rate")

    def __post_init__(self):
        precision_lib.validate(self.precision)
        # A tiny bfloat16 darts search reported held-out accuracy 0.0 and float16 training
        # overflowed (issue 13's notes): the searches run in float32 until that is understood.
        require(self.precision == "float32", "precision", self.precision,
                "TextNAS searches run in float32 only (bfloat16/float16 not yet verified)")
        require(self.algorithm in ALGORITHMS, "algorithm", self.algorithm,
                f"must be one of {ALGORITHMS}")
        sst.check_task(self.task)
        check_run_fields(self)
        require_positive(self, "num_layers", "controller_every", "controller_steps",
                         "derive_samples")
        require(isinstance(self.warmup_epochs, int) and 0 <= self.warmup_epochs < self.epochs,
                "warmup_epochs", self.warmup_epochs,
                f"must be in [0, epochs - 1] = [0, {self.epochs - 1}]")
        fraction = self.held_out_fraction
        require(isinstance(fraction, (int, float)) and 0 < fraction < 1, "held_out_fraction",
                fraction, "must be in (0, 1)")
        require(self.op_selection in OP_SELECTIONS, "op_selection", self.op_selection,
                f"must be one of {OP_SELECTIONS}")
        require_non_negative(self, "skip_penalty", "max_skips")


@dataclasses.dataclass(frozen=True)
class SearchResult:
    architecture: TextArchitecture | None  # None when stopped early by max_steps
    global_step: int
    held_out_accuracy: float | None


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


def prepare_search(config: SearchConfig, workdir: str, verbose: bool = True):
    """What every search algorithm starts from: the workdir, the seed, the SST split
    (weights / architecture parts) and the supernet (with GloVe vectors if given).

    Returns:
        (run, split, model): the `Workdir`, `sst.load_search_split`'s split and a
        `TextNASSupernet`.
    """
    run = Workdir.open(workdir, config, "search_config.json", resumable=SearchConfig.RESUMABLE,
                       verbose=verbose)
    seeding.seed_everything(config.seed)
    split = sst.load_search_split(
        config.sst_dir, config.task, config.held_out_fraction, seed=config.seed,
        max_length=config.max_length, dedup_phrases=config.dedup_phrases,
        max_train_trees=config.max_train_trees,
    )
    network = NetworkConfig(
        vocab_size=len(split.vocab), num_classes=sst.TASKS[config.task], units=config.units,
        embedding_dim=config.embedding_dim, embedding_dropout=config.embedding_dropout,
        output_dropout=config.output_dropout, pooling=config.pooling,
        word_dropout=config.word_dropout,
    )
    precision_lib.warn_if_emulated(config.precision)
    with precision_lib.dtype_policy(config.precision):
        model = TextNASSupernet.create(network, config.num_layers)
    if config.embeddings_path:
        matrix, found = sst.load_glove(config.embeddings_path, split.vocab,
                                       config.embedding_dim, seed=config.seed)
        model.stem.set_embeddings(matrix)
        if verbose:
            print(f"embeddings: {found}/{len(split.vocab) - 2} words found in {config.embeddings_path}")
    return run, split, model


def run_search(config: SearchConfig, workdir: str, verbose: bool = True) -> SearchResult:
    """Runs (or resumes) a search of `config.algorithm`; returns the derived architecture.

    Args:
        config: the run's settings.
        workdir: output folder (created); an existing checkpoint there is resumed.
        verbose: progress bar and epoch summaries on stdout.
    """
    if config.algorithm != "darts":
        from alphagan_tf.textnas.sampling_search import run_sampling_search

        return run_sampling_search(config, workdir, verbose)
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

"""A TextNAS retraining's configuration."""

from __future__ import annotations

import dataclasses

from alphagan_tf.textnas import data as sst
from alphagan_tf.textnas.train.classification import check_run_fields
from alphagan_tf.utils import distribution
from alphagan_tf.utils import precision as precision_lib
from alphagan_tf.utils.typed_config import TypedConfig, require, require_fraction, require_non_negative


@dataclasses.dataclass(frozen=True)
class TrainConfig(TypedConfig):
    """Everything a retraining run needs.

    Attributes:
        sst_dir: folder with train.txt, dev.txt, test.txt.
        task: "sst2" or "sst5".
        max_length: tokens kept per phrase / sentence.
        dedup_phrases: keep each distinct train phrase once.
        max_train_trees: use only the first N train trees (tests, demos).
        units: width H.
        embedding_dim: embedding width.
        embedding_dropout: dropout on the embeddings.
        output_dropout: dropout before the classifier.
        pooling: the head's pooling over tokens: mean (TextNAS), max or mean_max.
        word_dropout: share of real tokens replaced by the unknown word in training.
        embeddings_path: optional GloVe-format text file (dim = embedding_dim).
        batch_size: phrases per step.
        epochs: passes over the train phrases.
        learning_rate: peak Adam learning rate (cosine decay to 0 over the run).
        weight_decay: decoupled weight decay (AdamW); 0 = plain Adam.
        clipnorm: global gradient-norm clip (0 = none).
        label_smoothing: eps of the smoothed cross-entropy (0 = none).
        eval_every: steps between dev evaluations within an epoch (0 = at
            epoch ends only; an epoch end always evaluates).
        patience: stop after this many dev evaluations without a new best
            (0 = never stop early).
        seed: initialisation and batch order.
        log_every: steps between TensorBoard scalar writes.
        checkpoint_every: steps between checkpoints (also at every epoch end).
        max_steps: stop (resumably) after this many steps; None = run out.
        precision: float32, bfloat16 or float16 compute (`utils.precision`:
            losses and optimizer state stay float32; float16 with loss scaling).
        strategy, devices, cpu_devices: the `tf.distribute` strategy of the train step
            (`utils.distribution`: "default", "mirrored" or "one_device" over `devices`;
            `cpu_devices` > 1 splits the CPU first). Each batch is split over the
            replicas, batch norms are synchronized and gradients clipped as one device
            does: N replicas train what one device trains on the same batches.
    """

    sst_dir: str
    task: str = "sst2"
    max_length: int = 64
    dedup_phrases: bool = True
    max_train_trees: int | None = None
    units: int = 64
    embedding_dim: int = 128
    embedding_dropout: float = 0.5
    output_dropout: float = 0.5
    pooling: str = "mean"
    word_dropout: float = 0.0
    embeddings_path: str | None = None
    batch_size: int = 128
    epochs: int = 8
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    clipnorm: float = 5.0
    label_smoothing: float = 0.0
    eval_every: int = 0
    patience: int = 0
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    max_steps: int | None = None
    precision: str = "float32"
    strategy: str = "default"
    devices: tuple[str, ...] = ()
    cpu_devices: int = 0

    # What a rerun in the same workdir may change (the rest must match its checkpoint); the
    # checkpoint of a multi-replica run is the one-device one (tests/test_textnas_distribution.py);
    # the SST folder may be given by another path (the trees themselves are not compared).
    RESUMABLE = ("epochs", "max_steps", "eval_every", "patience", "log_every", "checkpoint_every",
                 "strategy", "devices", "cpu_devices", "sst_dir", "learning_rate")

    def __post_init__(self):
        precision_lib.validate(self.precision)
        # float16 training overflowed to a NaN dev loss (issue 13's notes): not offered yet.
        require(self.precision != "float16", "precision", self.precision,
                "TextNAS training runs in float32 or bfloat16 (float16 overflows its masking)")
        sst.check_task(self.task)
        check_run_fields(self)
        require_non_negative(self, "weight_decay", "eval_every", "patience")
        require_fraction(self, "label_smoothing", closed=False)
        distribution.validate_fields(self)

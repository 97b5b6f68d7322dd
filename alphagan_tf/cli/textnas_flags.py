"""Every absl flag of the TextNAS commands, in groups (the CLI edge).

Each command defines only the groups it reads, as the GAN commands do
(`alphagan_tf/cli/flags.py`): `textnas.search` the common and search groups,
`textnas.train` the common and retraining groups, `textnas.derive` and
`textnas.export` their few flags. A flag meant for another command is an
error ("Unknown command line flag"), so a flagfile serves one command:
`configs/sst2.cfg` the search, `configs/train_sst2.cfg` the retraining.
Flags that another part of the project may already have defined in the same
process (e.g. `--workdir`, `--seed`) are reused rather than redefined, so
every group can be defined in one process (the tests do).

The configs name their own fields in a `ConfigError`; where a field's flag has
another name (`num_layers` <- `--search_layers`), the builders below rename the
error, so a bad value reads `error: --search_layers: must be an integer >= 1. Received: 0`.
"""

from __future__ import annotations

import contextlib

from absl import flags

from alphagan_tf.cli import flags as alphagan_flags
from alphagan_tf.utils import precision
from alphagan_tf.utils.typed_config import ConfigError

FLAGS = flags.FLAGS


def _define(kind: str, name: str, default, help_text: str, **kwargs) -> None:
    if name in FLAGS:
        return
    if kind == "enum":
        flags.DEFINE_enum(name, default, kwargs.pop("enum_values"), help_text, **kwargs)
    else:
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, **kwargs)


MAX_SKIPS_HELP = "Derive at most this many skips per layer, the largest gates (0 = every gate > 0.5)."


def define_common_flags() -> None:
    """The data, run and precision flags of search and retraining."""
    _define("string", "workdir", None, "Output folder of the run (created; resumed if it holds a checkpoint).")
    _define("enum", "task", "sst2", "Which SST task: sst2 (binary, neutral dropped) or sst5.",
            enum_values=["sst2", "sst5"])
    _define("string", "sst_dir", "../shared/data/sst", "Folder with the PTB-style train/dev/test.txt trees.")
    _define("integer", "max_length", 64, "Tokens kept per phrase / sentence.")
    _define("boolean", "dedup_phrases", True, "Keep each distinct train phrase once.")
    _define("integer", "max_train_trees", 0, "Use only the first N train trees (0 = all; for demos).")
    _define("integer", "embedding_dim", 128, "Embedding width (must match --embeddings_path).")
    _define("string", "embeddings_path", "", "Optional GloVe-format text file; empty = learn from scratch.")
    _define("integer", "seed", 0, "Seed of initialisation, splits and batch order.")
    _define("integer", "num_threads", 0, "Cap on TensorFlow CPU threads (0 = TensorFlow's default).")
    _define("integer", "log_every", 50, "Steps between TensorBoard scalar writes.")
    _define("integer", "checkpoint_every", 500, "Steps between checkpoints (also at every epoch end).")
    _define("integer", "max_steps", 0, "Stop (resumably) after this many steps (0 = run to the end).")
    _define("enum", "precision", "float32", precision.FLAG_HELP, enum_values=list(precision.PRECISIONS))


def define_search_flags() -> None:
    """`textnas.search`: the common flags, the search's, the controller's (enas) and derivation's."""
    define_common_flags()
    _define("enum", "algorithm", None, alphagan_flags.ALGORITHM_FLAG_HELP,
            enum_values=alphagan_flags.ALGORITHM_CHOICES)  # shared with `search` (one process may load both)
    _define("integer", "search_layers", 24, "Layers L of the search network.")
    _define("integer", "search_units", 32, "Width H during the search.")
    _define("float", "search_embedding_dropout", 0.3, "Dropout on the embeddings during the search.")
    _define("float", "search_output_dropout", 0.3, "Dropout before the classifier during the search.")
    _define("float", "search_word_dropout", 0.0, "Share of tokens replaced by <unk> during the search.")
    _define("enum", "search_pooling", "mean", "Pooling over tokens before the classifier during the search.",
            enum_values=["mean", "max", "mean_max"])
    _define("integer", "search_batch_size", 128, "Phrases per weight step and per architecture step.")
    _define("integer", "search_epochs", 3, "Epochs over the weight part of the train phrases.")
    _define("integer", "search_warmup_epochs", 1, "First epochs with weight steps only.")
    _define("float", "search_learning_rate", 1e-3, "Adam learning rate of the network weights.")
    _define("float", "search_clipnorm", 5.0, "Global gradient-norm clip of the weight steps (0 = none).")
    _define("float", "held_out_fraction", 0.1, "Share of the train trees held out for the architecture step.")
    _define("float", "arch_learning_rate", 3e-4, "Adam learning rate of the architecture weights.")
    _define("float", "arch_beta_1", 0.5, "Adam beta_1 of the architecture weights.")
    _define("float", "arch_beta_2", 0.999, "Adam beta_2 of the architecture weights.")
    _define("float", "arch_weight_decay", 1e-3, "Coupled L2 on the architecture weights.")
    _define("float", "search_skip_penalty", 0.0,
            "Weight of the mean skip gate added to the architecture loss (0 = none; our design).")
    _define("integer", "search_max_skips", 0, MAX_SKIPS_HELP)
    _define("enum", "search_op_selection", "argmax",
            "How each layer's op is derived: argmax of its alphas, or removal = the op whose removal "
            "raises the held-out loss most (our adaptation of perturbation-based selection).",
            enum_values=["argmax", "removal"])
    # ENAS (--algorithm=enas; random_ws uses only --derive_samples).
    _define("integer", "controller_units", 64, "Hidden units of the controller LSTM.")
    _define("float", "controller_learning_rate", 2e-3, "Adam learning rate of the controller.")
    _define("float", "controller_entropy_weight", 1e-4, "Weight of the sample entropy added to the reward.")
    _define("float", "controller_baseline_decay", 0.99, "Decay of the moving-average reward baseline.")
    _define("float", "controller_skip_target", 0.4, "Skip probability the skip penalty pulls toward.")
    _define("float", "controller_skip_weight", 0.8, "Weight of the skip penalty (KL to the target).")
    _define("float", "controller_clipnorm", 5.0, "Global gradient-norm clip of the controller (0 = none).")
    _define("integer", "controller_every", 50, "Child steps between controller phases (after warm-up).")
    _define("integer", "controller_steps", 10, "Controller steps per phase, each on one held-out batch.")
    _define("integer", "derive_samples", 50,
            "enas / random_ws: architectures sampled at the end and scored on the held-out sentences "
            "with the shared weights; the best is the result.")


def define_train_flags() -> None:
    """`textnas.train`: the common flags, the retraining's, its devices and the optional export."""
    define_common_flags()
    _define("string", "architecture", None,
            "Architecture JSON path, a preset (textnas_paper) or random:<seed>[:<layers>].")
    _define("integer", "train_units", 64, "Width H of the retrained network.")
    _define("integer", "train_embedding_dim", 0,
            "Embedding width of the retrained network (0 = --embedding_dim, the search's).")
    _define("float", "train_embedding_dropout", 0.5, "Dropout on the embeddings when retraining.")
    _define("float", "train_output_dropout", 0.5, "Dropout before the classifier when retraining.")
    _define("float", "train_word_dropout", 0.0, "Share of tokens replaced by <unk> when retraining.")
    _define("enum", "train_pooling", "mean",
            "Pooling over tokens before the classifier when retraining (mean = TextNAS; max as in Kim's CNN).",
            enum_values=["mean", "max", "mean_max"])
    _define("integer", "train_batch_size", 128, "Phrases per step when retraining.")
    _define("integer", "train_epochs", 8, "Retraining epochs (the best dev epoch is kept).")
    _define("float", "train_learning_rate", 2e-3, "Peak Adam learning rate (cosine decay to 0).")
    _define("float", "train_weight_decay", 0.0, "Decoupled weight decay (AdamW); 0 = Adam.")
    _define("float", "train_clipnorm", 5.0, "Global gradient-norm clip when retraining (0 = none).")
    _define("float", "train_label_smoothing", 0.0, "Label smoothing of the retraining loss (0 = none).")
    _define("integer", "train_eval_every", 0,
            "Steps between dev evaluations within an epoch (0 = epoch ends only); the best one is kept.")
    _define("integer", "train_patience", 0,
            "Stop after this many dev evaluations without a new best (0 = never).")
    alphagan_flags.define_strategy_flags()  # --strategy, --devices, --cpu_devices
    _define("string", "export_dir", None, "Also export the best model here (a new or empty folder).")


def define_derive_flags() -> None:
    """`textnas.derive`: a finished search's workdir, the skip cap and the output path."""
    _define("string", "workdir", None, "A finished search's workdir (holds probabilities.json).")
    _define("integer", "search_max_skips", 0, MAX_SKIPS_HELP)
    _define("string", "derived_path", None, "Where to write the derived architecture JSON.")


def define_export_flags() -> None:
    """`textnas.export`: a finished retraining's workdir and the SavedModel's folder."""
    _define("string", "train_dir", None, "Workdir of a finished `textnas.train` run.")
    _define("string", "export_dir", None, "Target folder of the SavedModel (new or empty).")


def _optional(value: int) -> int | None:
    return value or None


# The flag of every config field whose flag has another name.
SEARCH_FLAG_NAMES = {"num_layers": "search_layers", **{name: f"search_{name}" for name in (
    "units", "embedding_dropout", "output_dropout", "pooling", "word_dropout", "batch_size",
    "epochs", "warmup_epochs", "learning_rate", "clipnorm", "skip_penalty", "max_skips",
    "op_selection")}}
CONTROLLER_FLAG_NAMES = {name: f"controller_{name}" for name in (
    "units", "learning_rate", "entropy_weight", "baseline_decay", "skip_target", "skip_weight",
    "clipnorm")}
TRAIN_FLAG_NAMES = {name: f"train_{name}" for name in (
    "units", "embedding_dropout", "output_dropout", "pooling", "word_dropout", "batch_size",
    "epochs", "learning_rate", "weight_decay", "clipnorm", "label_smoothing", "eval_every",
    "patience")}


@contextlib.contextmanager
def errors_named_as_flags(flag_names: dict[str, str]):
    """A ConfigError about field F raised inside names its flag `flag_names[F]` instead."""
    try:
        yield
    except ConfigError as error:
        flag = flag_names.get(error.key)
        if flag is None:
            raise
        message = str(error)
        if message.startswith(f"{error.key}:"):
            message = flag + message[len(error.key):]
        raise ConfigError(message, key=flag) from None


def _renamed_fields(flag_names: dict[str, str]) -> dict:
    """{config field: value of its flag} for fields whose flag has another name."""
    return {field: FLAGS[flag].value for field, flag in flag_names.items()}


def _common_fields() -> dict:
    """The config fields of `define_common_flags`' flags, shared by search and retraining."""
    return dict(
        sst_dir=FLAGS.sst_dir,
        task=FLAGS.task,
        max_length=FLAGS.max_length,
        dedup_phrases=FLAGS.dedup_phrases,
        max_train_trees=_optional(FLAGS.max_train_trees),
        embeddings_path=FLAGS.embeddings_path or None,
        seed=FLAGS.seed,
        log_every=FLAGS.log_every,
        checkpoint_every=FLAGS.checkpoint_every,
        max_steps=_optional(FLAGS.max_steps),
        precision=FLAGS.precision,
    )


def search_config_from_flags():
    """The search's typed config from the parsed flags."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.nas.arch_optimizer import ArchOptimizerConfig
    from alphagan_tf.textnas.search.controller import ControllerConfig
    from alphagan_tf.textnas.search.config import SearchConfig

    with errors_named_as_flags(CONTROLLER_FLAG_NAMES):
        controller = ControllerConfig(**_renamed_fields(CONTROLLER_FLAG_NAMES))
    with errors_named_as_flags(SEARCH_FLAG_NAMES):
        return SearchConfig(
            **_common_fields(),
            **_renamed_fields(SEARCH_FLAG_NAMES),
            algorithm=FLAGS.algorithm or "darts",
            held_out_fraction=FLAGS.held_out_fraction,
            embedding_dim=FLAGS.embedding_dim,
            arch=ArchOptimizerConfig(
                learning_rate=FLAGS.arch_learning_rate,
                beta_1=FLAGS.arch_beta_1,
                beta_2=FLAGS.arch_beta_2,
                weight_decay=FLAGS.arch_weight_decay,
            ),
            controller=controller,
            controller_every=FLAGS.controller_every,
            controller_steps=FLAGS.controller_steps,
            derive_samples=FLAGS.derive_samples,
        )


def train_config_from_flags():
    """The retraining's typed config from the parsed flags."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.textnas.train.config import TrainConfig

    names = {**TRAIN_FLAG_NAMES,
             "embedding_dim": "train_embedding_dim" if FLAGS.train_embedding_dim else "embedding_dim"}
    with errors_named_as_flags(names):
        return TrainConfig(
            **_common_fields(),
            **_renamed_fields(TRAIN_FLAG_NAMES),
            embedding_dim=FLAGS.train_embedding_dim or FLAGS.embedding_dim,
            **alphagan_flags.strategy_fields_from_flags(),
        )

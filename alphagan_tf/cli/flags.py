"""Every absl flag of the GAN commands, defined once, in groups.

Each command (search, train, evaluate, export, sample, tune) defines only the
groups it uses, so a flag meant for another command is an error
("Unknown command line flag"), and a flagfile cannot silently carry typos.
Flags are read only by the CLI modules, which turn them into typed configs.
"""

from __future__ import annotations

from absl import flags

from alphagan_tf.utils import precision as precision_lib

FLAGS = flags.FLAGS


def _once(fn):
    """Make a define_* group idempotent (tests import several CLIs in one process)."""

    def wrapper():
        if not getattr(wrapper, "done", False):
            fn()
            wrapper.done = True

    wrapper.__doc__ = fn.__doc__
    return wrapper


def _define_shared(define, name: str, *args, **kwargs) -> None:
    """Defines a flag other groups may define too: skipped if one did, overridable if later."""
    if name not in FLAGS:
        define(name, *args, allow_override=True, **kwargs)


ALGORITHM_FLAG_HELP = (
    "How the search explores its space. search: alphagan (default: the bi-level differentiable "
    "search minimising the duality gap) or random_ws (random search with weight sharing, the "
    "authors' baseline: the same inner level with one uniformly sampled architecture per D step, "
    "then --random_ws_candidates sampled architectures scored by FID on the shared weights). "
    "textnas.search: darts (default: softmax relaxation, first-order bi-level steps; our design), "
    "enas (TextNAS's own: an LSTM controller trained by REINFORCE, one sampled architecture per "
    "step on shared weights) or random_ws (enas's uniform-sampling control). Each command accepts "
    "its own values."
)
ALGORITHM_CHOICES = ["alphagan", "darts", "enas", "random_ws"]


@_once
def define_data_flags() -> None:
    """Where the training images come from."""
    flags.DEFINE_string(
        "dataset",
        "demo",
        "Image source: demo (embedded handwritten digits), cifar10, stl10 "
        "(train+unlabelled, as tfds spells it), tfds:NAME[:SPLIT], npz:/path/file.npz "
        "(x_train uint8), folder:/path/to/images.",
    )
    flags.DEFINE_string("data_dir", None, "tfds data_dir holding prepared datasets.")
    flags.DEFINE_string("manual_dir", None, "tfds manual_dir holding downloaded archives.")
    flags.DEFINE_bool(
        "download", False, "Let tfds download and prepare the dataset (needs internet)."
    )


@_once
def define_model_flags() -> None:
    """Generator and discriminator sizes."""
    flags.DEFINE_integer("gf", 256, "Generator channels (every cell).")
    flags.DEFINE_integer("df", 128, "Discriminator channels.")
    flags.DEFINE_integer("latent_dim", 128, "Latent vector size.")
    flags.DEFINE_integer(
        "bottom_width", 4, "Spatial size after the first Dense; images are 8x larger "
        "(4 -> 32x32, 6 -> 48x48)."
    )


@_once
def define_gan_optimizer_flags() -> None:
    """The GAN players' Adam and schedule (search inner level and retraining)."""
    flags.DEFINE_float("g_lr", 2e-4, "Generator Adam learning rate.")
    flags.DEFINE_float("d_lr", 2e-4, "Discriminator Adam learning rate.")
    flags.DEFINE_float("beta_1", 0.0, "Adam beta_1 of G and D.")
    flags.DEFINE_float("beta_2", 0.9, "Adam beta_2 of G and D.")
    flags.DEFINE_integer("n_critic", 5, "Discriminator steps per generator step.")
    flags.DEFINE_float(
        "r1_gamma", 0.0,
        "R1 penalty gamma/2 * E|grad_x D(x_real)|^2 on D (Mescheder et al. 2018); 0 = the paper "
        "(none). The demo sets it: without it the supernet's inner game collapses in minutes.",
    )


@_once
def define_run_flags() -> None:
    """Where results go, and reproducibility."""
    _define_shared(flags.DEFINE_string, "workdir", None, "Output directory (checkpoints, TensorBoard, results).")
    _define_shared(flags.DEFINE_integer, "seed", 0, "Random seed (weights, data order, latents).")
    flags.DEFINE_bool(
        "deterministic", None,
        "TensorFlow op determinism (same seed, same result). Default: on when no GPU is visible, "
        "off on GPUs (deterministic cuDNN kernels are slower, and some ops have none).",
    )
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept by the CheckpointManager.")
    flags.DEFINE_integer(
        "sample_every", None,
        "Sample grid to TensorBoard every N epochs (search, default 5) or generator "
        "iterations (train, default 500).",
    )


@_once
def define_step_flags() -> None:
    """How the compiled steps run (search and retraining): same numbers, other speed."""
    flags.DEFINE_integer(
        "steps_per_call", 1,
        "Steps of the schedule run in one call of a compiled loop, their losses returned once "
        "per call (search: D/G, worst-case or architecture steps; train: G iterations). Larger "
        "values save a host round trip per step (GPUs); 1: one call per step.", lower_bound=1,
    )
    flags.DEFINE_boolean(
        "jit_compile", False,
        "XLA-compile the steps (tf.function(jit_compile=True)); batches have fixed shapes, so "
        "each step compiles once. On GPUs also the way to bfloat16 depthwise gradients.",
    )
    flags.DEFINE_enum(
        "depthwise_gradient", "auto", ["auto", "fast", "tf"],
        "Depthwise kernel gradient of the separable convs: fast (a per-example form, quick on "
        "CPU), tf (TensorFlow's kernel, for GPUs) or auto (by the visible devices).",
    )


@_once
def define_precision_flags() -> None:
    """The compute precision (utils/precision.py: what stays float32)."""
    _define_shared(
        flags.DEFINE_enum, "precision", "float32", list(precision_lib.PRECISIONS),
        precision_lib.FLAG_HELP,
    )


def precision_from_flags() -> str:
    """--precision."""
    return FLAGS.precision


@_once
def define_strategy_flags() -> None:
    """The devices a search or a retraining runs on (utils/distribution.py)."""
    flags.DEFINE_enum(
        "strategy", "default", ["default", "mirrored", "one_device", "multi_worker"],
        "tf.distribute strategy of the compiled steps: default (one device), mirrored (one "
        "replica per device of --devices, or every GPU; the global batch is split over them, "
        "batch norms synchronized: the same result as one device with the same global batch "
        "sizes), one_device, or multi_worker (search and train: several hosts as the TF_CONFIG "
        "environment variable describes them, the global batch split over every worker's "
        "replicas; docs/scaling.md).",
    )
    flags.DEFINE_list("devices", [], "Devices of --strategy, e.g. /gpu:0,/gpu:1 (empty: its default).")
    flags.DEFINE_integer(
        "cpu_devices", 0,
        "Split the CPU into this many logical devices first (e.g. 2 with --strategy=mirrored "
        "--devices=/cpu:0,/cpu:1, to try data parallelism without GPUs); 0 or 1 = leave it.",
        lower_bound=0,
    )


@_once
def define_multi_worker_flags() -> None:
    """How a multi-worker run (--strategy=multi_worker) notices a lost worker."""
    flags.DEFINE_float(
        "worker_timeout", 60.0,
        "--strategy=multi_worker: seconds without a heartbeat after which a worker counts as "
        "lost; the others then stop with an error naming it (rerun the same command on every "
        "worker to resume from the last checkpoint).", lower_bound=1.0,
    )


def strategy_fields_from_flags() -> dict:
    """--strategy, --devices, --cpu_devices -> the run config fields of the same names."""
    return dict(strategy=FLAGS.strategy, devices=tuple(FLAGS.devices), cpu_devices=FLAGS.cpu_devices)


@_once
def define_search_flags() -> None:
    """The bi-level architecture search (AlphaGAN)."""
    define_data_flags()
    define_model_flags()
    define_gan_optimizer_flags()
    define_run_flags()
    define_precision_flags()
    define_step_flags()
    define_strategy_flags()
    define_multi_worker_flags()
    flags.DEFINE_integer("batch_size", 64, "Batch size of every search step.")
    flags.DEFINE_integer("epochs", 100, "Search epochs.")
    flags.DEFINE_integer("inner_steps", 20, "Weight (D) steps per epoch: 20 for alphaGAN(s), 390 for (l).")
    flags.DEFINE_integer("worst_steps", 20, "Worst-case player steps per epoch: 20 (s), 390 (l).")
    flags.DEFINE_integer("outer_steps", 20, "Architecture steps per epoch.")
    flags.DEFINE_integer(
        "worst_lr_halving_epoch", 30,
        "The worst-case players train at g_lr/d_lr up to this epoch, at half after it "
        "(the reference's train_gan_alpha; 0: never halve).",
    )
    _define_shared(flags.DEFINE_float, "arch_learning_rate", 3e-4, "Architecture Adam learning rate.")
    _define_shared(flags.DEFINE_float, "arch_beta_1", 0.5, "Architecture Adam beta_1.")
    _define_shared(flags.DEFINE_float, "arch_beta_2", 0.999, "Architecture Adam beta_2.")
    _define_shared(flags.DEFINE_float, "arch_weight_decay", 1e-3, "Architecture L2 weight decay (coupled, as in PyTorch Adam).")
    flags.DEFINE_boolean(
        "fuse_convs", True,
        "Run each normal edge's conv_1x1/3x3/5x5 as one 5x5 conv with the alpha-weighted sum of "
        "their kernels: the same function and gradients, ~30% less work per normal edge.",
    )
    _define_shared(flags.DEFINE_enum, "algorithm", None, ALGORITHM_CHOICES, ALGORITHM_FLAG_HELP)
    flags.DEFINE_integer(
        "random_ws_candidates", 100,
        "random_ws: architectures sampled after training and scored on the shared weights "
        "(the reference: 200); the lowest FID is written as genotype.json.", lower_bound=1,
    )
    flags.DEFINE_integer(
        "random_ws_eval_samples", 1000,
        "random_ws: generated images per candidate, and real images of the architecture half, "
        "of the FID proxy.", lower_bound=1,
    )
    _define_feature_extractor_flags()


def _define_feature_extractor_flags() -> None:
    """Which network features come from (retraining's metrics, random-WS's proxy)."""
    _define_shared(
        flags.DEFINE_string, "feature_extractor", "inception",
        "inception (TF-GAN Inception via --inception_path), classifier:/path/to/SavedModel "
        "(any classifier with features+logits), or none (no evaluation).",
    )
    _define_shared(
        flags.DEFINE_string, "inception_path",
        "https://tfhub.dev/tensorflow/tfgan/eval/inception/1",
        "TF-Hub handle or local SavedModel directory of the TF-GAN Inception.",
    )
    _define_shared(flags.DEFINE_integer, "eval_batch_size", 100,
                   "Batch size of sampling and feature extraction.")


@_once
def define_feature_flags() -> None:
    """Which features IS / FID / KID are computed on, and the real statistics."""
    _define_feature_extractor_flags()
    flags.DEFINE_string(
        "real_stats", None,
        "An .npz of real-data statistics (python -m alphagan_tf.evaluate --make_stats); "
        "computed from --dataset and cached in the workdir when absent.",
    )


@_once
def define_retrain_flags() -> None:
    """How a fixed generator is retrained (train, and every tune trial)."""
    define_data_flags()
    define_model_flags()
    define_gan_optimizer_flags()
    define_run_flags()
    define_feature_flags()
    define_precision_flags()
    flags.DEFINE_integer(
        "g_iterations", 50_000,
        "Generator iterations (80k for STL-10); tune: the budget of one trial.",
    )
    flags.DEFINE_integer("g_batch_size", 128, "Generator batch size.")
    flags.DEFINE_integer("d_batch_size", 64, "Discriminator (real and fake) batch size.")
    flags.DEFINE_float("ema_decay", 0.999, "EMA decay of the generator weights.")
    _define_shared(flags.DEFINE_integer, "checkpoint_every", 500, "Checkpoint every N generator iterations.")
    flags.DEFINE_integer("eval_samples", 50_000, "Generated samples per periodic evaluation (tune: per "
                         "trial); at least 10, the Inception Score's splits.", lower_bound=10)


def generator_config_from_flags():
    """--gf, --df, --latent_dim, --bottom_width -> a GeneratorConfig."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.gan.space.generator_config import GeneratorConfig

    return GeneratorConfig(gf=FLAGS.gf, df=FLAGS.df, latent_dim=FLAGS.latent_dim,
                           bottom_width=FLAGS.bottom_width)


def data_config_from_flags():
    """--dataset, --data_dir, --manual_dir, --download -> a DataConfig."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.data.config import DataConfig

    return DataConfig(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
                      manual_dir=FLAGS.manual_dir, download=FLAGS.download)


def retrain_run_config_from_flags(genotype: str, **overrides):
    """The retrain group's flags -> a TrainRunConfig (train, and every tune trial).

    Args:
        genotype: what the config records as the genotype (a preset, a path, or a
            label such as "(sampled per trial)").
        **overrides: further TrainRunConfig fields (e.g. init_from, eval_every).
    """
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.gan.train.config import TrainConfig, TrainRunConfig

    steps = {"steps_per_call": FLAGS.steps_per_call, "jit_compile": FLAGS.jit_compile} if (
        "steps_per_call" in FLAGS) else {}
    train = TrainConfig(
        g_iterations=FLAGS.g_iterations, n_critic=FLAGS.n_critic,
        g_batch_size=FLAGS.g_batch_size, d_batch_size=FLAGS.d_batch_size,
        g_lr=FLAGS.g_lr, d_lr=FLAGS.d_lr,
        beta_1=FLAGS.beta_1, beta_2=FLAGS.beta_2, ema_decay=FLAGS.ema_decay,
        r1_gamma=FLAGS.r1_gamma, **steps,
    )
    if "depthwise_gradient" in FLAGS:
        overrides.setdefault("depthwise_gradient", FLAGS.depthwise_gradient)
    return TrainRunConfig(
        train=train, genotype=genotype, model=generator_config_from_flags(),
        data=data_config_from_flags(), seed=FLAGS.seed,
        deterministic=FLAGS.deterministic, checkpoint_every=FLAGS.checkpoint_every,
        sample_every=FLAGS.sample_every or 500, keep_checkpoints=FLAGS.keep_checkpoints,
        precision=precision_from_flags(), **overrides,
    )


@_once
def define_train_flags() -> None:
    """Retraining a derived generator."""
    define_retrain_flags()
    define_step_flags()
    define_strategy_flags()
    define_multi_worker_flags()
    flags.DEFINE_string(
        "genotype", "alphaGAN_l", "A preset (alphaGAN_l, alphaGAN_s) or a genotype.json path."
    )
    flags.DEFINE_string(
        "init_from", None, "A search workdir: start from its supernet weights (default: scratch)."
    )
    flags.DEFINE_integer("eval_every", 5000, "Evaluate IS/FID/KID every N iterations.")


@_once
def define_tune_flags() -> None:
    """KerasTuner baselines: black-box search over genotypes, each trial a short retrain."""
    define_retrain_flags()
    flags.DEFINE_enum(
        "tuner", "random", ["random", "bayesian", "hyperband"],
        "KerasTuner algorithm: RandomSearch, BayesianOptimization or Hyperband.",
    )
    flags.DEFINE_integer(
        "max_trials", 10, "Trials in total (a resumed run counts those already run)."
    )
    flags.DEFINE_bool(
        "tune_overwrite", False,
        "Delete the tuning run in --workdir and start over (default: resume it).",
    )
    flags.DEFINE_integer(
        "max_consecutive_failed_trials", 3,
        "KerasTuner stops the search after this many failed trials in a row.",
    )
    flags.DEFINE_integer(
        "bayesian_initial_points", None,
        "bayesian: random trials before the Gaussian process (default max(2, max_trials // 4)).",
    )
    flags.DEFINE_float(
        "max_cpu_minutes", None,
        "Start no new trial once the run's trials used this much CPU time (all threads, "
        "summed over resumed invocations), e.g. the differentiable search's budget.",
    )
    flags.DEFINE_float(
        "max_minutes", None,
        "Start no new trial once the run's trials took this many wall-clock minutes.",
    )
    flags.DEFINE_bool(
        "report_only", False,
        "Run no trial: rewrite trials.csv/png, best_genotype.json and the summary of --workdir.",
    )
    flags.DEFINE_integer("hyperband_max_epochs", 9, "hyperband: largest budget in epochs.")
    flags.DEFINE_integer("hyperband_factor", 3, "hyperband: reduction factor.")
    flags.DEFINE_integer(
        "hyperband_steps_per_epoch", None,
        "hyperband: generator iterations per epoch (default g_iterations // hyperband_max_epochs).",
    )


# --- export / sample (issue 6: serving helper) ------------------------------------------------
# Flags another command's group may also define (checkpoint, which, genotype, seed, out,
# batch_size, num_threads) go through `_define_shared`: defined only if no group did it first,
# and overridably, so CLIs can be imported in one process in any order. The export/sample CLIs
# therefore check `FLAGS[name].present` rather than trusting a default another group may set.


@_once
def define_export_flags() -> None:
    """Exporting a fixed generator as a SavedModel (TF Serving) or a TFLite file."""
    define_model_flags()
    _define_shared(
        flags.DEFINE_string, "checkpoint", None,
        "A training workdir (python -m alphagan_tf.train): export its EMA generator.",
    )
    _define_shared(
        flags.DEFINE_enum, "which", "latest", ["latest", "best"],
        "Checkpoint of --checkpoint: latest or best (FID).",
    )
    _define_shared(
        flags.DEFINE_string, "genotype", None,
        "Instead of --checkpoint: a preset (alphaGAN_l, alphaGAN_s) or genotype.json, "
        "randomly initialised with --gf/--latent_dim/--bottom_width (tests, benchmarks).",
    )
    _define_shared(flags.DEFINE_integer, "seed", 0, "Random seed.")
    _define_shared(
        flags.DEFINE_string, "export_dir", None,
        "savedmodel: the model's base folder (export/<model_name>); a new version "
        "<export_dir>/<N>/ is written. tflite: the folder of generator_<quantize>.tflite.",
    )
    flags.DEFINE_enum("format", "savedmodel", ["savedmodel", "tflite"], "What to export.")
    flags.DEFINE_enum(
        "serving_precision", "float32", ["float32", "bfloat16"],
        "savedmodel: the dtype the generator computes in inside the graph. bfloat16 runs its "
        "convs and matmuls in bfloat16 (float32 weights, the same float32 z in and uint8 / "
        "float32 images out); fast on CPUs with AMX / AVX512-BF16 and on recent GPUs, slower "
        "where bfloat16 is emulated (docs/results/precision.md; measure with bench/sampling.py).",
    )
    flags.DEFINE_enum(
        "quantize", "none", ["none", "float16", "dynamic", "int8"],
        "TFLite weights/activations: none (float32), float16 weights, dynamic-range int8 "
        "weights, int8 (full integer ops, float32 input/output; calibrated on latents).",
    )
    flags.DEFINE_string("tflite_path", None, "TFLite output file (default under --export_dir).")
    _define_max_batch()
    flags.DEFINE_integer(
        "calibration_samples", 128, "int8: latents in the representative dataset."
    )


def _define_max_batch() -> None:
    """--max_batch, the batch bound of `serving.generator_guard` (export and sample)."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.serving.generator_guard import DEFAULT_MAX_BATCH

    _define_shared(
        flags.DEFINE_integer, "max_batch", DEFAULT_MAX_BATCH,
        "Largest batch (rows of z, or count of generate) a generator accepts. export: the "
        "SavedModel's bound; sample: the TFLite runner's (a SavedModel keeps its own).",
    )


@_once
def define_sample_flags() -> None:
    """Sampling a grid from an exported SavedModel or TFLite file."""
    flags.DEFINE_string(
        "model", None,
        "A .tflite file, a SavedModel version folder, or a model base folder (latest version).",
    )
    flags.DEFINE_integer("n", 64, "Number of images in the grid.")
    _define_shared(flags.DEFINE_integer, "seed", 0, "Random seed.")
    _define_shared(flags.DEFINE_string, "out", "samples.png", "PNG file of the grid.")
    _define_shared(flags.DEFINE_integer, "batch_size", 64, "Latents per model call.")
    _define_shared(
        flags.DEFINE_integer, "num_threads", None, "TFLite interpreter threads (default: LiteRT's)."
    )
    _define_max_batch()
    flags.DEFINE_integer("columns", None, "Images per grid row (default: square).")


@_once
def define_evaluate_flags() -> None:
    """Evaluating a trained or exported generator (IS / FID / KID), and --make_stats."""
    define_data_flags()
    define_feature_flags()
    _define_shared(
        flags.DEFINE_string, "checkpoint", None,
        "A training workdir (python -m alphagan_tf.train): use its EMA generator.",
    )
    _define_shared(
        flags.DEFINE_enum, "which", "latest", ["latest", "best"],
        "Checkpoint of --checkpoint: latest or best (FID).",
    )
    _define_shared(flags.DEFINE_integer, "seed", 0, "Random seed.")
    _define_shared(
        flags.DEFINE_string, "out", None,
        "evaluate: the metrics JSON (default <checkpoint>/evaluation_<which>.json, or "
        "./evaluation.json for --saved_model); --make_stats: the statistics .npz (required).",
    )
    flags.DEFINE_string(
        "saved_model", None,
        "Instead of --checkpoint: an exported generator SavedModel (a version folder, or a "
        "model base folder for its highest version), sampled through serving_default.",
    )
    flags.DEFINE_integer(
        "num_samples", 50_000, "Generated images evaluated (50k in the paper's protocol)."
    )
    flags.DEFINE_bool(
        "make_stats", False,
        "Instead of evaluating: compute real-data statistics of --dataset with the feature "
        "extractor and write them to --out (an .npz for --real_stats).",
    )
    flags.DEFINE_integer(
        "image_size", None,
        "--make_stats: the side real images are resized to. Default: the size of the generator "
        "of --checkpoint / --saved_model, else the dataset's protocol size (cifar10 32, stl10 48).",
    )
    flags.DEFINE_integer(
        "max_examples", None, "--make_stats / real statistics: use at most this many images."
    )


@_once
def define_convert_flags() -> None:
    """Converting the authors' PyTorch retraining checkpoint into a training workdir."""
    flags.DEFINE_string(
        "pytorch_checkpoint", None,
        "checkpoint.pth written by the authors' train_geno_gan.py (or a generator state dict).",
    )
    _define_shared(
        flags.DEFINE_string, "genotype", None,
        "The genotype the checkpoint was trained with: a preset (alphaGAN_l, alphaGAN_s) or a "
        "genotype.json path.",
    )
    _define_shared(
        flags.DEFINE_integer, "bottom_width", 4,
        "The authors' --bottom_width: 4 for 32x32 (CIFAR-10), 6 for 48x48 (STL-10).",
    )
    _define_shared(flags.DEFINE_string, "out", None, "The new training workdir (must not exist).")
